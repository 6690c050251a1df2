/* util/histogram: a fixed-bucket latency histogram and the Prometheus text
 * exposition (format 0.0.4) of one, plus a growable text buffer to write
 * the exposition into. Single-threaded (the loop's). */
#ifndef KIPD_UTIL_HISTOGRAM_H
#define KIPD_UTIL_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

/* Upper bounds in seconds: 1 ms .. 10 s, then +Inf. */
#define HIST_NBUCKETS 14
extern const double hist_bounds[HIST_NBUCKETS - 1];

typedef struct hist_s {
  uint64_t counts[HIST_NBUCKETS];  /* per bucket, not cumulative; the last is +Inf */
  uint64_t count;
  uint64_t sum_ns;
} hist_t;

void hist_observe(hist_t *h, uint64_t ns);

typedef struct hist_buf_s {
  char *data;
  size_t len;
  size_t cap;
  int failed;        /* an allocation failed; data is incomplete */
} hist_buf_t;

void hist_buf_printf(hist_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hist_buf_free(hist_buf_t *b);

/* Writes name_bucket{labels,le="..."} (cumulative), name_sum and
 * name_count. labels is e.g. `route="/x",method="GET"` or "". */
void hist_write(hist_buf_t *b, const char *name, const char *labels, const hist_t *h);

/* Escapes a label value (backslash, double quote, newline) into out
 * (size n, truncated). */
void hist_escape_label(const char *in, char *out, size_t n);

#endif
