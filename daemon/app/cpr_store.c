#include "app/cpr_store.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/validate.h"

#define CPR_STORE_LOCK "7305872420"   /* pg_advisory_xact_lock: one of these at a time */
#define CPR_STORE_REWRITE_LOCK "7305872421" /* pg_try_advisory_lock: one table rewrite at a time */
#define CPR_STORE_BATCH "2000"        /* rows per statement */

typedef enum {
  CPR_STEP_ACTIVE,         /* rotate: is a kipd connected? */
  CPR_STEP_BEGIN,
  CPR_STEP_KEYS,           /* the registry */
  CPR_STEP_REGISTER,       /* open: first key; rotate: the new key */
  CPR_STEP_SAMPLE,         /* open: do stored tokens decrypt? */
  CPR_STEP_PENDING,        /* open: a batch of clear numbers */
  CPR_STEP_PENDING_SEAL,   /* open: seal it, delete the pending rows */
  CPR_STEP_PENDING_COUNT,  /* rotate: refuse when numbers wait to be sealed */
  CPR_STEP_ROWS,           /* rotate: a batch of tokens */
  CPR_STEP_RESEAL,         /* rotate: re-seal the batch */
  CPR_STEP_DROP_OLD,       /* rotate: the old keys leave the registry */
  CPR_STEP_CURRENT,        /* rotate: the new key becomes current */
  CPR_STEP_LEGACY,         /* open: a batch of version 1 tokens */
  CPR_STEP_LEGACY_SEAL,    /* open: re-seal it as version 2 */
  CPR_STEP_REQUEST,        /* ask for the table rewrite (kip.cpr_rewrite) */
  CPR_STEP_COMMIT,
  /* The table rewrite, on the owner's connection, after the commit. An
   * error here does not stop kipd: the request stays for the next start. */
  CPR_STEP_RW_CHECK,       /* lock, request, ownership */
  CPR_STEP_RW_SET,         /* no statement timeout; a lock timeout */
  CPR_STEP_RW_VACUUM,      /* VACUUM (FULL) */
  CPR_STEP_RW_DONE,        /* the request deleted, the settings reset, unlocked */
  CPR_STEP_RW_UNLOCK,      /* after a failure: settings reset, unlocked */
} cpr_step_t;

typedef struct cpr_store_s {
  pg_pool_t *pool;
  pg_pool_t *owner_pool;        /* the table rewrite; may be pool */
  pg_pool_t *conn_pool;         /* the pool conn came from */
  pg_conn_t *conn;
  const char *key_file;
  cpr_keyring_t **keyring_out;  /* open */
  cpr_keyring_t *keyring;       /* borrowed from the caller */
  bool rotate;
  cpr_step_t step;
  cpr_store_cb cb;
  void *data;
  long count;
  long upgraded;                     /* version 1 tokens re-sealed as version 2 */
  long unopened;                     /* version 1 tokens that did not open (left) */
  bool rewritten;
  char rewrite_problem[400];
  char new_id[CPR_KEY_ID_LEN + 1];   /* rotate: the new key */
  char current_id[CPR_KEY_ID_LEN + 1];
  char last_id[40];                  /* keyset position of the batches */
  char message[512];
} cpr_store_t;

static void cpr_store__on_result(void *data, int err, PGresult *res);

/* A growable text buffer for array literals. */
typedef struct cpr_buf_s {
  char *s;
  size_t len, cap;
  bool failed;
} cpr_buf_t;

static void cpr_buf_add(cpr_buf_t *b, const char *s) {
  size_t n = strlen(s);
  if (b->failed)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *ns = realloc(b->s, cap);
    if (ns == NULL) {
      b->failed = true;
      return;
    }
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n + 1);
  b->len += n;
}

/* Array elements: uuids, tokens, hex and masks need no escaping, but
 * are quoted anyway. */
static void cpr_buf_item(cpr_buf_t *b, int i, const char *v) {
  cpr_buf_add(b, i == 0 ? "{\"" : ",\"");
  cpr_buf_add(b, v);
  cpr_buf_add(b, "\"");
}

static void cpr_buf_wipe(cpr_buf_t *b) {
  if (b->s != NULL)
    OPENSSL_cleanse(b->s, b->cap);
  free(b->s);
  memset(b, 0, sizeof(*b));
}

static void cpr_store__release(cpr_store_t *s) {
  if (s->conn != NULL) {
    /* An open transaction is rolled back when the pool reuses the
     * connection. */
    pg_pool_release(s->conn_pool, s->conn);
    s->conn = NULL;
  }
}

static void cpr_store__finish(cpr_store_t *s, int err) {
  cpr_store__release(s);
  cpr_store_result_t result = {
    .sealed = s->count,
    .upgraded = s->upgraded,
    .unopened = s->unopened,
    .rewritten = s->rewritten,
    .rewrite_problem = s->rewrite_problem[0] ? s->rewrite_problem : NULL,
  };
  s->cb(s->data, err, &result, err ? s->message : NULL);
  free(s);
}

static void cpr_store__fail(cpr_store_t *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cpr_store__fail(cpr_store_t *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->message, sizeof(s->message), fmt, ap);
  va_end(ap);
  cpr_store__finish(s, err);
}

static void cpr_store__query(cpr_store_t *s, cpr_step_t step, const char *sql, int n,
                             const char *const *params) {
  s->step = step;
  int rc = n == 0 ? pg_conn_query(s->conn, sql, cpr_store__on_result, s)
                  : pg_conn_query_params(s->conn, sql, n, params, cpr_store__on_result, s);
  if (rc != 0)
    cpr_store__fail(s, rc, "cannot send a query: %s", strerror(-rc));
}

static void cpr_store__begin(cpr_store_t *s) {
  cpr_store__query(s, CPR_STEP_BEGIN,
                   "BEGIN; SET LOCAL statement_timeout = 0; "
                   "SELECT pg_advisory_xact_lock(" CPR_STORE_LOCK "); "
                   /* the history trigger: re-sealing changes no citizen */
                   "SELECT set_config('kip.cpr_maintenance', 'on', true)",
                   0, NULL);
}

/* ---- the registry against the key file ---- */

/* Every registered key must be in the keyring with the same fingerprint.
 * Returns 0, or fails s. */
static int cpr_store__check_registry(cpr_store_t *s, PGresult *res) {
  s->current_id[0] = '\0';
  for (int i = 0; i < PQntuples(res); i++) {
    const char *id = PQgetvalue(res, i, 0);
    const char *fingerprint = PQgetvalue(res, i, 1);
    const cpr_key_t *k = cpr_keyring_find(s->keyring, id);
    char fp[CPR_INDEX_LEN + 1];
    if (k == NULL) {
      cpr_store__fail(s, -ENOKEY,
                      "the database's CPR numbers are sealed under key %s, which the key file %s "
                      "does not hold: restore the key file this database was encrypted with",
                      id, s->key_file);
      return -ENOKEY;
    }
    if (cpr_key_fingerprint(k, fp) != 0 || strcmp(fp, fingerprint) != 0) {
      cpr_store__fail(s, -EKEYREJECTED,
                      "key %s in the key file %s is not the key the database's CPR numbers are "
                      "sealed under (fingerprints differ): restore the right key file",
                      id, s->key_file);
      return -EKEYREJECTED;
    }
    if (strcmp(PQgetvalue(res, i, 2), "t") == 0)
      snprintf(s->current_id, sizeof(s->current_id), "%s", id);
  }
  return 0;
}

static void cpr_store__register(cpr_store_t *s, const cpr_key_t *k, bool current) {
  char fp[CPR_INDEX_LEN + 1];
  if (cpr_key_fingerprint(k, fp) != 0) {
    cpr_store__fail(s, -EIO, "cannot compute a key fingerprint");
    return;
  }
  const char *params[3] = {k->id, fp, current ? "t" : "f"};
  cpr_store__query(s, CPR_STEP_REGISTER,
                   "INSERT INTO kip.cpr_keys (id, fingerprint, is_current) VALUES ($1, $2, $3::boolean)",
                   3, params);
}

/* open: no key file. Create one unless the database already has keys. */
static int cpr_store__create_key_file(cpr_store_t *s, int registered) {
  cpr_keyring_t *kr = NULL;
  char why[300] = "";
  if (registered > 0) {
    /* A kipd starting beside us may have created it since we looked. */
    int rc = cpr_keyring_load(s->key_file, &kr, why, sizeof(why));
    if (rc == 0) {
      *s->keyring_out = kr;
      s->keyring = kr;
      return 0;
    }
    if (rc != -ENOENT) {
      cpr_store__fail(s, rc, "cannot read the key file: %s", why);
      return rc;
    }
    cpr_store__fail(s, -ENOKEY,
                    "the key file %s does not exist, but the database's CPR numbers are sealed "
                    "under a key: restore the key file from its backup",
                    s->key_file);
    return -ENOKEY;
  }
  int rc = cpr_keyring_new(&kr);
  if (rc == 0)
    rc = cpr_keyring_save(kr, s->key_file, true, why, sizeof(why));
  if (rc == -EEXIST) {
    /* Another kipd created it meanwhile: use theirs. */
    cpr_keyring_free(kr);
    kr = NULL;
    rc = cpr_keyring_load(s->key_file, &kr, why, sizeof(why));
  }
  if (rc != 0) {
    cpr_keyring_free(kr);
    cpr_store__fail(s, rc, "cannot create the key file: %s", why[0] ? why : strerror(-rc));
    return rc;
  }
  *s->keyring_out = kr;
  s->keyring = kr;
  return 0;
}

/* ---- sealing in batches ---- */

/* Open a stored token of plan plan_id, either version. */
static int cpr_store__open_token(const cpr_store_t *s, const char *plan_id, const char *token, size_t len,
                                 char out[12]) {
  if (cpr_token_version(token, len) == 1)
    return cpr_open_v1(s->keyring, token, len, out);
  return cpr_open(s->keyring, plan_id, token, len, out);
}

/* open: seal a batch of pending numbers (id, cpr). */
static void cpr_store__seal_pending(cpr_store_t *s, PGresult *res) {
  cpr_buf_t ids = {0}, encs = {0}, hmacs = {0}, masks = {0};
  const cpr_key_t *k = cpr_keyring_current(s->keyring);
  int n = PQntuples(res);
  for (int i = 0; i < n; i++) {
    const char *cpr = PQgetvalue(res, i, 1);
    char token[CPR_TOKEN_MAX], index[CPR_INDEX_LEN + 1], mask[12];
    if (cpr_seal(k, PQgetvalue(res, i, 0), cpr, token) != 0 || cpr_blind_index(k, cpr, index) != 0) {
      cpr_buf_wipe(&ids);
      cpr_buf_wipe(&encs);
      cpr_buf_wipe(&hmacs);
      cpr_buf_wipe(&masks);
      cpr_store__fail(s, -EINVAL, "a pending CPR number of plan %s cannot be sealed",
                      PQgetvalue(res, i, 0));
      return;
    }
    validate_cpr_mask(cpr, mask);
    cpr_buf_item(&ids, i, PQgetvalue(res, i, 0));
    cpr_buf_item(&encs, i, token);
    cpr_buf_item(&hmacs, i, index);
    cpr_buf_item(&masks, i, mask);
  }
  cpr_buf_add(&ids, "}");
  cpr_buf_add(&encs, "}");
  cpr_buf_add(&hmacs, "}");
  cpr_buf_add(&masks, "}");
  if (ids.failed || encs.failed || hmacs.failed || masks.failed) {
    cpr_store__fail(s, -ENOMEM, "out of memory");
  } else {
    s->count += n;
    const char *params[4] = {ids.s, encs.s, hmacs.s, masks.s};
    cpr_store__query(s, CPR_STEP_PENDING_SEAL,
                     "WITH x AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) "
                     "                  AS x(id, enc, hmac, mask)), "
                     "     u AS (UPDATE kip.plans p SET citizen_cpr = x.mask, citizen_cpr_enc = x.enc, "
                     "                  citizen_cpr_hmac = x.hmac FROM x WHERE p.id = x.id RETURNING p.id) "
                     "DELETE FROM kip.cpr_pending WHERE plan_id IN (SELECT id FROM x)",
                     4, params);
  }
  cpr_buf_wipe(&ids);
  cpr_buf_wipe(&encs);
  cpr_buf_wipe(&hmacs);
  cpr_buf_wipe(&masks);
}

/* Re-seal a batch of (id, token), bound to each row's plan id.
 * rotate: every token, under the new key; one that does not open stops
 * the rotation (nothing is changed). open: version 1 tokens, under the
 * current key; one that does not open is left as it is (it reads as null)
 * and counted. The blind index is recomputed under the same key. */
static void cpr_store__reseal(cpr_store_t *s, PGresult *res) {
  cpr_buf_t ids = {0}, encs = {0}, hmacs = {0};
  const cpr_key_t *k = s->rotate ? cpr_keyring_find(s->keyring, s->new_id) : cpr_keyring_current(s->keyring);
  int n = PQntuples(res), m = 0;
  for (int i = 0; i < n; i++) {
    const char *plan_id = PQgetvalue(res, i, 0);
    const char *token = PQgetvalue(res, i, 1);
    char cpr[12], fresh[CPR_TOKEN_MAX], index[CPR_INDEX_LEN + 1];
    int rc = cpr_store__open_token(s, plan_id, token, (size_t)PQgetlength(res, i, 1), cpr);
    if (rc == 0)
      rc = cpr_seal(k, plan_id, cpr, fresh);
    if (rc == 0)
      rc = cpr_blind_index(k, cpr, index);
    OPENSSL_cleanse(cpr, sizeof(cpr));
    if (rc != 0 && !s->rotate) {
      s->unopened++;
      continue;
    }
    if (rc != 0) {
      cpr_buf_wipe(&ids);
      cpr_buf_wipe(&encs);
      cpr_buf_wipe(&hmacs);
      cpr_store__fail(s, -EBADMSG,
                      "the CPR number of plan %s cannot be decrypted with the key file (a wrong key, "
                      "or a token altered or moved to this plan in the database); nothing was changed",
                      plan_id);
      return;
    }
    cpr_buf_item(&ids, m, plan_id);
    cpr_buf_item(&encs, m, fresh);
    cpr_buf_item(&hmacs, m, index);
    m++;
  }
  snprintf(s->last_id, sizeof(s->last_id), "%s", PQgetvalue(res, n - 1, 0));
  if (m == 0) {
    /* Nothing that opened in this batch: on to the next one. */
    cpr_buf_wipe(&ids);
    cpr_buf_wipe(&encs);
    cpr_buf_wipe(&hmacs);
    cpr_store__query(s, CPR_STEP_LEGACY_SEAL, "SELECT 1", 0, NULL);
    return;
  }
  cpr_buf_add(&ids, "}");
  cpr_buf_add(&encs, "}");
  cpr_buf_add(&hmacs, "}");
  if (ids.failed || encs.failed || hmacs.failed) {
    cpr_store__fail(s, -ENOMEM, "out of memory");
  } else if (s->rotate) {
    s->count += m;
    const char *params[3] = {ids.s, encs.s, hmacs.s};
    cpr_store__query(s, CPR_STEP_RESEAL,
                     "UPDATE kip.plans p SET citizen_cpr_enc = x.enc, citizen_cpr_hmac = x.hmac "
                     "  FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(id, enc, hmac) "
                     " WHERE p.id = x.id",
                     3, params);
  } else {
    /* Only a row still of version 1: a kipd serving meanwhile can write
     * version 2 only (kip.cpr_check_sealed), and that write stands. */
    s->upgraded += m;
    const char *params[3] = {ids.s, encs.s, hmacs.s};
    cpr_store__query(s, CPR_STEP_LEGACY_SEAL,
                     "UPDATE kip.plans p SET citizen_cpr_enc = x.enc, citizen_cpr_hmac = x.hmac "
                     "  FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(id, enc, hmac) "
                     " WHERE p.id = x.id AND left(p.citizen_cpr_enc, 12) = E'\\x01kipd-cpr:1:'",
                     3, params);
  }
  cpr_buf_wipe(&ids);
  cpr_buf_wipe(&encs);
  cpr_buf_wipe(&hmacs);
}

static void cpr_store__next_rows(cpr_store_t *s) {
  const char *params[1] = {s->last_id};
  cpr_store__query(s, CPR_STEP_ROWS,
                   "SELECT id, citizen_cpr_enc FROM kip.plans "
                   " WHERE citizen_cpr_enc IS NOT NULL AND id > $1::uuid ORDER BY id LIMIT "
                   CPR_STORE_BATCH,
                   1, params);
}

static void cpr_store__next_legacy(cpr_store_t *s) {
  const char *params[1] = {s->last_id};
  cpr_store__query(s, CPR_STEP_LEGACY,
                   "SELECT id, citizen_cpr_enc FROM kip.plans "
                   " WHERE left(citizen_cpr_enc, 12) = E'\\x01kipd-cpr:1:' AND id > $1::uuid "
                   " ORDER BY id LIMIT " CPR_STORE_BATCH,
                   1, params);
}

static void cpr_store__next_pending(cpr_store_t *s) {
  cpr_store__query(s, CPR_STEP_PENDING,
                   "SELECT plan_id, cpr FROM kip.cpr_pending ORDER BY plan_id LIMIT "
                   CPR_STORE_BATCH, 0, NULL);
}

/* Before the commit: when anything was sealed anew, ask for the table
 * rewrite in the same transaction (a crash after the commit keeps the
 * request). */
static void cpr_store__request_rewrite(cpr_store_t *s) {
  if (s->count == 0 && s->upgraded == 0) {
    cpr_store__query(s, CPR_STEP_COMMIT, "COMMIT", 0, NULL);
    return;
  }
  const char *params[1] = {s->rotate ? "kipd --rotate-key re-sealed every number under a new key"
                                     : "kipd sealed clear numbers or re-sealed version 1 tokens"};
  cpr_store__query(s, CPR_STEP_REQUEST,
                   "INSERT INTO kip.cpr_rewrite (reason) VALUES ($1) "
                   "ON CONFLICT (one) DO UPDATE SET requested_at = now(), reason = EXCLUDED.reason",
                   1, params);
}

/* ---- the table rewrite ---- */

static void cpr_store__on_rewrite_conn(void *data, int err, pg_conn_t *conn) {
  cpr_store_t *s = data;
  if (err != 0) {
    snprintf(s->rewrite_problem, sizeof(s->rewrite_problem),
             "no connection as the owner role for the table rewrite: %s", strerror(-err));
    cpr_store__finish(s, 0);
    return;
  }
  s->conn = conn;
  s->conn_pool = s->owner_pool;
  cpr_store__query(s, CPR_STEP_RW_CHECK,
                   "SELECT pg_try_advisory_lock(" CPR_STORE_REWRITE_LOCK "), "
                   "       EXISTS (SELECT 1 FROM kip.cpr_rewrite), "
                   "       (SELECT bool_and(pg_has_role(c.relowner, 'USAGE')) FROM pg_class c "
                   "         WHERE c.oid IN ('kip.plans'::regclass, 'kip.cpr_pending'::regclass))",
                   0, NULL);
}

/* After the commit: the replaced row versions leave the table files. The
 * runtime connection goes back first; the owner's pool is asked for one. */
static void cpr_store__rewrite(cpr_store_t *s) {
  cpr_store__release(s);
  int rc = pg_pool_acquire(s->owner_pool, cpr_store__on_rewrite_conn, s);
  if (rc != 0) {
    snprintf(s->rewrite_problem, sizeof(s->rewrite_problem),
             "cannot ask for a connection as the owner role: %s", strerror(-rc));
    cpr_store__finish(s, 0);
  }
}

#define CPR_STORE_REWRITE_BY_HAND                                                                  \
  "as the owner of the tables, run VACUUM (FULL) kip.plans, kip.cpr_pending; "                     \
  "DELETE FROM kip.cpr_rewrite; (docs/cpr-encryption.md)"

static void cpr_store__on_rewrite_result(cpr_store_t *s, int err, PGresult *res) {
  if (err != 0) {
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    /* A session lock outlives a failed statement: unlock unless the
     * unlock itself failed or the connection is gone. */
    if (s->step == CPR_STEP_RW_UNLOCK || err == -ECONNRESET || err == -ECANCELED) {
      if (s->rewrite_problem[0] == '\0')
        snprintf(s->rewrite_problem, sizeof(s->rewrite_problem), "the table rewrite failed (%s); %s",
                 why ? why : strerror(-err), CPR_STORE_REWRITE_BY_HAND);
      cpr_store__finish(s, 0);
      return;
    }
    snprintf(s->rewrite_problem, sizeof(s->rewrite_problem),
             "the table rewrite failed (%s); kipd tries again at the next start, or %s",
             why ? why : strerror(-err), CPR_STORE_REWRITE_BY_HAND);
    cpr_store__query(s, CPR_STEP_RW_UNLOCK,
                     "RESET statement_timeout; RESET lock_timeout; "
                     "SELECT pg_advisory_unlock(" CPR_STORE_REWRITE_LOCK ")",
                     0, NULL);
    return;
  }
  switch (s->step) {
  case CPR_STEP_RW_CHECK: {
    bool locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    bool requested = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    bool owner = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    if (!locked) {
      /* Another kipd starting beside us rewrites the tables. */
      cpr_store__finish(s, 0);
      return;
    }
    if (requested && !owner)
      snprintf(s->rewrite_problem, sizeof(s->rewrite_problem),
               "kipd's role does not own kip.plans, so it cannot rewrite it (give --db-owner); %s",
               CPR_STORE_REWRITE_BY_HAND);
    if (!requested || !owner) {
      cpr_store__query(s, CPR_STEP_RW_UNLOCK,
                       "SELECT pg_advisory_unlock(" CPR_STORE_REWRITE_LOCK ")", 0, NULL);
      return;
    }
    /* No statement timeout: the rewrite copies the table. A lock held
     * elsewhere (a kipd still serving) postpones it rather than queueing
     * every request behind it. */
    cpr_store__query(s, CPR_STEP_RW_SET, "SET statement_timeout = 0; SET lock_timeout = '30s'", 0, NULL);
    return;
  }
  case CPR_STEP_RW_SET:
    /* Alone in its query: VACUUM cannot run inside a transaction block. */
    cpr_store__query(s, CPR_STEP_RW_VACUUM, "VACUUM (FULL) kip.plans, kip.cpr_pending", 0, NULL);
    return;
  case CPR_STEP_RW_VACUUM:
    s->rewritten = true;
    cpr_store__query(s, CPR_STEP_RW_DONE,
                     "DELETE FROM kip.cpr_rewrite; RESET statement_timeout; RESET lock_timeout; "
                     "SELECT pg_advisory_unlock(" CPR_STORE_REWRITE_LOCK ")",
                     0, NULL);
    return;
  case CPR_STEP_RW_DONE:
  case CPR_STEP_RW_UNLOCK:
  default:
    cpr_store__finish(s, 0);
    return;
  }
}

/* ---- the steps ---- */

static void cpr_store__on_result(void *data, int err, PGresult *res) {
  cpr_store_t *s = data;
  if (s->step >= CPR_STEP_RW_CHECK) {
    cpr_store__on_rewrite_result(s, err, res);
    return;
  }
  if (err != 0) {
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    cpr_store__fail(s, err, "database error: %s",
                    why ? why : err == -ECONNRESET ? "connection lost" : strerror(-err));
    return;
  }
  switch (s->step) {
  case CPR_STEP_ACTIVE: {
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    if (n > 0) {
      cpr_store__fail(s, -EBUSY,
                      "kipd is running against this database (%ld connections named 'kipd'): "
                      "stop every kipd before --rotate-key",
                      n);
      return;
    }
    cpr_store__begin(s);
    return;
  }
  case CPR_STEP_BEGIN:
    if (s->rotate) {
      cpr_store__query(s, CPR_STEP_PENDING_COUNT,
                       "LOCK TABLE kip.plans IN EXCLUSIVE MODE; SELECT count(*) FROM kip.cpr_pending",
                       0, NULL);
      return;
    }
    cpr_store__query(s, CPR_STEP_KEYS, "SELECT id, fingerprint, is_current FROM kip.cpr_keys ORDER BY id",
                     0, NULL);
    return;
  case CPR_STEP_PENDING_COUNT:
    if (strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
      cpr_store__fail(s, -EAGAIN,
                      "%s CPR numbers wait to be sealed: start kipd once (it seals them), stop it, "
                      "then rotate", PQgetvalue(res, 0, 0));
      return;
    }
    cpr_store__query(s, CPR_STEP_KEYS, "SELECT id, fingerprint, is_current FROM kip.cpr_keys ORDER BY id",
                     0, NULL);
    return;
  case CPR_STEP_KEYS: {
    int registered = PQntuples(res);
    if (s->keyring == NULL && cpr_store__create_key_file(s, registered) != 0)
      return;
    if (cpr_store__check_registry(s, res) != 0)
      return;
    if (s->rotate) {
      if (registered == 0 || s->current_id[0] == '\0') {
        cpr_store__fail(s, -EINVAL, "the database has no CPR key yet: start kipd once first");
        return;
      }
      /* Step 1: the new key on disk beside the old ones. */
      const cpr_key_t *added;
      char why[300] = "";
      int rc = cpr_keyring_add(s->keyring, &added);
      if (rc == 0) {
        snprintf(s->new_id, sizeof(s->new_id), "%s", added->id);
        rc = cpr_keyring_save(s->keyring, s->key_file, false, why, sizeof(why));
      }
      if (rc != 0) {
        cpr_store__fail(s, rc, "cannot add a key to the key file: %s", why[0] ? why : strerror(-rc));
        return;
      }
      cpr_store__register(s, cpr_keyring_find(s->keyring, s->new_id), false);
      return;
    }
    if (registered == 0) {
      /* A new database: the key file's current key. */
      snprintf(s->current_id, sizeof(s->current_id), "%s", cpr_keyring_current(s->keyring)->id);
      cpr_store__register(s, cpr_keyring_current(s->keyring), true);
      return;
    }
    if (s->current_id[0] == '\0') {
      cpr_store__fail(s, -EINVAL, "kip.cpr_keys names no current key");
      return;
    }
    /* The registry decides which key seals: after an interrupted rotation
     * the file may still call the old one current. */
    if (cpr_keyring_set_current(s->keyring, s->current_id) != 0) {
      cpr_store__fail(s, -ENOKEY, "the key file %s lacks the current key %s", s->key_file, s->current_id);
      return;
    }
  }
    /* fall through */
  case CPR_STEP_REGISTER:
    if (s->rotate) {
      cpr_store__next_rows(s);
      return;
    }
    if (cpr_keyring_set_current(s->keyring, s->current_id) != 0) {
      cpr_store__fail(s, -ENOKEY, "the key file %s lacks the current key %s", s->key_file, s->current_id);
      return;
    }
    /* One token under a key other than the current one, if any, and one
     * more: both must decrypt. */
    {
      const char *params[1] = {s->current_id};
      cpr_store__query(s, CPR_STEP_SAMPLE,
                       "(SELECT id, citizen_cpr_enc FROM kip.plans WHERE citizen_cpr_enc IS NOT NULL "
                       "   AND split_part(citizen_cpr_enc, ':', 3) <> $1 LIMIT 1) "
                       "UNION ALL "
                       "(SELECT id, citizen_cpr_enc FROM kip.plans WHERE citizen_cpr_enc IS NOT NULL LIMIT 1)",
                       1, params);
    }
    return;
  case CPR_STEP_SAMPLE:
    for (int i = 0; i < PQntuples(res); i++) {
      char cpr[12];
      const char *token = PQgetvalue(res, i, 1);
      int rc = cpr_store__open_token(s, PQgetvalue(res, i, 0), token, (size_t)PQgetlength(res, i, 1), cpr);
      OPENSSL_cleanse(cpr, sizeof(cpr));
      if (rc != 0) {
        char id[CPR_KEY_ID_LEN + 1] = "?";
        if (cpr_token_key_id(token, id) != 0)
          snprintf(id, sizeof(id), "?");
        cpr_store__fail(s, -EKEYREJECTED,
                        "a stored CPR number (plan %s, sealed under key %s) does not decrypt with the "
                        "key file %s: restore the right key file (or, if the key file is right, the "
                        "token was altered or moved to this plan in the database)",
                        PQgetvalue(res, i, 0), id, s->key_file);
        return;
      }
    }
    cpr_store__next_pending(s);
    return;
  case CPR_STEP_PENDING:
    if (PQntuples(res) == 0) {
      /* Then the version 1 tokens, re-sealed bound to their plan. */
      cpr_store__next_legacy(s);
      return;
    }
    cpr_store__seal_pending(s, res);
    return;
  case CPR_STEP_PENDING_SEAL:
    cpr_store__next_pending(s);
    return;
  case CPR_STEP_LEGACY:
    if (PQntuples(res) == 0) {
      cpr_store__request_rewrite(s);
      return;
    }
    cpr_store__reseal(s, res);
    return;
  case CPR_STEP_LEGACY_SEAL:
    cpr_store__next_legacy(s);
    return;
  case CPR_STEP_REQUEST:
    cpr_store__query(s, CPR_STEP_COMMIT, "COMMIT", 0, NULL);
    return;
  case CPR_STEP_ROWS:
    if (PQntuples(res) == 0) {
      const char *params[1] = {s->new_id};
      cpr_store__query(s, CPR_STEP_DROP_OLD, "DELETE FROM kip.cpr_keys WHERE id <> $1", 1, params);
      return;
    }
    cpr_store__reseal(s, res);
    return;
  case CPR_STEP_RESEAL:
    cpr_store__next_rows(s);
    return;
  case CPR_STEP_DROP_OLD: {
    const char *params[1] = {s->new_id};
    cpr_store__query(s, CPR_STEP_CURRENT, "UPDATE kip.cpr_keys SET is_current = true WHERE id = $1", 1,
                     params);
    return;
  }
  case CPR_STEP_CURRENT:
    cpr_store__request_rewrite(s);
    return;
  case CPR_STEP_COMMIT:
    if (s->rotate) {
      /* Step 3: the file keeps the new key only. Should this fail, the
       * file still holds the new key and the registry says it is current. */
      char why[300] = "";
      if (cpr_keyring_set_current(s->keyring, s->new_id) == 0)
        cpr_keyring_keep_current(s->keyring);
      int rc = cpr_keyring_save(s->keyring, s->key_file, false, why, sizeof(why));
      if (rc != 0) {
        cpr_store__fail(s, rc,
                        "the database is re-encrypted under key %s, but the key file could not be "
                        "rewritten without the old key (%s); it still works, run --rotate-key again",
                        s->new_id, why);
        return;
      }
    }
    if (s->rotate)
      cpr_store__finish(s, 0);  /* the next start rewrites the tables (kip.cpr_rewrite) */
    else
      cpr_store__rewrite(s);
    return;
  default:
    return;
  }
}

static void cpr_store__on_acquired(void *data, int err, pg_conn_t *conn) {
  cpr_store_t *s = data;
  if (err != 0) {
    cpr_store__fail(s, err, "no database connection: %s", strerror(-err));
    return;
  }
  s->conn = conn;
  s->conn_pool = s->pool;
  if (s->rotate)
    cpr_store__query(s, CPR_STEP_ACTIVE,
                     "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND application_name = 'kipd' AND pid <> pg_backend_pid()",
                     0, NULL);
  else
    cpr_store__begin(s);
}

static int cpr_store__start(pg_pool_t *pool, pg_pool_t *owner_pool, const char *key_file,
                            cpr_keyring_t **keyring_out, cpr_keyring_t *keyring, bool rotate, cpr_store_cb cb,
                            void *data) {
  cpr_store_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->pool = pool;
  s->owner_pool = owner_pool != NULL ? owner_pool : pool;
  s->key_file = key_file;
  s->keyring_out = keyring_out;
  s->keyring = keyring;
  s->rotate = rotate;
  s->cb = cb;
  s->data = data;
  snprintf(s->last_id, sizeof(s->last_id), "00000000-0000-0000-0000-000000000000");
  int rc = pg_pool_acquire(pool, cpr_store__on_acquired, s);
  if (rc != 0)
    free(s);
  return rc;
}

int cpr_store_open(pg_pool_t *pool, pg_pool_t *owner_pool, const char *key_file, cpr_keyring_t **keyring,
                   cpr_store_cb cb, void *data) {
  return cpr_store__start(pool, owner_pool, key_file, keyring, *keyring, false, cb, data);
}

int cpr_store_rotate(pg_pool_t *pool, const char *key_file, cpr_keyring_t *keyring, cpr_store_cb cb,
                     void *data) {
  if (keyring == NULL)
    return -EINVAL;
  return cpr_store__start(pool, NULL, key_file, NULL, keyring, true, cb, data);
}
