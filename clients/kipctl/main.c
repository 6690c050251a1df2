/* kipctl: parse the global options, find the command, run it. */
#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "kipctl.h"

static const char main_usage[] =
  "usage: kipctl [--url URL] [--config FILE] [--json] COMMAND [ARGS]\n"
  "\n"
  "A command-line client of kipd's HTTP API.\n"
  "\n"
  "Global options:\n"
  "  --url URL       kipd's base URL (else KIP_URL, the config file, http://127.0.0.1:8080)\n"
  "  --config FILE   config file (JSON {\"url\", \"token\"}, mode 0600);\n"
  "                  default $XDG_CONFIG_HOME/kipctl/config.json\n"
  "  --json          machine-readable JSON on stdout\n"
  "  --help          this text; COMMAND --help for a command's\n"
  "  --version       kipctl's version\n"
  "\n"
  "The token comes from KIP_TOKEN or the config file, never from the command line.\n"
  "Exit codes: 0 success, 1 refused by kipd or no answer, 2 usage or configuration error.\n"
  "\n"
  "Commands:\n";

static const struct {
  const kc_command_t *commands;
  const size_t *n;
} main_families[] = {
  {cmd_accounts, &cmd_accounts_n},
  {cmd_plans, &cmd_plans_n},
};

#define MAIN_N_FAMILIES (sizeof(main_families) / sizeof(main_families[0]))

static void main_list(FILE *out, const char *group) {
  for (size_t f = 0; f < MAIN_N_FAMILIES; f++)
    for (size_t i = 0; i < *main_families[f].n; i++) {
      const kc_command_t *c = &main_families[f].commands[i];
      if (group != NULL && strcmp(group, c->group) != 0)
        continue;
      char name[64];
      snprintf(name, sizeof(name), "%s%s%s", c->group, c->name ? " " : "", c->name ? c->name : "");
      fprintf(out, "  %-22s %s\n", name, c->summary);
    }
}

static const kc_command_t *main_find(const char *group, const char *name, bool *group_found) {
  *group_found = false;
  for (size_t f = 0; f < MAIN_N_FAMILIES; f++)
    for (size_t i = 0; i < *main_families[f].n; i++) {
      const kc_command_t *c = &main_families[f].commands[i];
      if (strcmp(group, c->group) != 0)
        continue;
      *group_found = true;
      if (c->name == NULL || (name != NULL && strcmp(name, c->name) == 0))
        return c;
    }
  return NULL;
}

int cmd_help(const kc_command_t *cmd) {
  fputs(cmd->usage, stdout);
  return KC_OK;
}

int cmd_usage_error(const kc_command_t *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("kipctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fputs(cmd->usage, stderr);
  return KC_USAGE;
}

int cmd_positional(const kc_command_t *cmd, int argc, char **argv, int n) {
  int have = argc - optind;
  if (have < n)
    return cmd_usage_error(cmd, "missing argument");
  if (have > n)
    return cmd_usage_error(cmd, "unexpected argument \"%s\"", argv[optind + n]);
  return -1;
}

static int main_run(kc_t *kc, int argc, char **argv) {
  static const struct option options[] = {
    {"url", required_argument, NULL, 'u'},
    {"config", required_argument, NULL, 'c'},
    {"json", no_argument, NULL, 'J'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
  };
  int opt;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
    switch (opt) {
    case 'u': kc->url_flag = optarg; break;
    case 'c': kc->config_path = optarg; break;
    case 'J': kc->json = true; break;
    case 'h':
      fputs(main_usage, stdout);
      main_list(stdout, NULL);
      return KC_OK;
    case 'V':
      printf("kipctl %s\n", KIPD_VERSION);
      return KC_OK;
    default:
      fprintf(stderr, "kipctl: unknown or incomplete option \"%s\"\n", argv[optind - 1]);
      fputs(main_usage, stderr);
      main_list(stderr, NULL);
      return KC_USAGE;
    }
  }
  if (optind >= argc) {
    fputs("kipctl: no command given\n", stderr);
    fputs(main_usage, stderr);
    main_list(stderr, NULL);
    return KC_USAGE;
  }
  const char *group = argv[optind];
  if (strcmp(group, "help") == 0) {
    fputs(main_usage, stdout);
    main_list(stdout, NULL);
    return KC_OK;
  }
  const char *name = optind + 1 < argc ? argv[optind + 1] : NULL;
  bool group_found;
  const kc_command_t *cmd = main_find(group, name, &group_found);
  if (cmd == NULL) {
    bool help = name != NULL && (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0);
    FILE *out = help ? stdout : stderr;
    if (!group_found)
      fprintf(stderr, "kipctl: unknown command \"%s\"\n", group);
    else if (!help)
      fprintf(stderr, name ? "kipctl: unknown %s command \"%s\"\n" : "kipctl: %s needs a command\n", group, name);
    if (group_found)
      fprintf(out, "usage: kipctl [OPTIONS] %s COMMAND [ARGS]\n\nCommands:\n", group);
    else
      fputs("usage: kipctl [OPTIONS] COMMAND [ARGS]\n\nCommands:\n", out);
    main_list(out, group_found ? group : NULL);
    return help ? KC_OK : KC_USAGE;
  }
  /* The command's own argv starts at its last word. */
  int first = optind + (cmd->name != NULL ? 1 : 0);
  optind = 0;
  opterr = 0;
  return cmd->run(kc, cmd, argc - first, argv + first);
}

int main(int argc, char **argv) {
  setlocale(LC_ALL, "");
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
    fputs("kipctl: cannot start libcurl\n", stderr);
    return KC_API;
  }
  kc_t kc = {0};
  int rc = main_run(&kc, argc, argv);
  conf_free(&kc.conf);
  curl_global_cleanup();
  if (fflush(stdout) != 0 && rc == KC_OK) {
    perror("kipctl: stdout");
    rc = KC_API;
  }
  return rc;
}
