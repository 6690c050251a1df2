#include "app/kreq_work.h"

#include "app/internal.h"

typedef struct kreq_work_job_s {
  uv_work_t work;
  kreq_t *r;
  kreq_work_fn fn;
  kreq_work_then_fn then;
  void *arg;
} kreq_work_job_t;

static void kreq_work__run(uv_work_t *w) {
  kreq_work_job_t *job = container_of(w, kreq_work_job_t, work);
  job->fn(job->arg);
}

static void kreq_work__done(uv_work_t *w, int status) {
  kreq_work_job_t *job = container_of(w, kreq_work_job_t, work);
  job->r->app->jobs--;
  job->then(job->r, job->arg);
}

int kreq_work_queue(kreq_t *r, kreq_work_fn work, kreq_work_then_fn then, void *arg) {
  app_t *app = r->app;
  if (app->loop == NULL)
    return -EINVAL;
  if (app->jobs >= app->cfg.password_jobs_max)
    return -ENOSPC;
  kreq_work_job_t *job = arena_calloc(&r->http->arena, sizeof(*job));
  if (job == NULL)
    return -ENOMEM;
  *job = (kreq_work_job_t){.r = r, .fn = work, .then = then, .arg = arg};
  int rc = uv_queue_work(app->loop, &job->work, kreq_work__run, kreq_work__done);
  if (rc != 0)
    return rc;
  app->jobs++;
  return 0;
}

/* The timer lives in the request's arena: it is closed before the
 * continuation runs, and the continuation's reply frees the arena. */
typedef struct kreq_work_timer_s {
  uv_timer_t timer;
  kreq_t *r;
  kreq_work_then_fn then;
  void *arg;
} kreq_work_timer_t;

static void kreq_work__timer_closed(uv_handle_t *h) {
  kreq_work_timer_t *t = container_of((uv_timer_t *)h, kreq_work_timer_t, timer);
  t->then(t->r, t->arg);
}

static void kreq_work__timer_fired(uv_timer_t *timer) {
  uv_close((uv_handle_t *)timer, kreq_work__timer_closed);
}

int kreq_work_delay(kreq_t *r, uint64_t delay_ms, kreq_work_then_fn then, void *arg) {
  app_t *app = r->app;
  if (app->loop == NULL)
    return -EINVAL;
  kreq_work_timer_t *t = arena_calloc(&r->http->arena, sizeof(*t));
  if (t == NULL)
    return -ENOMEM;
  int rc = uv_timer_init(app->loop, &t->timer);
  if (rc != 0)
    return rc;
  t->r = r;
  t->then = then;
  t->arg = arg;
  rc = uv_timer_start(&t->timer, kreq_work__timer_fired, delay_ms, 0);
  if (rc != 0) {
    /* Closing still calls the continuation, which replies. */
    uv_close((uv_handle_t *)&t->timer, kreq_work__timer_closed);
  }
  return 0;
}
