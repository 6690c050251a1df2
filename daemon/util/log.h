/* log: the only module that writes output. One JSON object per line on
 * stderr. Callers must never pass a token, a password or a CPR number. */
#ifndef KIPD_UTIL_LOG_H
#define KIPD_UTIL_LOG_H

#include <jansson.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_set_level(log_level_t level);

/* Write {"ts","level","msg", ...fields}. fields is stolen (may be NULL). */
void log_emit(log_level_t level, const char *msg, json_t *fields);

/* printf-style message with no extra fields. */
void log_msgf(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debugf(...) log_msgf(LOG_DEBUG, __VA_ARGS__)
#define log_infof(...)  log_msgf(LOG_INFO, __VA_ARGS__)
#define log_warnf(...)  log_msgf(LOG_WARN, __VA_ARGS__)
#define log_errorf(...) log_msgf(LOG_ERROR, __VA_ARGS__)

#endif
