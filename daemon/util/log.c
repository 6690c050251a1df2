#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <stdlib.h>
#include <time.h>

static log_level_t log__level = LOG_INFO;
static const char *const log__names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level) { log__level = level; }

static void log__timestamp(char *buf, size_t len) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void log_emit(log_level_t level, const char *msg, json_t *fields) {
  if (level < log__level) {
    json_decref(fields);
    return;
  }
  char ts[40];
  log__timestamp(ts, sizeof(ts));
  json_t *obj = json_object();
  json_object_set_new(obj, "ts", json_string(ts));
  json_object_set_new(obj, "level", json_string(log__names[level]));
  json_object_set_new(obj, "msg", json_string(msg ? msg : ""));
  if (fields != NULL) {
    json_object_update(obj, fields);
    json_decref(fields);
  }
  char *line = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
  json_decref(obj);
  if (line != NULL) {
    fprintf(stderr, "%s\n", line);
    free(line);
  }
}

void log_msgf(log_level_t level, const char *fmt, ...) {
  if (level < log__level)
    return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  log_emit(level, buf, NULL);
}
