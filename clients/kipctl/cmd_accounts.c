/* kipctl org|user|token: organisations, users and API tokens (admin work). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kipctl.h"

static const out_column_t org_columns[] = {
  {"ID", "id"}, {"NAME", "name"}, {"SECTOR", "sector"}, {"CVR", "cvr"}, {"EAN", "ean"}, {NULL, NULL}};
static const out_column_t user_columns[] = {
  {"ID", "id"}, {"USERNAME", "username"}, {"NAME", "display_name"}, {"ORGANISATION", "organisation_id"},
  {"ROLES", "roles"}, {"ACTIVE", "active"}, {NULL, NULL}};
static const out_column_t user_record[] = {
  {"id", "id"}, {"username", "username"}, {"display_name", "display_name"},
  {"organisation_id", "organisation_id"}, {"roles", "roles"}, {"email", "email"}, {"phone", "phone"},
  {"active", "active"}, {"created_at", "created_at"}, {NULL, NULL}};
static const out_column_t token_columns[] = {
  {"ID", "id"}, {"NAME", "name"}, {"CREATED", "created_at"}, {"EXPIRES", "expires_at"},
  {"LAST USED", "last_used_at"}, {"REVOKED", "revoked_at"}, {NULL, NULL}};

/* Show one object: JSON, or key: value lines. Takes the reference. */
static int accounts__show(kc_t *kc, json_t *obj, const out_column_t *columns) {
  if (kc->json)
    out_json(obj);
  else
    out_record(obj, columns);
  json_decref(obj);
  return KC_OK;
}

/* paged: the route takes limit and cursor; else one answer holds all. */
static int accounts__list(kc_t *kc, const char *path, bool paged, const out_column_t *columns) {
  json_t *items = NULL;
  int rc;
  if (paged) {
    rc = client_list_all(kc, path, &items);
  } else {
    json_t *page;
    rc = client_call(kc, "GET", path, NULL, 200, &page);
    if (rc == KC_OK) {
      items = json_incref(json_object_get(page, "items"));
      json_decref(page);
    }
  }
  if (rc != KC_OK)
    return rc;
  if (kc->json)
    out_json(items);
  else
    out_table(items, columns);
  json_decref(items);
  return KC_OK;
}

static bool accounts__is_uuid(const char *s) {
  if (strlen(s) != 36)
    return false;
  for (int i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : strchr("0123456789abcdefABCDEF", s[i]) == NULL || s[i] == '\0')
      return false;
  }
  return true;
}

/* A user named by id or by username; *id (new) is the id. */
static int accounts__user_id(kc_t *kc, const char *who, char **id) {
  if (accounts__is_uuid(who)) {
    *id = strdup(who);
    return KC_OK;
  }
  json_t *items;
  int rc = client_list_all(kc, "/v1/users", &items);
  if (rc != KC_OK)
    return rc;
  size_t i;
  json_t *u;
  *id = NULL;
  json_array_foreach(items, i, u) {
    const char *name = json_string_value(json_object_get(u, "username"));
    if (name != NULL && strcasecmp(name, who) == 0)
      *id = strdup(json_string_value(json_object_get(u, "id")));
  }
  json_decref(items);
  if (*id == NULL) {
    fprintf(stderr, "kipctl: no user with the id or username \"%s\"\n", who);
    return KC_API;
  }
  return KC_OK;
}

static char *accounts__path(const char *fmt, const char *id) {
  char *e = client_escape(id);
  size_t n = strlen(fmt) + (e ? strlen(e) : 0) + 1;
  char *p = malloc(n);
  if (p != NULL)
    snprintf(p, n, fmt, e ? e : "");
  free(e);
  return p;
}

/* ---- org ---- */

static int org_add(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {
    {"name", required_argument, NULL, 'n'}, {"sector", required_argument, NULL, 's'},
    {"cvr", required_argument, NULL, 'c'}, {"ean", required_argument, NULL, 'e'},
    CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  json_t *body = json_object();
  int opt, rc = -1;
  while (rc < 0 && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'n': json_object_set_new(body, "name", json_string(optarg)); break;
    case 's': json_object_set_new(body, "sector", json_string(optarg)); break;
    case 'c': json_object_set_new(body, "cvr", json_string(optarg)); break;
    case 'e': json_object_set_new(body, "ean", json_string(optarg)); break;
    case 'J': kc->json = true; break;
    case 'h': rc = cmd_help(cmd); break;
    default: rc = cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  if (rc < 0)
    rc = cmd_positional(cmd, argc, argv, 0);
  if (rc < 0 && json_object_get(body, "name") == NULL)
    rc = cmd_usage_error(cmd, "--name is required");
  if (rc < 0 && json_object_get(body, "sector") == NULL)
    rc = cmd_usage_error(cmd, "--sector is required");
  if (rc < 0) {
    json_t *org;
    rc = client_call(kc, "POST", "/v1/organisations", body, 201, &org);
    if (rc == KC_OK)
      rc = accounts__show(kc, org, org_columns);
  }
  json_decref(body);
  return rc;
}

static int org_list(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'J': kc->json = true; break;
    case 'h': return cmd_help(cmd);
    default: return cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  int rc = cmd_positional(cmd, argc, argv, 0);
  return rc >= 0 ? rc : accounts__list(kc, "/v1/organisations", true, org_columns);
}

/* ---- user ---- */

static void accounts__add_roles(json_t *roles, const char *list) {
  char *copy = strdup(list);
  char *save = NULL;
  for (char *r = strtok_r(copy, ",", &save); r != NULL; r = strtok_r(NULL, ",", &save))
    if (r[0] != '\0')
      json_array_append_new(roles, json_string(r));
  free(copy);
}

static int user_add(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {
    {"username", required_argument, NULL, 'u'}, {"display-name", required_argument, NULL, 'n'},
    {"name", required_argument, NULL, 'n'}, {"org", required_argument, NULL, 'o'},
    {"role", required_argument, NULL, 'r'}, {"email", required_argument, NULL, 'e'},
    {"phone", required_argument, NULL, 'p'}, {"password", no_argument, NULL, 'P'},
    {"password-stdin", no_argument, NULL, 'S'}, CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  json_t *body = json_object();
  json_t *roles = json_array();
  bool ask = false, from_stdin = false;
  int opt, rc = -1;
  while (rc < 0 && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'u': json_object_set_new(body, "username", json_string(optarg)); break;
    case 'n': json_object_set_new(body, "display_name", json_string(optarg)); break;
    case 'o': json_object_set_new(body, "organisation_id", json_string(optarg)); break;
    case 'r': accounts__add_roles(roles, optarg); break;
    case 'e': json_object_set_new(body, "email", json_string(optarg)); break;
    case 'p': json_object_set_new(body, "phone", json_string(optarg)); break;
    case 'P': ask = true; break;
    case 'S': from_stdin = true; break;
    case 'J': kc->json = true; break;
    case 'h': rc = cmd_help(cmd); break;
    default: rc = cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  if (rc < 0)
    rc = cmd_positional(cmd, argc, argv, 0);
  const char *required[][2] = {{"username", "--username"}, {"display_name", "--display-name"},
                               {"organisation_id", "--org"}};
  for (size_t i = 0; rc < 0 && i < 3; i++)
    if (json_object_get(body, required[i][0]) == NULL)
      rc = cmd_usage_error(cmd, "%s is required", required[i][1]);
  if (rc < 0 && json_array_size(roles) == 0)
    rc = cmd_usage_error(cmd, "--role is required (admin, coordinator, caseworker, integration, auditor, analyst)");
  char *password = NULL;
  if (rc < 0 && (ask || from_stdin)) {
    password = secret_read_password(from_stdin);
    if (password == NULL)
      rc = KC_USAGE;
    else
      json_object_set_new(body, "password", json_string(password));
  }
  if (rc < 0) {
    json_object_set(body, "roles", roles);
    json_t *user;
    rc = client_call(kc, "POST", "/v1/users", body, 201, &user);
    if (rc == KC_OK)
      rc = accounts__show(kc, user, user_record);
  }
  json_t *pw = json_object_get(body, "password");
  if (pw != NULL)
    explicit_bzero((char *)json_string_value(pw), json_string_length(pw));
  secret_free(password);
  json_decref(roles);
  json_decref(body);
  return rc;
}

static int user_list(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {
    {"org", required_argument, NULL, 'o'}, CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  const char *org = NULL;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'o': org = optarg; break;
    case 'J': kc->json = true; break;
    case 'h': return cmd_help(cmd);
    default: return cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  int rc = cmd_positional(cmd, argc, argv, 0);
  if (rc >= 0)
    return rc;
  char *path = org ? accounts__path("/v1/users?organisation=%s", org) : strdup("/v1/users");
  rc = accounts__list(kc, path, true, user_columns);
  free(path);
  return rc;
}

/* The commands that take one USER and nothing else but --json/--help, plus
 * the --password-stdin of set-password. */
static int user__one(kc_t *kc, const kc_command_t *cmd, int argc, char **argv, bool *from_stdin,
                     char **id) {
  static const struct option options[] = {
    {"password-stdin", no_argument, NULL, 'S'}, CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'S':
      if (from_stdin != NULL) {
        *from_stdin = true;
        break;
      }
      return cmd_usage_error(cmd, "unknown option \"--password-stdin\"");
    case 'J': kc->json = true; break;
    case 'h': return cmd_help(cmd);
    default: return cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  int rc = cmd_positional(cmd, argc, argv, 1);
  if (rc >= 0)
    return rc;
  return accounts__user_id(kc, argv[optind], id);
}

static int user_show(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  char *id = NULL;
  int rc = user__one(kc, cmd, argc, argv, NULL, &id);
  if (rc != KC_OK || id == NULL)
    return rc;
  char *path = accounts__path("/v1/users/%s", id);
  json_t *user;
  rc = client_call(kc, "GET", path, NULL, 200, &user);
  if (rc == KC_OK)
    rc = accounts__show(kc, user, user_record);
  free(path);
  free(id);
  return rc;
}

static int user_deactivate(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  char *id = NULL;
  int rc = user__one(kc, cmd, argc, argv, NULL, &id);
  if (rc != KC_OK || id == NULL)
    return rc;
  char *path = accounts__path("/v1/users/%s", id);
  json_t *body = json_pack("{s:b}", "active", 0);
  json_t *user;
  rc = client_call(kc, "PATCH", path, body, 200, &user);
  if (rc == KC_OK)
    rc = accounts__show(kc, user, user_record);
  json_decref(body);
  free(path);
  free(id);
  return rc;
}

static int user_set_password(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  char *id = NULL;
  bool from_stdin = false;
  int rc = user__one(kc, cmd, argc, argv, &from_stdin, &id);
  if (rc != KC_OK || id == NULL)
    return rc;
  char *password = secret_read_password(from_stdin);
  if (password == NULL) {
    free(id);
    return KC_USAGE;
  }
  char *path = accounts__path("/v1/users/%s/password", id);
  json_t *body = json_pack("{s:s}", "password", password);
  rc = client_call(kc, "PUT", path, body, 204, NULL);
  if (rc == KC_OK) {
    if (kc->json) {
      json_t *r = json_pack("{s:s, s:b}", "user_id", id, "password_set", 1);
      out_json(r);
      json_decref(r);
    } else
      printf("password set for user %s; their sign-in sessions have ended\n", id);
  }
  json_t *pw = json_object_get(body, "password");
  explicit_bzero((char *)json_string_value(pw), json_string_length(pw));
  json_decref(body);
  secret_free(password);
  free(path);
  free(id);
  return rc;
}

/* ---- token ---- */

static int token_create(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {
    {"name", required_argument, NULL, 'n'}, {"expires-at", required_argument, NULL, 'x'},
    CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  json_t *body = json_object();
  int opt, rc = -1;
  while (rc < 0 && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'n': json_object_set_new(body, "name", json_string(optarg)); break;
    case 'x': json_object_set_new(body, "expires_at", json_string(optarg)); break;
    case 'J': kc->json = true; break;
    case 'h': rc = cmd_help(cmd); break;
    default: rc = cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  if (rc < 0)
    rc = cmd_positional(cmd, argc, argv, 1);
  if (rc < 0 && json_object_get(body, "name") == NULL)
    rc = cmd_usage_error(cmd, "--name is required");
  if (rc >= 0) {
    json_decref(body);
    return rc;
  }
  char *id = NULL;
  rc = accounts__user_id(kc, argv[optind], &id);
  if (rc == KC_OK) {
    char *path = accounts__path("/v1/users/%s/tokens", id);
    json_t *token;
    rc = client_call(kc, "POST", path, body, 201, &token);
    if (rc == KC_OK) {
      /* The one place a secret is printed: kipd shows it only now. */
      if (kc->json) {
        out_json(token);
      } else {
        static const out_column_t columns[] = {
          {"id", "id"}, {"user_id", "user_id"}, {"name", "name"}, {"expires_at", "expires_at"},
          {"token", "token"}, {NULL, NULL}};
        out_record(token, columns);
        fputs("kipctl: the token is shown only this once; store it now\n", stderr);
      }
      json_t *t = json_object_get(token, "token");
      if (json_is_string(t))
        explicit_bzero((char *)json_string_value(t), json_string_length(t));
      json_decref(token);
    }
    free(path);
  }
  free(id);
  json_decref(body);
  return rc;
}

static int token_list(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  char *id = NULL;
  int rc = user__one(kc, cmd, argc, argv, NULL, &id);
  if (rc != KC_OK || id == NULL)
    return rc;
  char *path = accounts__path("/v1/users/%s/tokens", id);
  rc = accounts__list(kc, path, false, token_columns);
  free(path);
  free(id);
  return rc;
}

static int token_revoke(kc_t *kc, const kc_command_t *cmd, int argc, char **argv) {
  static const struct option options[] = {CMD_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'J': kc->json = true; break;
    case 'h': return cmd_help(cmd);
    default: return cmd_usage_error(cmd, "unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  int rc = cmd_positional(cmd, argc, argv, 1);
  if (rc >= 0)
    return rc;
  const char *id = argv[optind];
  char *path = accounts__path("/v1/tokens/%s", id);
  rc = client_call(kc, "DELETE", path, NULL, 204, NULL);
  free(path);
  if (rc == KC_OK) {
    if (kc->json) {
      json_t *r = json_pack("{s:s, s:b}", "id", id, "revoked", 1);
      out_json(r);
      json_decref(r);
    } else {
      printf("token %s revoked\n", id);
    }
  }
  return rc;
}

const kc_command_t cmd_accounts[] = {
  {"org", "add", "create an organisation",
   "usage: kipctl org add --name NAME --sector SECTOR [--cvr CVR] [--ean EAN] [--json]\n"
   "\n"
   "Create an organisation (admin). SECTOR is one of region_hospital, region_psychiatry,\n"
   "municipality_jobcenter, municipality_social, municipality_addiction, general_practice,\n"
   "civil_society, private, other. CVR is 8 digits, EAN 13.\n", org_add},
  {"org", "list", "list organisations",
   "usage: kipctl org list [--json]\n\nList every organisation.\n", org_list},
  {"user", "add", "create a user",
   "usage: kipctl user add --username NAME --display-name TEXT --org ORG_ID --role ROLE...\n"
   "                       [--email E] [--phone P] [--password | --password-stdin] [--json]\n"
   "\n"
   "Create a user (admin). --role may be repeated or comma-separated: admin, coordinator,\n"
   "caseworker, integration, auditor, analyst. --password asks for a sign-in password on the\n"
   "terminal (twice, without echo); --password-stdin reads it as one line from stdin. Without\n"
   "either the user cannot sign in to the web UI (tokens still work).\n", user_add},
  {"user", "list", "list users",
   "usage: kipctl user list [--org ORG_ID] [--json]\n\nList users (admin), optionally of one organisation.\n",
   user_list},
  {"user", "show", "show one user",
   "usage: kipctl user show USER [--json]\n\nShow a user. USER is an id or a username.\n", user_show},
  {"user", "deactivate", "deactivate a user",
   "usage: kipctl user deactivate USER [--json]\n\n"
   "Deactivate a user (admin): their tokens and sessions stop working at once. USER is an id or a\n"
   "username.\n", user_deactivate},
  {"user", "set-password", "set or reset a user's password",
   "usage: kipctl user set-password USER [--password-stdin] [--json]\n\n"
   "Set or reset another user's sign-in password (admin). The password is asked on the terminal\n"
   "(twice, without echo), or read as one line from stdin with --password-stdin; never give it\n"
   "as an argument. Every sign-in session of the user ends. USER is an id or a username.\n",
   user_set_password},
  {"token", "create", "issue an API token (shown once)",
   "usage: kipctl token create USER --name NAME [--expires-at RFC3339] [--json]\n\n"
   "Issue a bearer token for USER (an id or a username). The token is printed this once and\n"
   "never again; kipd keeps only its hash.\n", token_create},
  {"token", "list", "list a user's tokens",
   "usage: kipctl token list USER [--json]\n\nList USER's tokens, revoked and expired ones included, "
   "never their secrets.\n", token_list},
  {"token", "revoke", "revoke a token",
   "usage: kipctl token revoke TOKEN_ID [--json]\n\nRevoke a token by its id; it stops working at once.\n",
   token_revoke},
};
const size_t cmd_accounts_n = sizeof(cmd_accounts) / sizeof(cmd_accounts[0]);
