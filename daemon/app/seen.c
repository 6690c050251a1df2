#include "app/seen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static seen_slot_t *seen__slot(seen_t *seen, const char *cred_hash) {
  unsigned long h = strtoul((char[9]){cred_hash[0], cred_hash[1], cred_hash[2], cred_hash[3],
                                      cred_hash[4], cred_hash[5], cred_hash[6], cred_hash[7], 0},
                            NULL, 16);
  return &seen->slots[h % SEEN_SLOTS];
}

void seen_remember(seen_t *seen, const char *cred_hash, const char *user_id) {
  if (cred_hash[0] == '\0' || user_id[0] == '\0')
    return;
  seen_slot_t *slot = seen__slot(seen, cred_hash);
  snprintf(slot->cred_hash, sizeof(slot->cred_hash), "%s", cred_hash);
  snprintf(slot->user_id, sizeof(slot->user_id), "%s", user_id);
}

const char *seen_recall(seen_t *seen, const char *cred_hash) {
  if (cred_hash[0] == '\0')
    return NULL;
  seen_slot_t *slot = seen__slot(seen, cred_hash);
  return strcmp(slot->cred_hash, cred_hash) == 0 ? slot->user_id : NULL;
}

void seen_forget(seen_t *seen, const char *cred_hash) {
  if (cred_hash[0] == '\0')
    return;
  seen_slot_t *slot = seen__slot(seen, cred_hash);
  if (strcmp(slot->cred_hash, cred_hash) == 0)
    memset(slot, 0, sizeof(*slot));
}
