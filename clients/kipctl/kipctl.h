/* kipctl: a command-line client of kipd's HTTP API.
 *
 * Exit codes: 0 success, 1 the API (or the network) refused, 2 a usage or
 * configuration error. Secrets (the token kipctl authenticates with, and
 * passwords) never reach stdout or stderr; a token is printed once, by
 * `token create`.
 */
#ifndef KIPCTL_H
#define KIPCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "kipd-build.h"

enum { KC_OK = 0, KC_API = 1, KC_USAGE = 2 };

/* Where to go and with what; filled by conf_load(). */
typedef struct kc_conf_s {
  char *url;    /* base URL, no trailing slash; new */
  char *token;  /* bearer token, or NULL; new, wiped by conf_free() */
} kc_conf_t;

typedef struct kc_s {
  kc_conf_t conf;
  bool conf_loaded;        /* conf is read at the first request, so --help needs none */
  const char *url_flag;    /* --url, borrowed from argv */
  const char *config_path; /* --config, borrowed from argv */
  bool json;               /* --json: machine-readable output on stdout */
} kc_t;

/* ---- conf.c ---- */

/* Fill conf from --url (may be NULL), KIP_URL/KIP_TOKEN, and the config file
 * (path, or the default one when NULL). Returns KC_OK or KC_USAGE after
 * printing one line to stderr (e.g. a config file others may read). */
int conf_load(kc_conf_t *conf, const char *url_flag, const char *path);
void conf_free(kc_conf_t *conf);

/* ---- client.c ---- */

typedef struct kc_reply_s {
  long status;     /* HTTP status, 0 when no answer came */
  json_t *body;    /* parsed JSON body or NULL; new */
  char *text;      /* raw body, NUL-terminated; new */
  size_t len;
} kc_reply_t;

/* One request. body (borrowed) may be NULL. Returns KC_OK when an answer
 * came (whatever its status), KC_API after printing why none did, KC_USAGE
 * when the configuration cannot be used. */
int client_request(kc_t *kc, const char *method, const char *path, json_t *body, kc_reply_t *reply);
void client_reply_free(kc_reply_t *reply);

/* Print an error answer as one line on stderr (with --json, the problem
 * document also goes to stdout) and return KC_API. */
int client_fail(kc_t *kc, const kc_reply_t *reply);

/* Request and expect `want`: on success *out (new) holds the body (or NULL
 * for an empty one). Any other status is reported with client_fail(). */
int client_call(kc_t *kc, const char *method, const char *path, json_t *body, long want, json_t **out);

/* GET every page of a list: *items (new) is one array. */
int client_list_all(kc_t *kc, const char *path, json_t **items);

/* Percent-encode a path segment or query value (new, free()). */
char *client_escape(const char *s);

/* ---- output.c ---- */

/* A column: a header and a JSON path in each item ("a" or "a.b"). */
typedef struct out_column_s {
  const char *header;
  const char *path;
} out_column_t;

void out_table(json_t *items, const out_column_t *columns);
/* key: value lines for one object, in the order of columns. */
void out_record(json_t *obj, const out_column_t *columns);
void out_json(json_t *value);
/* A member's value as text for a table cell (new, free()). */
char *out_cell(json_t *obj, const char *path);

/* ---- secret.c ---- */

/* Read a password: from stdin (one line) when from_stdin, else from the
 * terminal without echo, asked twice. Returns a new string the caller wipes
 * with secret_free(), or NULL after printing why (KC_USAGE). */
char *secret_read_password(bool from_stdin);
void secret_free(char *s);

/* ---- commands ---- */

typedef struct kc_command_s kc_command_t;
struct kc_command_s {
  const char *group;   /* "user" */
  const char *name;    /* "add", or NULL for a group without subcommands */
  const char *summary; /* one line for the overview */
  const char *usage;   /* the --help text */
  int (*run)(kc_t *kc, const kc_command_t *cmd, int argc, char **argv);
};

extern const kc_command_t cmd_accounts[];
extern const size_t cmd_accounts_n;
extern const kc_command_t cmd_plans[];
extern const size_t cmd_plans_n;

/* Options every command takes; its getopt_long switch handles 'J' and 'h'. */
#define CMD_COMMON_OPTIONS {"json", no_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}

/* Print the usage to stderr after one line naming the problem; KC_USAGE. */
int cmd_usage_error(const kc_command_t *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the usage to stdout; KC_OK. */
int cmd_help(const kc_command_t *cmd);
/* The positional arguments left after getopt: exactly n, else a usage error
 * (returns KC_USAGE) or -1 when they fit. */
int cmd_positional(const kc_command_t *cmd, int argc, char **argv, int n);

#endif
