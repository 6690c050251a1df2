/* kreq_cpr: CPR numbers in a request's body and its answer. A new number is
 * sealed under the keyring's current key before it goes to the database;
 * sealed numbers in an answer are revealed before it goes to the client
 * (util/cpr_crypt.h, docs/cpr-encryption.md). */
#ifndef KIPD_APP_KREQ_CPR_H
#define KIPD_APP_KREQ_CPR_H

#include <jansson.h>

#include "app/kreq.h"
#include "util/error.h"

/* Seal citizen.cpr (a normalised CPR number or null) for the database:
 * cpr becomes the mask ("010190-****"), cpr_enc the sealed token bound to
 * the plan, cpr_hmac the blind index (both null for a null cpr), and
 * cpr_plan_id the plan the token is bound to: plan_id (a uuid, borrowed),
 * or with plan_id NULL (a new plan) a fresh id that kip_api.plan_create
 * gives the plan. No cpr member: nothing to do. citizen is borrowed.
 * Returns 0 or -errno (answer 500). */
int kreq_cpr_seal(kreq_t *r, json_t *citizen, const char *plan_id) KIPD_MUST_CHECK;

/* The blind index (hex) of a CPR-shaped search term, 10 digits or
 * DDMMYY-NNNN. Returns 0 or -EINVAL. */
int kreq_cpr_index(kreq_t *r, const char *cpr, char out[65]) KIPD_MUST_CHECK;

#endif
