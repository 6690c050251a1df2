/* arena: per-request bump allocator.
 *
 * All memory of one HTTP request comes from one arena and is released at once
 * when the request ends, so a dropped client leaks nothing and nothing needs
 * individual frees.
 */
#ifndef KIPD_UTIL_ARENA_H
#define KIPD_UTIL_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include "util/error.h"

typedef struct arena_chunk_s arena_chunk_t;

typedef struct arena_s {
  arena_chunk_t *head;   /* newest chunk */
  size_t chunk_size;     /* default size of new chunks */
  size_t total;          /* bytes handed out, for metrics */
} arena_t;

/* Initialise an empty arena. No memory is taken until the first alloc. */
void arena_init(arena_t *a, size_t chunk_size);

/* Allocate n bytes aligned to 16. Returns new memory owned by the arena, or
 * NULL when out of memory. */
void *arena_alloc(arena_t *a, size_t n);
void *arena_calloc(arena_t *a, size_t n);

/* Copies owned by the arena; NULL on out of memory. s is borrowed. */
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
char *arena_sprintf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vsprintf(arena_t *a, const char *fmt, va_list ap);

/* Release everything; the arena may be used again afterwards. */
void arena_reset(arena_t *a);

#endif
