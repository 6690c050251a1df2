/* Where kipctl connects, and with which token.
 *
 * Order: --url, then KIP_URL and KIP_TOKEN, then the config file: --config
 * FILE, else $XDG_CONFIG_HOME/kipctl/config.json (~/.config/kipctl/...).
 * The file is JSON, {"url": "...", "token": "..."}, parsed by jansson. It
 * holds a secret, so kipctl refuses it when group or others may read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kipctl.h"

#define CONF_DEFAULT_URL "http://127.0.0.1:8080"

static void conf__set(char **slot, const char *value) {
  if (*slot == NULL && value != NULL && value[0] != '\0')
    *slot = strdup(value);
}

static char *conf__default_path(void) {
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  char buf[4096];
  if (xdg != NULL && xdg[0] == '/')
    snprintf(buf, sizeof(buf), "%s/kipctl/config.json", xdg);
  else if (home != NULL && home[0] != '\0')
    snprintf(buf, sizeof(buf), "%s/.config/kipctl/config.json", home);
  else
    return NULL;
  return strdup(buf);
}

/* Read the file through one descriptor, so the mode checked is the mode of
 * the file read. A missing default file is not an error. */
static int conf__read_file(kc_conf_t *conf, const char *path, bool explicit) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && !explicit)
      return KC_OK;
    fprintf(stderr, "kipctl: cannot open config file %s: %s\n", path, strerror(errno));
    return KC_USAGE;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "kipctl: config file %s is not a regular file\n", path);
    close(fd);
    return KC_USAGE;
  }
  if ((st.st_mode & 077) != 0) {
    fprintf(stderr,
            "kipctl: config file %s holds a token but is readable by %s (mode %04o); run: chmod 600 %s\n",
            path, (st.st_mode & 070) ? "its group" : "others", (unsigned)(st.st_mode & 07777), path);
    close(fd);
    return KC_USAGE;
  }
  json_error_t err;
  json_t *root = json_loadfd(fd, JSON_REJECT_DUPLICATES, &err);
  close(fd);
  if (!json_is_object(root)) {
    fprintf(stderr, "kipctl: config file %s: line %d: %s\n", path, err.line,
            root == NULL ? err.text : "not a JSON object");
    json_decref(root);
    return KC_USAGE;
  }
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (strcmp(key, "url") != 0 && strcmp(key, "token") != 0) {
      fprintf(stderr, "kipctl: config file %s: unknown key \"%s\" (known: url, token)\n", path, key);
      json_decref(root);
      return KC_USAGE;
    }
    if (!json_is_string(value)) {
      fprintf(stderr, "kipctl: config file %s: \"%s\" must be a string\n", path, key);
      json_decref(root);
      return KC_USAGE;
    }
  }
  conf__set(&conf->url, json_string_value(json_object_get(root, "url")));
  json_t *token = json_object_get(root, "token");
  conf__set(&conf->token, json_string_value(token));
  if (token != NULL)
    explicit_bzero((char *)json_string_value(token), json_string_length(token));
  json_decref(root);
  return KC_OK;
}

int conf_load(kc_conf_t *conf, const char *url_flag, const char *path) {
  memset(conf, 0, sizeof(*conf));
  conf__set(&conf->url, url_flag);
  conf__set(&conf->url, getenv("KIP_URL"));
  conf__set(&conf->token, getenv("KIP_TOKEN"));
  char *file = path != NULL ? strdup(path) : conf__default_path();
  int rc = KC_OK;
  if (file != NULL)
    rc = conf__read_file(conf, file, path != NULL);
  free(file);
  if (rc != KC_OK)
    return rc;
  conf__set(&conf->url, CONF_DEFAULT_URL);
  size_t n = strlen(conf->url);
  while (n > 0 && conf->url[n - 1] == '/')
    conf->url[--n] = '\0';
  if (strncmp(conf->url, "http://", 7) != 0 && strncmp(conf->url, "https://", 8) != 0) {
    fprintf(stderr, "kipctl: the URL must start with http:// or https://\n");
    return KC_USAGE;
  }
  return KC_OK;
}

void conf_free(kc_conf_t *conf) {
  free(conf->url);
  if (conf->token != NULL) {
    explicit_bzero(conf->token, strlen(conf->token));
    free(conf->token);
  }
  memset(conf, 0, sizeof(*conf));
}
