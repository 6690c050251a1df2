#include "util/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk_s {
  arena_chunk_t *next;
  size_t size;
  size_t used;
  _Alignas(16) unsigned char data[];
};

#define ARENA_ALIGN 16

void arena_init(arena_t *a, size_t chunk_size) {
  a->head = NULL;
  a->chunk_size = chunk_size ? chunk_size : 8192;
  a->total = 0;
}

void *arena_alloc(arena_t *a, size_t n) {
  size_t need = (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
  if (need < n)
    return NULL;
  arena_chunk_t *c = a->head;
  if (c == NULL || c->size - c->used < need) {
    size_t size = a->chunk_size;
    if (need > size)
      size = need;
    c = malloc(sizeof(*c) + size);
    if (c == NULL)
      return NULL;
    c->size = size;
    c->used = 0;
    /* A huge single allocation gets its own chunk behind the head so the
     * head's free space stays usable. */
    if (a->head != NULL && need > a->chunk_size) {
      c->next = a->head->next;
      a->head->next = c;
    } else {
      c->next = a->head;
      a->head = c;
    }
  }
  void *p = c->data + c->used;
  c->used += need;
  a->total += need;
  return p;
}

void *arena_calloc(arena_t *a, size_t n) {
  void *p = arena_alloc(a, n);
  if (p != NULL)
    memset(p, 0, n);
  return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *arena_strdup(arena_t *a, const char *s) {
  return arena_strndup(a, s, strlen(s));
}

char *arena_vsprintf(arena_t *a, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return NULL;
  char *p = arena_alloc(a, (size_t)n + 1);
  if (p == NULL)
    return NULL;
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *arena_sprintf(arena_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = arena_vsprintf(a, fmt, ap);
  va_end(ap);
  return p;
}

void arena_reset(arena_t *a) {
  arena_chunk_t *c = a->head;
  while (c != NULL) {
    arena_chunk_t *next = c->next;
    free(c);
    c = next;
  }
  a->head = NULL;
  a->total = 0;
}
