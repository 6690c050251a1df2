#include "util/disclosure.h"

#include <errno.h>

static bool disclosure__small(const disclosure_cell_t *c, long long threshold) {
  return c->value >= 1 && c->value < threshold;
}

static bool disclosure__unknown(const disclosure_cell_t *c) {
  return c->hidden || c->suppressed;
}

/* One pass over a relation: returns true when it suppressed a cell. */
static bool disclosure__relation(disclosure_cell_t *cells, const disclosure_relation_t *rel,
                                 long long threshold) {
  size_t n_unknown = 0;
  const disclosure_cell_t *unknown = NULL;
  if (disclosure__unknown(&cells[rel->whole])) {
    n_unknown++;
    unknown = &cells[rel->whole];
  }
  for (size_t i = 0; i < rel->n_parts; i++) {
    if (disclosure__unknown(&cells[rel->parts[i]])) {
      n_unknown++;
      unknown = &cells[rel->parts[i]];
    }
  }
  if (n_unknown != 1)
    return false;
  if (!unknown->suppressed && !disclosure__small(unknown, threshold))
    return false;   /* a hidden cell that may be worked out: it is not small */
  disclosure_cell_t *pick = NULL;
  for (size_t i = 0; i < rel->n_parts; i++) {
    disclosure_cell_t *c = &cells[rel->parts[i]];
    if (disclosure__unknown(c) || c->value == 0)
      continue;
    if (pick == NULL || c->value < pick->value)
      pick = c;
  }
  if (pick == NULL)
    pick = &cells[rel->whole];
  if (disclosure__unknown(pick))
    return false;   /* cannot happen: the one unknown cell is a part then */
  pick->suppressed = true;
  return true;
}

int disclosure_protect(disclosure_cell_t *cells, size_t n_cells, const disclosure_relation_t *relations,
                       size_t n_relations, long long threshold) {
  if (threshold < 1)
    return -EINVAL;
  for (size_t r = 0; r < n_relations; r++) {
    if (relations[r].whole >= n_cells)
      return -EINVAL;
    for (size_t i = 0; i < relations[r].n_parts; i++)
      if (relations[r].parts[i] >= n_cells)
        return -EINVAL;
  }
  for (size_t i = 0; i < n_cells; i++) {
    cells[i].primary = !cells[i].hidden && disclosure__small(&cells[i], threshold);
    cells[i].suppressed = cells[i].primary;
  }
  /* Each round suppresses at least one more cell or ends, so at most
   * n_cells rounds. */
  bool changed = true;
  for (size_t round = 0; changed && round <= n_cells; round++) {
    changed = false;
    for (size_t r = 0; r < n_relations; r++)
      if (disclosure__relation(cells, &relations[r], threshold))
        changed = true;
  }
  return 0;
}
