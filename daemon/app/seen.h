/* seen: the user behind a credential hash, remembered from the database's
 * answers so that the access log can name the caller of a request that kipd
 * rejected before it reached the database (a 400 or 422 from the body
 * checks). It is used for the log only, never to authenticate: every request
 * that reaches the database is authenticated there.
 *
 * A fixed table of slots indexed by the hash's first 32 bits; a newer
 * credential overwrites an older one in its slot. */
#ifndef KIPD_APP_SEEN_H
#define KIPD_APP_SEEN_H

#define SEEN_SLOTS 1024

typedef struct seen_slot_s {
  char cred_hash[65];   /* SHA-256 hex of a token or session id */
  char user_id[40];
} seen_slot_t;

typedef struct seen_s {
  seen_slot_t slots[SEEN_SLOTS];
} seen_t;

/* Remember that cred_hash (64 hex digits) belongs to user_id. Both borrowed.
 * An empty hash or user is ignored. */
void seen_remember(seen_t *seen, const char *cred_hash, const char *user_id);

/* The user remembered for cred_hash: borrowed from the table, or NULL. */
const char *seen_recall(seen_t *seen, const char *cred_hash);

/* Forget cred_hash (the database refused it). */
void seen_forget(seen_t *seen, const char *cred_hash);

#endif
