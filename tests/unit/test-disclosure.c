/* Small-cell suppression and its complementary cells (util/disclosure). */
#include <stddef.h>

#include "tap.h"
#include "util/disclosure.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A column of rows 0..n-1 and its total at index n. */
static void column(disclosure_cell_t *c, const long long *values, size_t n, size_t *parts,
                   disclosure_relation_t *rel) {
  long long total = 0;
  for (size_t i = 0; i < n; i++) {
    c[i] = (disclosure_cell_t){.value = values[i]};
    total += values[i];
    parts[i] = i;
  }
  c[n] = (disclosure_cell_t){.value = total};
  *rel = (disclosure_relation_t){.whole = n, .parts = parts, .n_parts = n};
}

int main(void) {
  disclosure_cell_t c[8];
  size_t parts[8];
  disclosure_relation_t rel;

  /* Nothing small: nothing suppressed. */
  column(c, (long long[]){10, 20, 30}, 3, parts, &rel);
  tap_is_int(disclosure_protect(c, 4, &rel, 1, 5), 0, "protect: ok");
  tap_ok(!c[0].suppressed && !c[1].suppressed && !c[2].suppressed && !c[3].suppressed, "no small cell: all shown");

  /* One small cell: it and the smallest other non-zero part go. */
  column(c, (long long[]){3, 20, 8}, 3, parts, &rel);
  tap_is_int(disclosure_protect(c, 4, &rel, 1, 5), 0, "protect: ok");
  tap_ok(c[0].suppressed && c[0].primary, "3 is suppressed as small");
  tap_ok(c[2].suppressed && !c[2].primary, "8, the smallest other part, is its complement");
  tap_ok(!c[1].suppressed && !c[3].suppressed, "20 and the total stay");

  /* Zero is shown, and never chosen as the complement (it would be known
   * to be zero): the larger non-zero part goes. */
  column(c, (long long[]){2, 0, 40}, 3, parts, &rel);
  tap_is_int(disclosure_protect(c, 4, &rel, 1, 5), 0, "protect: ok");
  tap_ok(c[0].primary && !c[1].suppressed, "2 suppressed, the zero shown");
  tap_ok(c[2].suppressed && !c[2].primary && !c[3].suppressed, "40 is the complement, not the zero");

  /* Only zeros beside the small part: the total is the complement. */
  {
    disclosure_cell_t y[3] = {{.value = 30}, {.value = 3}, {.value = 0}};
    size_t p[2] = {1, 2};
    disclosure_relation_t r = {.whole = 0, .parts = p, .n_parts = 2};
    y[0].value = 3;
    y[1].value = 3;
    tap_is_int(disclosure_protect(y, 3, &r, 1, 5), 0, "protect: ok");
    tap_ok(y[0].primary && y[1].primary && !y[2].suppressed, "a small total is small itself");
    y[0].value = 30;   /* not additive on purpose (a non-additive column, e.g. distinct people) */
    tap_is_int(disclosure_protect(y, 3, &r, 1, 5), 0, "protect: ok");
    tap_ok(y[1].primary && y[0].suppressed && !y[0].primary, "only a zero beside it: the whole goes");
  }

  /* Two small cells protect each other. */
  column(c, (long long[]){1, 4, 30}, 3, parts, &rel);
  tap_is_int(disclosure_protect(c, 4, &rel, 1, 5), 0, "protect: ok");
  tap_ok(c[0].primary && c[1].primary && !c[2].suppressed && !c[3].suppressed, "two small: nothing more");

  /* A small total: the smallest non-zero part goes with it... and then the
   * relation has two unknowns. */
  column(c, (long long[]){0, 3, 0}, 3, parts, &rel);
  tap_is_int(disclosure_protect(c, 4, &rel, 1, 5), 0, "protect: ok");
  tap_ok(c[1].primary && c[3].primary, "part and total both small");

  /* A hidden small cell: due 12, on time 10, late 2 (hidden). */
  {
    disclosure_cell_t h[3] = {{.value = 12}, {.value = 10}, {.value = 2, .hidden = true}};
    size_t p[2] = {1, 2};
    disclosure_relation_t r = {.whole = 0, .parts = p, .n_parts = 2};
    tap_is_int(disclosure_protect(h, 3, &r, 1, 5), 0, "protect: ok");
    tap_ok(h[1].suppressed && !h[0].suppressed, "late 2 could be computed: on time is suppressed");
    h[2].value = 7;
    h[1].value = 5;
    tap_is_int(disclosure_protect(h, 3, &r, 1, 5), 0, "protect: ok");
    tap_ok(!h[1].suppressed && !h[0].suppressed, "late 7 may be computed: all shown");
  }

  /* Two dimensions: a 2x2 table with row and column totals. Cells:
   *   a b | ab
   *   c d | cd
   *   ac bd | t
   * a = 2 alone is small. Its row complement and column complement must
   * both be suppressed, and then the rows and columns they sit in again. */
  {
    enum { A, B, AB, C, D, CD, AC, BD, T, NC };
    disclosure_cell_t x[NC] = {[A] = {.value = 2}, [B] = {.value = 10}, [AB] = {.value = 12},
                               [C] = {.value = 20}, [D] = {.value = 30}, [CD] = {.value = 50},
                               [AC] = {.value = 22}, [BD] = {.value = 40}, [T] = {.value = 62}};
    size_t r1[] = {A, B}, r2[] = {C, D}, r3[] = {AC, BD}, c1[] = {A, C}, c2[] = {B, D}, c3[] = {AB, CD};
    disclosure_relation_t rels[] = {{AB, r1, 2}, {CD, r2, 2}, {T, r3, 2},
                                    {AC, c1, 2}, {BD, c2, 2}, {T, c3, 2}};
    tap_is_int(disclosure_protect(x, NC, rels, N(rels), 5), 0, "protect: ok");
    int bad = 0;
    for (size_t i = 0; i < N(rels); i++) {
      int unknown = x[rels[i].whole].suppressed;
      for (size_t k = 0; k < rels[i].n_parts; k++)
        unknown += x[rels[i].parts[k]].suppressed;
      if (unknown == 1)
        bad++;
    }
    tap_is_int(bad, 0, "2-D: no relation is left with exactly one suppressed cell");
    tap_ok(x[A].primary && x[B].suppressed && x[C].suppressed && x[D].suppressed,
           "2-D: a, b, c and d are all suppressed");
  }

  /* Bad input. */
  column(c, (long long[]){1, 2}, 2, parts, &rel);
  tap_is_int(disclosure_protect(c, 3, &rel, 1, 0), -EINVAL, "threshold 0 refused");
  rel.whole = 7;
  tap_is_int(disclosure_protect(c, 3, &rel, 1, 5), -EINVAL, "index out of range refused");
  return tap_done();
}
