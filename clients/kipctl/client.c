/* HTTP to kipd with libcurl's easy interface (a CLI may block), JSON with
 * jansson. The bearer token goes only into the Authorization header; it is
 * never printed, and curl's verbose mode is never turned on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "kipctl.h"

#define CLIENT_MAX_BODY (64u * 1024 * 1024)

static size_t client__write(char *data, size_t size, size_t n, void *arg) {
  kc_reply_t *reply = arg;
  size_t add = size * n;
  if (reply->len + add > CLIENT_MAX_BODY)
    return 0;
  char *grown = realloc(reply->text, reply->len + add + 1);
  if (grown == NULL)
    return 0;
  memcpy(grown + reply->len, data, add);
  reply->len += add;
  grown[reply->len] = '\0';
  reply->text = grown;
  return add;
}

int client_request(kc_t *kc, const char *method, const char *path, json_t *body, kc_reply_t *reply) {
  memset(reply, 0, sizeof(*reply));
  if (!kc->conf_loaded) {
    int crc = conf_load(&kc->conf, kc->url_flag, kc->config_path);
    if (crc != KC_OK)
      return crc;
    kc->conf_loaded = true;
  }
  CURL *curl = curl_easy_init();
  if (curl == NULL) {
    fprintf(stderr, "kipctl: cannot start libcurl\n");
    return KC_API;
  }
  size_t url_len = strlen(kc->conf.url) + strlen(path) + 1;
  char *url = malloc(url_len);
  char *payload = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
  char *auth = NULL;
  struct curl_slist *headers = NULL;
  char errbuf[CURL_ERROR_SIZE] = "";
  int rc = KC_API;
  if (url == NULL || (body != NULL && payload == NULL))
    goto done;
  snprintf(url, url_len, "%s%s", kc->conf.url, path);
  headers = curl_slist_append(headers, "Accept: application/json, application/problem+json");
  if (payload != NULL)
    headers = curl_slist_append(headers, "Content-Type: application/json");
  if (kc->conf.token != NULL) {
    size_t n = strlen(kc->conf.token) + 32;
    auth = malloc(n);
    if (auth == NULL)
      goto done;
    snprintf(auth, n, "Authorization: Bearer %s", kc->conf.token);
    headers = curl_slist_append(headers, auth);
  }
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "kipctl/" KIPD_VERSION);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, client__write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (payload != NULL) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
  }
  CURLcode res = curl_easy_perform(curl);
  if (res != CURLE_OK) {
    fprintf(stderr, "kipctl: no answer from %s: %s\n", kc->conf.url,
            errbuf[0] != '\0' ? errbuf : curl_easy_strerror(res));
    goto done;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
  if (reply->text != NULL && reply->len > 0)
    reply->body = json_loadb(reply->text, reply->len, 0, NULL);
  rc = KC_OK;
done:
  if (auth != NULL) {
    explicit_bzero(auth, strlen(auth));
    free(auth);
  }
  curl_slist_free_all(headers);
  if (payload != NULL) {
    explicit_bzero(payload, strlen(payload));
    free(payload);
  }
  free(url);
  curl_easy_cleanup(curl);
  if (rc != KC_OK)
    client_reply_free(reply);
  return rc;
}

void client_reply_free(kc_reply_t *reply) {
  json_decref(reply->body);
  free(reply->text);
  memset(reply, 0, sizeof(*reply));
}

/* One line: the detail, the fields named, the status and the request id. */
int client_fail(kc_t *kc, const kc_reply_t *reply) {
  json_t *p = reply->body;
  const char *detail = json_string_value(json_object_get(p, "detail"));
  const char *title = json_string_value(json_object_get(p, "title"));
  const char *request_id = json_string_value(json_object_get(p, "request_id"));
  fprintf(stderr, "kipctl: %s", detail ? detail : title ? title : "the server refused the request");
  json_t *errors = json_object_get(p, "errors");
  size_t i;
  json_t *e;
  bool first = true;
  json_array_foreach(errors, i, e) {
    const char *field = json_string_value(json_object_get(e, "field"));
    if (field == NULL)
      continue;
    fprintf(stderr, "%s%s", first ? " (field: " : ", ", field);
    first = false;
  }
  if (!first)
    fputc(')', stderr);
  fprintf(stderr, " [HTTP %ld%s%s]\n", reply->status, request_id ? ", request " : "",
          request_id ? request_id : "");
  if (kc->json && json_is_object(p))
    out_json(p);
  return KC_API;
}

int client_call(kc_t *kc, const char *method, const char *path, json_t *body, long want, json_t **out) {
  kc_reply_t reply;
  if (out != NULL)
    *out = NULL;
  int rc = client_request(kc, method, path, body, &reply);
  if (rc != KC_OK)
    return rc;
  if (reply.status != want) {
    rc = client_fail(kc, &reply);
  } else if (out != NULL) {
    *out = reply.body;
    reply.body = NULL;
  }
  client_reply_free(&reply);
  return rc;
}

int client_list_all(kc_t *kc, const char *path, json_t **items) {
  json_t *all = json_array();
  char *cursor = NULL;
  int rc = KC_OK;
  for (int page = 0; page < 10000; page++) {
    size_t n = strlen(path) + 64 + (cursor ? strlen(cursor) : 0);
    char *p = malloc(n);
    if (p == NULL) {
      rc = KC_API;
      break;
    }
    snprintf(p, n, "%s%slimit=500%s%s", path, strchr(path, '?') ? "&" : "?", cursor ? "&cursor=" : "",
             cursor ? cursor : "");
    json_t *body;
    rc = client_call(kc, "GET", p, NULL, 200, &body);
    free(p);
    free(cursor);
    cursor = NULL;
    if (rc != KC_OK)
      break;
    json_array_extend(all, json_object_get(body, "items"));
    const char *next = json_string_value(json_object_get(body, "next_cursor"));
    if (next != NULL)
      cursor = client_escape(next);
    json_decref(body);
    if (cursor == NULL)
      break;
  }
  free(cursor);
  if (rc != KC_OK) {
    json_decref(all);
    return rc;
  }
  *items = all;
  return KC_OK;
}

char *client_escape(const char *s) {
  char *e = curl_easy_escape(NULL, s, 0);
  char *copy = e ? strdup(e) : NULL;
  curl_free(e);
  return copy;
}
