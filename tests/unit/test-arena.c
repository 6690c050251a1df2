#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "util/arena.h"

int main(void) {
  arena_t a;
  arena_init(&a, 64);
  char *s = arena_strdup(&a, "koordinerende indsatsplan");
  tap_is_str(s, "koordinerende indsatsplan", "strdup copies");
  void *p1 = arena_alloc(&a, 3);
  void *p2 = arena_alloc(&a, 5);
  tap_ok(((uintptr_t)p1 % 16) == 0 && ((uintptr_t)p2 % 16) == 0, "allocations are 16-byte aligned");
  tap_ok(p1 != p2, "distinct allocations");
  char *big = arena_alloc(&a, 10000);
  tap_ok(big != NULL, "an allocation larger than a chunk succeeds");
  memset(big, 'x', 10000);
  char *after = arena_strdup(&a, "efter");
  tap_is_str(after, "efter", "small allocations still work after a big one");
  tap_is_str(s, "koordinerende indsatsplan", "earlier memory is untouched");
  char *f = arena_sprintf(&a, "%s-%d", "møde", 90);
  tap_is_str(f, "møde-90", "sprintf formats into the arena");
  int *z = arena_calloc(&a, 8 * sizeof(int));
  int sum = 0;
  for (int i = 0; i < 8; i++)
    sum += z[i];
  tap_is_int(sum, 0, "calloc zeroes");
  tap_ok(a.total >= 10000, "total counts bytes handed out");
  arena_reset(&a);
  tap_ok(a.head == NULL && a.total == 0, "reset frees every chunk");
  tap_is_str(arena_strdup(&a, "igen"), "igen", "the arena is usable after reset");
  arena_reset(&a);
  return tap_done();
}
