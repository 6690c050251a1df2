/* kreq_reply: the replies of a request. Each one releases the request (its
 * JSON, its on_release hook) and hands the bytes to http_respond(); call
 * exactly one reply (or problem, app/kreq_problem.h), once. */
#ifndef KIPD_APP_KREQ_REPLY_H
#define KIPD_APP_KREQ_REPLY_H

#include <jansson.h>
#include <stddef.h>

#include "app/kreq.h"
#include "http/server.h"

/* body is stolen (may be NULL for no body). headers may be NULL. */
void kreq_reply_json(kreq_t *r, int status, json_t *body, const http_header_t *headers, size_t n_headers);

/* Raw bytes with a content type (copied). */
void kreq_reply_raw(kreq_t *r, int status, const char *content_type, const char *body, size_t len,
                    const http_header_t *headers, size_t n_headers);

/* The generic reply for a row shaped (status, body, etag, location, user_id):
 * the body bytes as they are (sealed CPR numbers revealed), with ETag and
 * Location. For result callbacks that only want to look first. */
void kreq_reply_row(kreq_t *r, const kreq_row_t *row);

/* The generic reply with one extra string member added to the body object
 * (used to show a new token once). value is borrowed. */
void kreq_reply_row_with(kreq_t *r, const kreq_row_t *row, const char *key, const char *value);

#endif
