/* kipctl plan|audit|health: reading a plan, verifying the audit chain, and
 * kipd's health. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kipctl.h"

static int plans__simple_options(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'J': kc->json = true; break;
    case 'h': return cmd_help(cmd);
    default: return cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  return -1;
}

static char *plans__path_with(const char *id, const char *suffix) {
  char *e = client_escape(id);
  size_t n = (e ? strlen(e) : 0) + strlen(suffix) + 16;
  char *p = malloc(n);
  if (p != NULL)
    snprintf(p, n, "/v1/plans/%s%s", e ? e : "", suffix);
  free(e);
  return p;
}

static char *plans__path(const char *id) {
  return plans__path_with(id, "");
}

/* ---- plan get ---- */

static int plan_get(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  int rc = plans__simple_options(kc, cmd, argc, argv);
  if (rc < 0)
    rc = cmd_positional(cmd, argc, argv, 1);
  if (rc >= 0)
    return rc;
  char *path = plans__path(argv[optind]);
  json_t *plan;
  rc = client_call(kc, "GET", path, NULL, 200, &plan);
  free(path);
  if (rc != KC_OK)
    return rc;
  if (kc->json) {
    out_json(plan);
  } else {
    static const out_column_t columns[] = {
      {"id", "id"}, {"status", "status"}, {"version", "version"}, {"citizen", "citizen.name"},
      {"reason", "reason"}, {"owner_organisation_id", "owner_organisation_id"},
      {"follow_up_date", "follow_up_date"}, {"approved_at", "approved_at"}, {"created_at", "created_at"},
      {"updated_at", "updated_at"}, {"closed_at", "closed_at"}, {NULL, NULL}};
    out_record(plan, columns);
    printf("participants: %zu\ngoals: %zu\nactions: %zu\nmeetings: %zu\n",
           json_array_size(json_object_get(plan, "participants")),
           json_array_size(json_object_get(plan, "goals")),
           json_array_size(json_object_get(plan, "actions")),
           json_array_size(json_object_get(plan, "meetings")));
  }
  json_decref(plan);
  return KC_OK;
}

/* ---- plan export ---- */

static int plan_export(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {
    {"output", required_argument, NULL, 'o'}, {"format", required_argument, NULL, 'f'},
    CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  const char *output = NULL;
  bool fhir = false;
  int opt;
  while ((opt = getopt_long(argc, argv, "o:", options, NULL)) != -1) {
    switch (opt) {
    case 'o': output = optarg; break;
    case 'f':
      if (strcmp(optarg, "fhir") == 0)
        fhir = true;
      else if (strcmp(optarg, "plan") != 0)
        return cmd_usage_error(cmd, "--format: \"plan\" (kipd's plan document) or \"fhir\" (a FHIR R4 Bundle)");
      break;
    case 'J': kc->json = true; break;
    case 'h': return cmd_help(cmd);
    default: return cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  int rc = cmd_positional(cmd, argc, argv, 1);
  if (rc >= 0)
    return rc;
  char *path = plans__path_with(argv[optind], fhir ? "/fhir" : "");
  json_t *plan;
  rc = client_call(kc, "GET", path, NULL, 200, &plan);
  free(path);
  if (rc != KC_OK)
    return rc;
  if (output == NULL || strcmp(output, "-") == 0) {
    out_json(plan);
    json_decref(plan);
    return KC_OK;
  }
  /* Personal data: the file is the caller's alone. */
  int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (f == NULL || fchmod(fd, 0600) != 0 ||
      json_dumpf(plan, f, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 || fputc('\n', f) == EOF) {
    fprintf(stderr, "kipctl: cannot write %s: %s\n", output, strerror(errno));
    if (f != NULL)
      fclose(f);
    else if (fd >= 0)
      close(fd);
    json_decref(plan);
    return KC_API;
  }
  if (fclose(f) != 0) {
    fprintf(stderr, "kipctl: cannot write %s: %s\n", output, strerror(errno));
    json_decref(plan);
    return KC_API;
  }
  if (kc->json) {
    json_t *r = json_pack("{s:O, s:s, s:O}", "id", json_object_get(plan, "id"), "file", output, "version",
                          json_object_get(plan, "version"));
    out_json(r);
    json_decref(r);
  } else {
    printf("plan %s (version %" JSON_INTEGER_FORMAT ") written to %s\n",
           json_string_value(json_object_get(plan, "id")),
           json_integer_value(json_object_get(plan, "version")), output);
  }
  json_decref(plan);
  return KC_OK;
}

/* ---- audit verify ---- */

/* Print a verification's result (GET /v1/audit/verify's answer, or a
 * finished job's result); 0 when it verified, KC_API when not. v borrowed. */
static int audit__print_result(kc_t *kc, json_t *v, json_t *job) {
  bool ok = json_is_true(json_object_get(v, "ok"));
  if (kc->json) {
    out_json(job != NULL ? job : v);
  } else {
    if (job != NULL) {
      static const out_column_t job_columns[] = {{"job", "id"}, {"steps", "steps"}, {NULL, NULL}};
      out_record(job, job_columns);
    }
    static const out_column_t columns[] = {
      {"ok", "ok"}, {"mode", "mode"}, {"from_seq", "from.seq"}, {"checked", "checked"},
      {"broken", "broken"}, {"unsealed", "unsealed"}, {"unsealed_overdue", "unsealed_overdue"},
      {"head_seq", "head.seq"}, {"head_sealed_at", "head.sealed_at"}, {NULL, NULL}};
    out_record(v, columns);
    json_t *first = json_object_get(v, "first_broken");
    if (json_is_object(first)) {
      static const out_column_t broken[] = {
        {"first_broken_seq", "seq"}, {"first_broken_id", "id"}, {"first_broken_problem", "problem"},
        {NULL, NULL}};
      out_record(first, broken);
    }
    json_t *full = json_object_get(v, "last_full");
    if (json_is_object(full)) {
      static const out_column_t last_full[] = {
        {"last_full_ok", "ok"}, {"last_full_finished_at", "finished_at"}, {NULL, NULL}};
      out_record(full, last_full);
    }
  }
  if (!ok)
    fputs("kipctl: the audit chain does NOT verify\n", stderr);
  return ok ? KC_OK : KC_API;
}

/* --full: queue the full walk and poll its job until done (or only print
 * the job with --no-wait). */
static int audit__full(kc_t *kc, const char *query, bool wait) {
  char path[160];
  snprintf(path, sizeof(path), "/v1/audit/verify-jobs%s", query);
  json_t *job;
  int rc = client_call(kc, "POST", path, NULL, 202, &job);
  if (rc != KC_OK)
    return rc;
  const char *id = json_string_value(json_object_get(job, "id"));
  if (!wait || id == NULL) {
    if (kc->json) {
      out_json(job);
    } else {
      static const out_column_t columns[] = {{"job", "id"}, {"status", "status"}, {NULL, NULL}};
      out_record(job, columns);
    }
    json_decref(job);
    return KC_OK;
  }
  char location[96];
  snprintf(location, sizeof(location), "/v1/audit/verify-jobs/%.40s", id);
  while (!json_is_object(json_object_get(job, "result"))) {
    json_decref(job);
    usleep(500 * 1000);
    rc = client_call(kc, "GET", location, NULL, 200, &job);
    if (rc != KC_OK)
      return rc;
  }
  rc = audit__print_result(kc, json_object_get(job, "result"), job);
  json_decref(job);
  return rc;
}

static int audit_verify(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {
    {"grace-seconds", required_argument, NULL, 'g'}, {"full", no_argument, NULL, 'f'},
    {"no-wait", no_argument, NULL, 'n'}, CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  const char *grace = NULL;
  bool full = false, wait = true;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'g': grace = optarg; break;
    case 'f': full = true; break;
    case 'n': wait = false; break;
    case 'J': kc->json = true; break;
    case 'h': return cmd_help(cmd);
    default: return cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  int rc = cmd_positional(cmd, argc, argv, 0);
  if (rc >= 0)
    return rc;
  if (!wait && !full)
    return cmd_usage_error(cmd, "--no-wait goes with --full");
  char query[128] = "";
  if (grace != NULL) {
    char *e = client_escape(grace);
    snprintf(query, sizeof(query), "?grace_seconds=%.90s", e ? e : "");
    free(e);
  }
  if (full)
    return audit__full(kc, query, wait);
  char path[160];
  snprintf(path, sizeof(path), "/v1/audit/verify%s", query);
  json_t *v;
  rc = client_call(kc, "GET", path, NULL, 200, &v);
  if (rc != KC_OK)
    return rc;
  rc = audit__print_result(kc, v, NULL);
  json_decref(v);
  return rc;
}

/* ---- health ---- */

static int health(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  int rc = plans__simple_options(kc, cmd, argc, argv);
  if (rc < 0)
    rc = cmd_positional(cmd, argc, argv, 0);
  if (rc >= 0)
    return rc;
  kc_reply_t live, ready;
  rc = client_request(kc, "GET", "/healthz", NULL, &live);
  if (rc != KC_OK)
    return rc;
  rc = client_request(kc, "GET", "/readyz", NULL, &ready);
  if (rc != KC_OK) {
    client_reply_free(&live);
    return rc;
  }
  bool good = live.status == 200 && ready.status == 200;
  if (kc->json) {
    json_t *r = json_pack("{s:b, s:{s:I, s:O*}, s:{s:I, s:O*}}", "ok", good, "healthz", "status",
                          (json_int_t)live.status, "body", live.body, "readyz", "status",
                          (json_int_t)ready.status, "body", ready.body);
    out_json(r);
    json_decref(r);
  } else {
    printf("healthz: %ld %s\n", live.status,
           live.status == 200 ? "live" : "not live");
    const char *detail = json_string_value(json_object_get(ready.body, "detail"));
    printf("readyz:  %ld %s\n", ready.status,
           ready.status == 200 ? "ready" : detail ? detail : "not ready");
    json_t *append_only = json_object_get(json_object_get(ready.body, "audit"), "append_only");
    if (json_is_boolean(append_only))
      printf("audit append-only: %s\n", json_is_true(append_only) ? "yes" : "no");
  }
  if (!good)
    fprintf(stderr, "kipctl: kipd at %s is not %s\n", kc->conf.url, live.status == 200 ? "ready" : "live");
  client_reply_free(&live);
  client_reply_free(&ready);
  return good ? KC_OK : KC_API;
}

const kc_command_t cmd_plans[] = {
  {"plan", "get", "show a plan",
   "usage: kipctl plan get PLAN_ID [--json]\n\n"
   "Show a plan: a summary, or with --json the whole plan document. Reading a plan is audited\n"
   "(plan.read) like any other read; the token's user must have access to it.\n", plan_get},
  {"plan", "export", "write a plan document to a file",
   "usage: kipctl plan export PLAN_ID [--output FILE] [--format plan|fhir] [--json]\n\n"
   "Write the whole plan document (JSON) to FILE (created 0600: it holds personal data), or to\n"
   "stdout without --output. --format fhir writes the plan as a FHIR R4 Bundle\n"
   "(GET /v1/plans/{id}/fhir, docs/fhir.md) instead. Audited as plan.read.\n",
   plan_export},
  {"audit", "verify", "verify the audit hash chain",
   "usage: kipctl audit verify [--full [--no-wait]] [--grace-seconds N] [--json]\n\n"
   "Verify the audit log's hash chain (auditor role). Exits 1 when the chain does not verify.\n"
   "Without --full: from the last verified checkpoint on (GET /v1/audit/verify), quick.\n"
   "--full: the whole chain from its first link, which kipd walks in the background\n"
   "(POST /v1/audit/verify-jobs); waits for the result, or with --no-wait prints the job.\n",
   audit_verify},
  {"health", NULL, "is kipd live and ready",
   "usage: kipctl health [--json]\n\n"
   "Ask /healthz and /readyz (no token needed). Exits 0 when both answer 200, else 1.\n", health},
};
const size_t cmd_plans_n = sizeof(cmd_plans) / sizeof(cmd_plans[0]);
