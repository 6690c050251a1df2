/* Sign-in for people: POST/DELETE /v1/session, PUT /v1/me/password, and the
 * password of POST /v1/users.
 *
 * Argon2id runs on libuv's threadpool (kreq_queue_work), never on the loop.
 * A password is copied out of the request body into the request's arena,
 * wiped from the body at once and from the arena as soon as the hash work
 * is done; it never goes to the database or the log. The database keeps the
 * encoded hash, and SHA-256 of session ids and CSRF tokens
 * (schema/migrations/011_sessions.sql; the functions in
 * schema/functions/11_session.sql). See docs/security.md.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "app/app.h"
#include "util/cookie.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/password.h"

#define SESSION_SECRET_BYTES 32  /* 256 bits: 43 base64url characters */
#define SESSION_SECRET_LEN 44    /* with the NUL */

/* ---- request specs ---- */

const char *api_format_password(json_t *parent, const char *key, json_t *value, const char **code) {
  const char *why = password_policy(json_string_value(value), json_string_length(value));
  /* The policy's reasons: too long (bytes), not UTF-8, too short. */
  if (why != NULL)
    *code = strstr(why, "at most") ? "too_long" : strstr(why, "UTF-8") ? "invalid_characters" : "too_short";
  return why;
}

static const jc_field_t session_body[] = {
  {.name = "username", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 256},
  {.name = "password", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = PASSWORD_MAX_BYTES},
  {NULL},
};

static const jc_field_t password_body[] = {
  {.name = "current_password", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1,
   .max_len = PASSWORD_MAX_BYTES},
  {.name = "new_password", .type = JC_STRING, .flags = JC_REQUIRED, .format = api_format_password},
  {NULL},
};

/* ---- statements ---- */

static const pg_stmt_t session_lookup = {"session_lookup",
  "SELECT * FROM kip_api.session_lookup($1::jsonb, $2::text)", 2};
static const pg_stmt_t session_create = {"session_create",
  "SELECT * FROM kip_api.session_create($1::jsonb, $2::text, $3::text, $4::text, $5::jsonb, $6::text, "
  "$7::text)", 7};
static const pg_stmt_t session_fail = {"session_fail",
  "SELECT * FROM kip_api.session_fail($1::jsonb, $2::text, $3::jsonb)", 3};
static const pg_stmt_t session_get = {"session_get",
  "SELECT * FROM kip_api.session_get($1::jsonb, $2::text)", 2};
static const pg_stmt_t session_delete = {"session_delete",
  "SELECT * FROM kip_api.session_delete($1::jsonb)", 1};
static const pg_stmt_t password_current = {"password_current",
  "SELECT * FROM kip_api.password_current($1::jsonb)", 1};
static const pg_stmt_t password_fail = {"password_fail",
  "SELECT * FROM kip_api.password_fail($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t password_set = {"password_set",
  "SELECT * FROM kip_api.password_set($1::jsonb, $2::text, $3::text)", 3};
static const pg_stmt_t user_create_check = {"user_create_check",
  "SELECT * FROM kip_api.user_create_check($1::jsonb)", 1};
static const pg_stmt_t user_create_with_password = {"user_create_with_password",
  "SELECT * FROM kip_api.user_create($1::jsonb, $2::jsonb, $3::text)", 3};
static const pg_stmt_t user_create_plain = {"user_create",
  "SELECT * FROM kip_api.user_create($1::jsonb, $2::jsonb)", 2};

/* ---- helpers ---- */

/* The CSRF token of a session: HMAC-SHA256 keyed with the session id (the
 * cookie's secret value) over a fixed label, base64url. Only who holds the
 * session id can compute it, and the session id never reaches JavaScript
 * (HttpOnly), so the token still proves that the request came from a page
 * kipd answered; but kipd can hand the same token back at any time
 * (GET /v1/session), to every tab of the session, without storing it.
 * docs/security.md. */
static int session__csrf_token(const char *session_id, char out[SESSION_SECRET_LEN]) {
  static const char label[] = "kipd csrf token v1";
  return crypto_hmac_sha256_b64url(session_id, strlen(session_id), label, sizeof(label) - 1, out);
}

/* The state of one password operation, in the request's arena. The worker
 * thread touches only this. */
typedef struct pw_job_s {
  password_params_t params;
  char *password;          /* arena copy, wiped after the work */
  size_t password_len;
  char *new_password;      /* PUT /v1/me/password only */
  size_t new_password_len;
  char *stored_hash;       /* the hash to check against, or NULL */
  bool locked;
  int verified;            /* 0: the password matched */
  int hashed;              /* 0: new_hash holds a hash */
  char new_hash[PASSWORD_ENCODED_MAX];
  /* sign-in */
  char *username;
  char session_id[SESSION_SECRET_LEN];
  char csrf_token[SESSION_SECRET_LEN];
  int failures;
  bool now_locked;
} pw_job_t;

/* Take a string member out of the body into the arena and wipe it from the
 * body (jansson frees without clearing). The body's raw bytes are wiped by
 * pw__wipe_body() once every member is taken. */
static char *pw__take(kreq_t *r, const char *key, size_t *len) {
  json_t *v = json_object_get(r->body, key);
  if (!json_is_string(v))
    return NULL;
  size_t n = json_string_length(v);
  char *copy = arena_alloc(&r->http->arena, n + 1);
  if (copy == NULL)
    return NULL;
  memcpy(copy, json_string_value(v), n);
  copy[n] = '\0';
  explicit_bzero((char *)json_string_value(v), n);
  *len = n;
  return copy;
}

static void pw__wipe_body(kreq_t *r) {
  explicit_bzero((char *)r->http->body, r->http->body_len);
}

/* The plain passwords: done as soon as the Argon2 work is. */
static void pw__wipe_passwords(pw_job_t *job) {
  if (job->password != NULL)
    explicit_bzero(job->password, job->password_len);
  if (job->new_password != NULL)
    explicit_bzero(job->new_password, job->new_password_len);
}

/* Everything secret in the job: when the request ends. */
static void pw__wipe(pw_job_t *job) {
  pw__wipe_passwords(job);
  explicit_bzero(job->new_hash, sizeof(job->new_hash));
  explicit_bzero(job->session_id, sizeof(job->session_id));
  explicit_bzero(job->csrf_token, sizeof(job->csrf_token));
}

/* Whatever path answers the request (a refusal from the database, say),
 * the secrets in the job are wiped before the arena is released. */
static void pw__on_release(void *arg) { pw__wipe(arg); }

static pw_job_t *pw__job(kreq_t *r) {
  pw_job_t *job = arena_calloc(&r->http->arena, sizeof(*job));
  if (job != NULL) {
    job->params = app_config(r->app)->argon2;
    job->verified = -EACCES;
    job->hashed = -EIO;
    r->on_release = pw__on_release;
    r->on_release_arg = job;
  }
  return job;
}

/* A job that could not be queued: reply for it. */
static void pw__queue_failed(kreq_t *r, pw_job_t *job, int rc) {
  pw__wipe(job);
  if (rc == -ENOSPC)
    kreq_problem(r, 429, "too many passwords are being checked; try again", NULL, NULL);
  else
    kreq_problem(r, 503, "could not check the password; try again", NULL, NULL);
}

/* The lockout settings (and session lifetimes) the SQL applies, as JSON. */
static const char *pw__settings(kreq_t *r) {
  const kipd_config_t *cfg = app_config(r->app);
  const char *ua = http_request_header(r->http, "user-agent");
  json_t *s = json_pack("{s:i, s:I, s:I, s:I, s:I}", "lock_after", cfg->signin_lock_after,
                        "lock_s", (json_int_t)cfg->signin_lock_s, "window_s",
                        (json_int_t)cfg->signin_window_s, "idle_s", (json_int_t)cfg->session_idle_s,
                        "max_s", (json_int_t)cfg->session_max_s);
  if (ua != NULL) {
    /* At most 256 characters are kept; cut on a character boundary. */
    size_t n = strnlen(ua, 256);
    while (n > 0 && n < strlen(ua) && ((unsigned char)ua[n] & 0xc0) == 0x80)
      n--;
    json_object_set_new(s, "user_agent", json_stringn(ua, n));
  }
  const char *text = kreq_json_text(r, s);
  json_decref(s);
  return text;
}

/* From the 3rd consecutive failure (or while locked) each failed answer
 * waits: the configured delay, doubling up to 8 times that. */
static uint64_t pw__delay_ms(kreq_t *r, int failures, bool locked) {
  uint64_t base = app_config(r->app)->signin_delay_ms;
  if (locked && failures < 3)
    failures = 3;
  if (failures < 3)
    return 0;
  int doublings = failures - 3 > 3 ? 3 : failures - 3;
  return base << doublings;
}

/* failures/locked from a {failures, locked} reply body. */
static void pw__read_failures(kreq_t *r, PGresult *res, pw_job_t *job) {
  json_t *b = kreq_row_body(r, res);
  job->failures = (int)json_integer_value(json_object_get(b, "failures"));
  job->now_locked = json_is_true(json_object_get(b, "locked"));
  json_decref(b);
}

static void pw__log_failure(kreq_t *r, const char *what, pw_job_t *job, uint64_t delay_ms) {
  json_t *f = json_pack("{s:s, s:i, s:b, s:I, s:s}", "request_id", r->http->request_id, "failures",
                        job->failures, "locked", job->now_locked, "delay_ms", (json_int_t)delay_ms,
                        "remote_addr", r->client_addr);
  json_object_set_new(f, "user_id", r->user_id[0] ? json_string(r->user_id) : json_null());
  log_emit(LOG_WARN, job->now_locked ? what : "signin failed", f);
}

/* ---- POST /v1/session ---- */

static void signin__unauthorized(kreq_t *r, void *arg) {
  /* One answer for every failure: wrong password, unknown or inactive user,
   * no password, locked. Only request_id differs. */
  kreq_problem(r, 401, "the username or password is wrong", NULL, NULL);
}

static void signin__failed_done(kreq_t *r, PGresult *res) {
  pw_job_t *job = r->handler_data;
  pw__read_failures(r, res, job);
  uint64_t delay = pw__delay_ms(r, job->failures, job->now_locked);
  pw__log_failure(r, "signin locked", job, delay);
  if (kreq_delay(r, delay, signin__unauthorized, NULL) != 0)
    signin__unauthorized(r, NULL);
}

static void signin__fail(kreq_t *r, pw_job_t *job) {
  const char **params = arena_alloc(&r->http->arena, 3 * sizeof(char *));
  params[0] = kreq_ctx(r);
  params[1] = job->username;
  params[2] = pw__settings(r);
  kreq_exec(r, &session_fail, params, 401, signin__failed_done);
}

static void signin__created(kreq_t *r, PGresult *res) {
  pw_job_t *job = r->handler_data;
  int status = PQgetisnull(res, 0, 0) ? 201 : atoi(PQgetvalue(res, 0, 0));
  if (status == 401) {
    /* Locked by a parallel attempt meanwhile: a failure after all. */
    signin__failed_done(r, res);
    return;
  }
  json_t *doc = kreq_row_object(r, res);
  if (doc == NULL)
    return;
  json_object_set_new(doc, "csrf_token", json_string(job->csrf_token));
  const kipd_config_t *cfg = app_config(r->app);
  const char *proto = http_request_header(r->http, "x-forwarded-proto");
  bool secure = strcmp(cfg->cookie_secure, "always") == 0 ||
                (strcmp(cfg->cookie_secure, "auto") == 0 && proto != NULL && strcasecmp(proto, "https") == 0);
  char *cookie = arena_sprintf(&r->http->arena, "%s=%s; Path=/; HttpOnly; SameSite=Strict%s",
                               APP_SESSION_COOKIE, job->session_id, secure ? "; Secure" : "");
  http_header_t hdrs[] = {{"Set-Cookie", cookie}};
  /* The reply may free the arena: nothing of the request is touched after
   * it. The job's secrets are wiped on release (pw__on_release). */
  kreq_reply_json(r, 201, doc, hdrs, KIPD_ARRAY_SIZE(hdrs));
}

/* True when the stored hash was made with another cost than the one
 * configured now. */
static bool signin__stale(const pw_job_t *job) {
  password_params_t stored;
  return password_hash_params(job->stored_hash, &stored) &&
         (stored.t_cost != job->params.t_cost || stored.m_kib != job->params.m_kib ||
          stored.parallelism != job->params.parallelism);
}

static void signin__verify(void *arg) {
  pw_job_t *job = arg;
  job->verified = password_verify(&job->params, job->stored_hash, job->password, job->password_len);
  /* The one moment kipd has the password: bring its hash to today's cost. */
  if (job->verified == 0 && !job->locked && signin__stale(job))
    job->hashed = password_hash(&job->params, job->password, job->password_len, job->new_hash);
  pw__wipe_passwords(job);
}

static void signin__verified(kreq_t *r, void *arg) {
  pw_job_t *job = arg;
  if (job->verified != 0 || job->locked) {
    signin__fail(r, job);
    return;
  }
  char session_hash[65], csrf_hash[65];
  if (crypto_random_b64url(SESSION_SECRET_BYTES, job->session_id) != 0 ||
      session__csrf_token(job->session_id, job->csrf_token) != 0 ||
      crypto_sha256_hex(job->session_id, strlen(job->session_id), session_hash) != 0 ||
      crypto_sha256_hex(job->csrf_token, strlen(job->csrf_token), csrf_hash) != 0) {
    kreq_problem(r, 500, "could not make a session", NULL, NULL);
    return;
  }
  const char **params = arena_calloc(&r->http->arena, 7 * sizeof(char *));
  params[0] = kreq_ctx(r);
  params[1] = job->username;
  params[2] = kreq_strdup(r, session_hash);
  params[3] = kreq_strdup(r, csrf_hash);
  params[4] = pw__settings(r);
  if (job->hashed == 0) {
    params[5] = job->stored_hash;
    params[6] = kreq_strdup(r, job->new_hash);
  }
  kreq_exec(r, &session_create, params, 201, signin__created);
}

static void signin__looked_up(kreq_t *r, PGresult *res) {
  pw_job_t *job = r->handler_data;
  if (PQntuples(res) == 1 && PQnfields(res) >= 2) {
    if (!PQgetisnull(res, 0, 0))
      job->stored_hash = kreq_strdup(r, PQgetvalue(res, 0, 0));
    job->locked = !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
  }
  /* Locked or not, known or not: the same Argon2 work, so the answer's
   * timing tells nothing. */
  int rc = kreq_queue_work(r, signin__verify, signin__verified, job);
  if (rc != 0)
    pw__queue_failed(r, job, rc);
}

static void session_create_handler(kreq_t *r) {
  pw_job_t *job = pw__job(r);
  if (job == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  size_t ulen = 0;
  job->username = pw__take(r, "username", &ulen);
  job->password = pw__take(r, "password", &job->password_len);
  pw__wipe_body(r);
  if (job->username == NULL || job->password == NULL) {
    pw__wipe(job);
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  r->handler_data = job;
  const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
  params[0] = kreq_ctx(r);
  params[1] = job->username;
  kreq_exec(r, &session_lookup, params, 200, signin__looked_up);
}

/* ---- GET /v1/session ---- */

typedef struct session_get_s {
  char csrf_token[SESSION_SECRET_LEN];
} session_get_t;

static void session_get_release(void *arg) {
  session_get_t *st = arg;
  explicit_bzero(st->csrf_token, sizeof(st->csrf_token));
}

static void session_got(kreq_t *r, PGresult *res) {
  session_get_t *st = r->handler_data;
  json_t *doc = kreq_row_object(r, res);
  if (doc == NULL)
    return;
  json_object_set_new(doc, "csrf_token", json_string(st->csrf_token));
  kreq_reply_json(r, 200, doc, NULL, 0);
}

/* A page reload keeps the cookie but loses the CSRF token the page held:
 * this answers it again, with what POST /v1/session answered. Only to the
 * cookie's own requests: a bearer request has no session (401). */
static void session_get_handler(kreq_t *r) {
  if (r->session_hash[0] == '\0') {
    kreq_problem(r, 401, "there is no session: sign in with POST /v1/session", NULL, NULL);
    return;
  }
  char sid[128];
  int found = -ENOENT;
  for (size_t i = 0; i < r->http->n_headers && found == -ENOENT; i++)
    if (strcasecmp(r->http->headers[i].name, "cookie") == 0)
      found = cookie_find(r->http->headers[i].value, APP_SESSION_COOKIE, sid, sizeof(sid));
  session_get_t *st = arena_calloc(&r->http->arena, sizeof(*st));
  char csrf_hash[65];
  const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
  if (found != 0 || st == NULL || params == NULL || session__csrf_token(sid, st->csrf_token) != 0 ||
      crypto_sha256_hex(st->csrf_token, strlen(st->csrf_token), csrf_hash) != 0) {
    explicit_bzero(sid, sizeof(sid));
    kreq_problem(r, 500, "could not read the session", NULL, NULL);
    return;
  }
  explicit_bzero(sid, sizeof(sid));
  r->handler_data = st;
  r->on_release = session_get_release;
  r->on_release_arg = st;
  params[0] = kreq_ctx(r);
  params[1] = kreq_strdup(r, csrf_hash);
  kreq_exec(r, &session_get, params, 200, session_got);
}

/* ---- DELETE /v1/session ---- */

static void session_deleted(kreq_t *r, PGresult *res) {
  json_t *ignored = kreq_row_body(r, res);
  json_decref(ignored);
  http_header_t hdrs[] = {
    {"Set-Cookie", APP_SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"},
  };
  kreq_reply_raw(r, 204, NULL, "", 0, hdrs, KIPD_ARRAY_SIZE(hdrs));
}

static void session_delete_handler(kreq_t *r) {
  const char **params = arena_alloc(&r->http->arena, sizeof(char *));
  params[0] = kreq_ctx(r);
  kreq_exec(r, &session_delete, params, 204, session_deleted);
}

/* ---- PUT /v1/me/password ---- */

static void password__wrong(kreq_t *r, void *arg) {
  kreq_problem_code(r, 403, "current_password: is wrong", "wrong_password", "current_password", "is wrong");
}

static void password__failed_done(kreq_t *r, PGresult *res) {
  pw_job_t *job = r->handler_data;
  pw__read_failures(r, res, job);
  uint64_t delay = pw__delay_ms(r, job->failures, job->now_locked);
  pw__log_failure(r, "signin locked", job, delay);
  if (kreq_delay(r, delay, password__wrong, NULL) != 0)
    password__wrong(r, NULL);
}

static void password__check(void *arg) {
  pw_job_t *job = arg;
  job->verified = password_verify(&job->params, job->stored_hash, job->password, job->password_len);
  if (job->verified == 0 && !job->locked)
    job->hashed = password_hash(&job->params, job->new_password, job->new_password_len, job->new_hash);
  pw__wipe_passwords(job);
}

static void password__checked(kreq_t *r, void *arg) {
  pw_job_t *job = arg;
  if (job->verified != 0 || job->locked) {
    const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
    params[0] = kreq_ctx(r);
    params[1] = pw__settings(r);
    kreq_exec(r, &password_fail, params, 403, password__failed_done);
    return;
  }
  if (job->hashed != 0) {
    kreq_problem(r, 503, "could not hash the password; try again", NULL, NULL);
    return;
  }
  const char **params = arena_alloc(&r->http->arena, 3 * sizeof(char *));
  params[0] = kreq_ctx(r);
  params[1] = job->stored_hash;
  params[2] = kreq_strdup(r, job->new_hash);
  explicit_bzero(job->new_hash, sizeof(job->new_hash));
  kreq_exec(r, &password_set, params, 204, NULL);
}

static void password__current(kreq_t *r, PGresult *res) {
  pw_job_t *job = r->handler_data;
  if (PQntuples(res) == 1 && PQnfields(res) >= 2) {
    if (!PQgetisnull(res, 0, 0))
      job->stored_hash = kreq_strdup(r, PQgetvalue(res, 0, 0));
    job->locked = !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
  }
  int rc = kreq_queue_work(r, password__check, password__checked, job);
  if (rc != 0)
    pw__queue_failed(r, job, rc);
}

static void password_put_handler(kreq_t *r) {
  pw_job_t *job = pw__job(r);
  if (job == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  job->password = pw__take(r, "current_password", &job->password_len);
  job->new_password = pw__take(r, "new_password", &job->new_password_len);
  pw__wipe_body(r);
  if (job->password == NULL || job->new_password == NULL) {
    pw__wipe(job);
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  r->handler_data = job;
  const char **params = arena_alloc(&r->http->arena, sizeof(char *));
  params[0] = kreq_ctx(r);
  kreq_exec(r, &password_current, params, 200, password__current);
}

/* ---- POST /v1/users with a password ---- */

static void user__hash(void *arg) {
  pw_job_t *job = arg;
  job->hashed = password_hash(&job->params, job->password, job->password_len, job->new_hash);
  pw__wipe_passwords(job);
}

static void user__hashed(kreq_t *r, void *arg) {
  pw_job_t *job = arg;
  if (job->hashed != 0) {
    kreq_problem(r, 503, "could not hash the password; try again", NULL, NULL);
    return;
  }
  const char **params = arena_alloc(&r->http->arena, 3 * sizeof(char *));
  params[0] = kreq_ctx(r);
  params[1] = kreq_json_text(r, r->body);
  params[2] = kreq_strdup(r, job->new_hash);
  explicit_bzero(job->new_hash, sizeof(job->new_hash));
  kreq_exec(r, &user_create_with_password, params, 201, NULL);
}

static void user__checked(kreq_t *r, PGresult *res) {
  pw_job_t *job = r->handler_data;
  int rc = kreq_queue_work(r, user__hash, user__hashed, job);
  if (rc != 0)
    pw__queue_failed(r, job, rc);
}

void api_user_create_handler(kreq_t *r) {
  if (json_object_get(r->body, "password") == NULL) {
    const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
    params[0] = kreq_ctx(r);
    params[1] = kreq_json_text(r, r->body);
    kreq_exec(r, &user_create_plain, params, 201, NULL);
    return;
  }
  pw_job_t *job = pw__job(r);
  if (job == NULL || (job->password = pw__take(r, "password", &job->password_len)) == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  /* The password never goes to the database; its hash does. */
  json_object_del(r->body, "password");
  pw__wipe_body(r);
  r->handler_data = job;
  /* Only an admin may make kipd spend an Argon2 hash. */
  const char **params = arena_alloc(&r->http->arena, sizeof(char *));
  params[0] = kreq_ctx(r);
  kreq_exec(r, &user_create_check, params, 204, user__checked);
}

const route_t api_session_routes[] = {
  {"POST", "/v1/session", session_create_handler, session_body, NULL, &session_create, 201, ROUTE_PUBLIC | ROUTE_BODY},
  {"GET", "/v1/session", session_get_handler, NULL, NULL, &session_get, 200, 0},
  {"DELETE", "/v1/session", session_delete_handler, NULL, NULL, &session_delete, 204, 0},
  {"PUT", "/v1/me/password", password_put_handler, password_body, NULL, &password_set, 204, ROUTE_BODY},
};
const size_t api_session_n_routes = KIPD_ARRAY_SIZE(api_session_routes);
