/* disclosure: small-cell suppression for published count tables, with
 * complementary suppression so that no suppressed cell can be worked out by
 * subtraction (statistical disclosure control). Pure arithmetic on a flat
 * array of cells; knows nothing of what is counted.
 *
 * A table is a set of cells and a set of additive relations, each
 * "whole = part + part + ...": a column of group rows and its total row, a
 * row of reasons and its sum. A cell may be hidden: part of a relation but
 * never published (e.g. the actions not done on time, which the reader can
 * compute as due - on time).
 *
 * The rules (docs/statistics.md):
 *   1. primary: a published cell whose value is 1 .. threshold-1 is
 *      suppressed; 0 is shown (it describes nobody).
 *   2. complementary, repeated until nothing changes: a relation in which
 *      exactly one cell is unknown (suppressed or hidden) and that cell is
 *      suppressed, or hidden with a value of 1 .. threshold-1, gets one more
 *      cell suppressed: the smallest non-zero published part, else the whole.
 *      (A zero part would not protect: it would be known to be zero.)
 * Then no relation holds exactly one unknown cell that needs protecting,
 * so no single subtraction recovers one. */
#ifndef KIPD_UTIL_DISCLOSURE_H
#define KIPD_UTIL_DISCLOSURE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

typedef struct disclosure_cell_s {
  long long value;   /* the true count, >= 0 */
  bool hidden;       /* in: never published */
  bool suppressed;   /* out: published as suppressed */
  bool primary;      /* out: suppressed because it is small */
} disclosure_cell_t;

/* One relation: cells[whole] = sum of cells[parts[i]]. parts is borrowed. */
typedef struct disclosure_relation_s {
  size_t whole;
  const size_t *parts;
  size_t n_parts;
} disclosure_relation_t;

/* Apply both rules to cells (in place; suppressed and primary are
 * overwritten). Returns 0, or -EINVAL for an index out of range or a
 * threshold under 1. */
int disclosure_protect(disclosure_cell_t *cells, size_t n_cells, const disclosure_relation_t *relations,
                       size_t n_relations, long long threshold) KIPD_MUST_CHECK;

#endif
