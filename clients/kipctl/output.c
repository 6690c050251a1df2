/* Human tables and records, and JSON for scripts. Column widths count
 * characters as the terminal shows them (wcswidth), so Danish names line up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "kipctl.h"

static json_t *out__get(json_t *obj, const char *path) {
  const char *dot = strchr(path, '.');
  if (dot == NULL)
    return json_object_get(obj, path);
  char head[128];
  size_t n = (size_t)(dot - path);
  if (n >= sizeof(head))
    return NULL;
  memcpy(head, path, n);
  head[n] = '\0';
  return out__get(json_object_get(obj, head), dot + 1);
}

char *out_cell(json_t *obj, const char *path) {
  json_t *v = out__get(obj, path);
  char buf[64];
  if (v == NULL)   /* absent, or below a null (e.g. "from.seq" with no checkpoint) */
    return strdup("");
  switch (json_typeof(v)) {
  case JSON_STRING:
    return strdup(json_string_value(v));
  case JSON_INTEGER:
    snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return strdup(buf);
  case JSON_REAL:
    snprintf(buf, sizeof(buf), "%g", json_real_value(v));
    return strdup(buf);
  case JSON_TRUE:
    return strdup("yes");
  case JSON_FALSE:
    return strdup("no");
  case JSON_ARRAY: {
    /* A list of strings, comma-separated. */
    size_t len = 1, i;
    json_t *item;
    json_array_foreach(v, i, item) len += (json_is_string(item) ? json_string_length(item) : 4) + 1;
    char *s = calloc(1, len);
    if (s == NULL)
      return NULL;
    json_array_foreach(v, i, item) {
      if (i > 0)
        strcat(s, ",");
      strcat(s, json_is_string(item) ? json_string_value(item) : "…");
    }
    return s;
  }
  case JSON_OBJECT:
    return json_dumps(v, JSON_COMPACT);
  default:
    return strdup("-");
  }
}

static int out__width(const char *s) {
  size_t n = mbstowcs(NULL, s, 0);
  if (n == (size_t)-1)
    return (int)strlen(s);
  wchar_t *w = calloc(n + 1, sizeof(wchar_t));
  if (w == NULL)
    return (int)strlen(s);
  mbstowcs(w, s, n + 1);
  int width = wcswidth(w, n);
  free(w);
  return width < 0 ? (int)n : width;
}

/* Control characters from the server never reach the terminal raw. */
static void out__print(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, stdout);
}

static void out__pad(const char *s, int width, bool last) {
  out__print(s);
  if (!last)
    for (int i = out__width(s); i < width + 2; i++)
      fputc(' ', stdout);
}

void out_table(json_t *items, const out_column_t *columns) {
  size_t ncol = 0;
  while (columns[ncol].header != NULL)
    ncol++;
  size_t nrow = json_array_size(items);
  char **cells = calloc(nrow * ncol + 1, sizeof(char *));
  int *width = calloc(ncol + 1, sizeof(int));
  if (cells == NULL || width == NULL)
    goto done;
  for (size_t c = 0; c < ncol; c++)
    width[c] = out__width(columns[c].header);
  for (size_t r = 0; r < nrow; r++)
    for (size_t c = 0; c < ncol; c++) {
      char *cell = out_cell(json_array_get(items, r), columns[c].path);
      cells[r * ncol + c] = cell;
      int w = cell ? out__width(cell) : 0;
      if (w > width[c])
        width[c] = w;
    }
  for (size_t c = 0; c < ncol; c++)
    out__pad(columns[c].header, width[c], c + 1 == ncol);
  fputc('\n', stdout);
  for (size_t r = 0; r < nrow; r++) {
    for (size_t c = 0; c < ncol; c++)
      out__pad(cells[r * ncol + c] ? cells[r * ncol + c] : "", width[c], c + 1 == ncol);
    fputc('\n', stdout);
  }
done:
  if (cells != NULL)
    for (size_t i = 0; i < nrow * ncol; i++)
      free(cells[i]);
  free(cells);
  free(width);
}

void out_record(json_t *obj, const out_column_t *columns) {
  int width = 0;
  for (const out_column_t *c = columns; c->header != NULL; c++)
    if (out__width(c->header) > width)
      width = out__width(c->header);
  for (const out_column_t *c = columns; c->header != NULL; c++) {
    char *cell = out_cell(obj, c->path);
    out__print(c->header);
    fputc(':', stdout);
    for (int i = out__width(c->header); i < width + 1; i++)
      fputc(' ', stdout);
    out__print(cell ? cell : "");
    fputc('\n', stdout);
    free(cell);
  }
}

void out_json(json_t *value) {
  json_dumpf(value, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  fputc('\n', stdout);
}
