/* The CSV writer (util/csv): BOM, ';', CRLF, RFC 4180 quoting, decimal
 * comma, no formulas. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "util/csv.h"

int main(void) {
  csv_t c;
  char *text = NULL;
  size_t len = 0;
  tap_is_int(csv_init(&c), 0, "init");
  csv_text(&c, "key");
  csv_text(&c, "Hvidovre; \"Amager\"");
  csv_number(&c, 12, 0);
  csv_number(&c, 0.875, 3);
  csv_end_record(&c);
  csv_text(&c, "=HYPERLINK(\"x\")");
  csv_text(&c, "two\r\nlines");
  csv_text(&c, NULL);
  csv_text(&c, " padded");
  csv_number(&c, -1.5, 1);
  csv_end_record(&c);
  tap_is_int(csv_finish(&c, &text, &len), 0, "finish");
  const char *want = "\xEF\xBB\xBF" "key;\"Hvidovre; \"\"Amager\"\"\";12;0,875\r\n"
                     "\"'=HYPERLINK(\"\"x\"\")\";\"two\r\nlines\";;\" padded\";-1,5\r\n";
  tap_is_str(text, want, "the whole text");
  tap_is_int((long long)len, (long long)strlen(want), "its length");
  free(text);
  return tap_done();
}
