#include "util/histogram.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const double hist_bounds[HIST_NBUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

void hist_observe(hist_t *h, uint64_t ns) {
  double s = (double)ns / 1e9;
  size_t i = 0;
  while (i < HIST_NBUCKETS - 1 && s > hist_bounds[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum_ns += ns;
}

void hist_buf_printf(hist_buf_t *b, const char *fmt, ...) {
  if (b->failed)
    return;
  for (;;) {
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 8192;
    while (cap - b->len <= (size_t)n)
      cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
      b->failed = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
}

void hist_buf_free(hist_buf_t *b) {
  free(b->data);
  *b = (hist_buf_t){0};
}

void hist_write(hist_buf_t *b, const char *name, const char *labels, const hist_t *h) {
  const char *sep = labels[0] ? "," : "";
  uint64_t cum = 0;
  for (size_t i = 0; i < HIST_NBUCKETS - 1; i++) {
    cum += h->counts[i];
    hist_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, hist_bounds[i],
                (unsigned long long)cum);
  }
  hist_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)h->count);
  const char *o = labels[0] ? "{" : "", *c = labels[0] ? "}" : "";
  hist_buf_printf(b, "%s_sum%s%s%s %.9f\n", name, o, labels, c, (double)h->sum_ns / 1e9);
  hist_buf_printf(b, "%s_count%s%s%s %llu\n", name, o, labels, c, (unsigned long long)h->count);
}

void hist_escape_label(const char *in, char *out, size_t n) {
  size_t o = 0;
  for (; *in && o + 3 < n; in++) {
    if (*in == '\\' || *in == '"') {
      out[o++] = '\\';
      out[o++] = *in;
    } else if (*in == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else {
      out[o++] = *in;
    }
  }
  if (n > 0)
    out[o] = '\0';
}
