/* The latency histogram (util/histogram): bucket edges (an observation on
 * a bound falls in that bucket, le means <=), cumulative exposition ending
 * with +Inf equal to _count, label escaping, the growing text buffer. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "util/histogram.h"

int main(void) {
  hist_t h = {0};
  hist_observe(&h, 1000000);       /* exactly 1 ms: le="0.001" */
  hist_observe(&h, 1000001);       /* just over: le="0.0025" */
  hist_observe(&h, 20000000000u);  /* 20 s: only +Inf */
  tap_is_int((long long)h.counts[0], 1, "1 ms in the first bucket");
  tap_is_int((long long)h.counts[1], 1, "just over 1 ms in the second");
  tap_is_int((long long)h.counts[HIST_NBUCKETS - 1], 1, "20 s in +Inf");
  tap_is_int((long long)h.count, 3, "count");

  hist_buf_t b = {0};
  hist_write(&b, "x_seconds", "route=\"/a\"", &h);
  tap_ok(!b.failed && b.data != NULL, "written");
  tap_ok(strstr(b.data, "x_seconds_bucket{route=\"/a\",le=\"0.001\"} 1\n") != NULL, "first bucket");
  tap_ok(strstr(b.data, "x_seconds_bucket{route=\"/a\",le=\"0.0025\"} 2\n") != NULL, "cumulative");
  tap_ok(strstr(b.data, "x_seconds_bucket{route=\"/a\",le=\"10\"} 2\n") != NULL, "10 s bucket");
  tap_ok(strstr(b.data, "x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n") != NULL, "+Inf is the count");
  tap_ok(strstr(b.data, "x_seconds_count{route=\"/a\"} 3\n") != NULL, "_count");
  tap_ok(strstr(b.data, "x_seconds_sum{route=\"/a\"} 20.002000001\n") != NULL, "_sum in seconds");
  hist_buf_free(&b);

  hist_write(&b, "y", "", &h);
  tap_ok(strstr(b.data, "y_bucket{le=\"+Inf\"} 3\n") != NULL && strstr(b.data, "y_count 3\n") != NULL,
         "no labels: no empty braces");
  hist_buf_free(&b);

  for (int i = 0; i < 5000; i++)
    hist_buf_printf(&b, "line %d\n", i);
  tap_ok(!b.failed && strstr(b.data, "line 4999\n") != NULL && b.len == strlen(b.data), "grows");
  hist_buf_free(&b);

  char out[32];
  hist_escape_label("a\"b\\c\nd", out, sizeof(out));
  tap_is_str(out, "a\\\"b\\\\c\\nd", "escaped");
  hist_escape_label("0123456789012345678901234567890123456789", out, sizeof(out));
  tap_ok(strlen(out) < sizeof(out), "truncated inside its buffer");
  return tap_done();
}
