/* Statistics: GET /v1/stats, the activity figures and quality indicators of
 * KIP for managers (coordinators: their own organisation) and analysts
 * (every organisation), as JSON or, with Accept: text/csv, as CSV for a
 * spreadsheet with a Danish locale.
 *
 * kip_api.stats (schema/functions/24_stats.sql) answers the raw counts of
 * every cell. This file lays them out as tables, suppresses small cells and
 * their complements (util/disclosure) over all tables at once, and only then
 * computes the rates and shows the medians. The definitions and the rules
 * are in docs/statistics.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "app/app.h"
#include "util/csv.h"
#include "util/disclosure.h"

#define STATS_THRESHOLD 5
#define STATS_MAX_DAYS 1827   /* five years and a leap day */
#define STATS_MAX_PARTS 8

/* ------------------------------------------------------------ the tables */

typedef enum {
  STATS_COUNT,   /* a published count */
  STATS_HIDDEN,  /* never published: whole minus the other parts of its relation */
  STATS_RATE,    /* num / (sum of den), 3 decimals */
  STATS_DAYS,    /* a median or percentile from SQL, shown when `n` is */
} stats_kind_t;

typedef struct stats_col_s {
  const char *name;
  stats_kind_t kind;
  const char *num;                  /* RATE: numerator; DAYS: the count it is computed over */
  const char *den[STATS_MAX_PARTS]; /* RATE: the denominator's parts */
} stats_col_t;

/* A relation within each row: whole = sum of parts (a HIDDEN part is
 * computed as the rest). */
typedef struct stats_rel_s {
  const char *whole;
  const char *parts[STATS_MAX_PARTS];
} stats_rel_t;

typedef struct stats_table_s {
  const char *name;             /* the key in the SQL answer and the response */
  const stats_col_t *cols;
  const stats_rel_t *rels;
} stats_table_t;

static const stats_col_t activity_cols[] = {
  {"meetings_held", STATS_COUNT, NULL, {NULL}},
  {"meetings_cancelled", STATS_COUNT, NULL, {NULL}},
  {"meetings_outcome_overdue", STATS_COUNT, NULL, {NULL}},
  {"meetings_citizen_attended", STATS_COUNT, NULL, {NULL}},
  {"meetings_citizen_absent_or_unrecorded", STATS_HIDDEN, NULL, {NULL}},
  {"citizens_active", STATS_COUNT, NULL, {NULL}},
  {"plans_active", STATS_COUNT, NULL, {NULL}},
  {"plans_started", STATS_COUNT, NULL, {NULL}},
  {"plans_continuing", STATS_HIDDEN, NULL, {NULL}},
  {"first_meeting_plans", STATS_COUNT, NULL, {NULL}},
  {"first_meeting_median_days", STATS_DAYS, "first_meeting_plans", {NULL}},
  {"first_meeting_p90_days", STATS_DAYS, "first_meeting_plans", {NULL}},
  {"meeting_intervals", STATS_COUNT, NULL, {NULL}},
  {"meeting_interval_median_days", STATS_DAYS, "meeting_intervals", {NULL}},
  {"actions_due", STATS_COUNT, NULL, {NULL}},
  {"actions_on_time", STATS_COUNT, NULL, {NULL}},
  {"actions_late", STATS_HIDDEN, NULL, {NULL}},
  {"actions_on_time_share", STATS_RATE, "actions_on_time", {"actions_due", NULL}},
  {"plans_with_gp", STATS_COUNT, NULL, {NULL}},
  {"plans_without_gp", STATS_HIDDEN, NULL, {NULL}},
  {"plans_with_gp_share", STATS_RATE, "plans_with_gp", {"plans_active", NULL}},
  {"plans_with_jobcenter", STATS_COUNT, NULL, {NULL}},
  {"plans_without_jobcenter", STATS_HIDDEN, NULL, {NULL}},
  {"plans_with_jobcenter_share", STATS_RATE, "plans_with_jobcenter", {"plans_active", NULL}},
  {"plans_with_addiction", STATS_COUNT, NULL, {NULL}},
  {"plans_without_addiction", STATS_HIDDEN, NULL, {NULL}},
  {"plans_with_addiction_share", STATS_RATE, "plans_with_addiction", {"plans_active", NULL}},
  {NULL, 0, NULL, {NULL}},
};

static const stats_rel_t activity_rels[] = {
  {"meetings_held", {"meetings_citizen_attended", "meetings_citizen_absent_or_unrecorded", NULL}},
  {"plans_active", {"plans_started", "plans_continuing", NULL}},
  {"actions_due", {"actions_on_time", "actions_late", NULL}},
  {"plans_active", {"plans_with_gp", "plans_without_gp", NULL}},
  {"plans_active", {"plans_with_jobcenter", "plans_without_jobcenter", NULL}},
  {"plans_active", {"plans_with_addiction", "plans_without_addiction", NULL}},
  {NULL, {NULL}},
};

static const stats_col_t closed_cols[] = {
  {"completed", STATS_COUNT, NULL, {NULL}},
  {"transferred", STATS_COUNT, NULL, {NULL}},
  {"declined", STATS_COUNT, NULL, {NULL}},
  {"consent_withdrawn", STATS_COUNT, NULL, {NULL}},
  {"deceased", STATS_COUNT, NULL, {NULL}},
  {"moved", STATS_COUNT, NULL, {NULL}},
  {"other", STATS_COUNT, NULL, {NULL}},
  {"closed", STATS_COUNT, NULL, {NULL}},
  {"completion_rate", STATS_RATE, "completed", {"completed", "transferred", "declined", "consent_withdrawn", NULL}},
  {NULL, 0, NULL, {NULL}},
};

static const stats_rel_t closed_rels[] = {
  {"closed", {"completed", "transferred", "declined", "consent_withdrawn", "deceased", "moved", "other", NULL}},
  {NULL, {NULL}},
};

static const stats_col_t actions_cols[] = {
  {"actions_due", STATS_COUNT, NULL, {NULL}},
  {"actions_on_time", STATS_COUNT, NULL, {NULL}},
  {"actions_late", STATS_HIDDEN, NULL, {NULL}},
  {"actions_on_time_share", STATS_RATE, "actions_on_time", {"actions_due", NULL}},
  {NULL, 0, NULL, {NULL}},
};

static const stats_rel_t actions_rels[] = {
  {"actions_due", {"actions_on_time", "actions_late", NULL}},
  {NULL, {NULL}},
};

enum { STATS_ACTIVITY, STATS_CLOSED, STATS_BY_AREA, STATS_BY_SECTOR, STATS_N_TABLES };

static const stats_table_t stats_tables[STATS_N_TABLES] = {
  {"activity", activity_cols, activity_rels},
  {"closed", closed_cols, closed_rels},
  {"actions_by_area", actions_cols, actions_rels},
  {"actions_by_sector", actions_cols, actions_rels},
};

/* ------------------------------------------------------- the cell space */

/* All cells of all tables, so that a total shown in several tables (the
 * actions due and done on time) is one cell and suppressed alike. */
typedef struct stats_s {
  json_t *answer;                       /* borrowed: the SQL body */
  json_t *rows[STATS_N_TABLES];         /* borrowed: each table's rows (arrays), total last */
  size_t *at[STATS_N_TABLES];           /* [col] -> index in a row's array; SIZE_MAX: not in SQL */
  size_t key_at[STATS_N_TABLES], label_at[STATS_N_TABLES];
  size_t n_rows[STATS_N_TABLES];
  size_t n_cols[STATS_N_TABLES];
  size_t *index[STATS_N_TABLES];        /* [row * n_cols + col] -> cell; SIZE_MAX for RATE/DAYS */
  disclosure_cell_t *cells;
  size_t n_cells;
  disclosure_relation_t *rels;
  size_t n_rels;
  size_t *parts;                        /* storage for every relation's parts */
  size_t n_parts;
} stats_t;

static size_t stats__col(const stats_table_t *t, const char *name) {
  for (size_t i = 0; t->cols[i].name != NULL; i++)
    if (strcmp(t->cols[i].name, name) == 0)
      return i;
  return SIZE_MAX;
}

static void stats__free(stats_t *s) {
  for (int t = 0; t < STATS_N_TABLES; t++) {
    free(s->index[t]);
    free(s->at[t]);
  }
  free(s->cells);
  free(s->rels);
  free(s->parts);
}

/* A row's value of column `at` (SIZE_MAX: none), borrowed or NULL. */
static json_t *stats__get(json_t *row, size_t at) { return at == SIZE_MAX ? NULL : json_array_get(row, at); }

static long long stats__int(json_t *row, size_t at) {
  json_t *v = stats__get(row, at);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* The position of `name` in a table's column names, or SIZE_MAX. */
static size_t stats__at(json_t *names, const char *name) {
  size_t i;
  json_t *v;
  json_array_foreach(names, i, v) {
    if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
      return i;
  }
  return SIZE_MAX;
}

static int stats__add_rel(stats_t *s, size_t whole, const size_t *parts, size_t n) {
  s->rels[s->n_rels++] = (disclosure_relation_t){.whole = whole, .parts = s->parts + s->n_parts, .n_parts = n};
  memcpy(s->parts + s->n_parts, parts, n * sizeof(size_t));
  s->n_parts += n;
  return 0;
}

/* Build the cells and relations from the SQL answer; 0 or -errno. */
static int stats__build(stats_t *s, json_t *answer) {
  memset(s, 0, sizeof(*s));
  s->answer = answer;
  size_t max_cells = 0, max_rels = 0, max_parts = 0;
  for (int t = 0; t < STATS_N_TABLES; t++) {
    const stats_table_t *tab = &stats_tables[t];
    s->rows[t] = json_object_get(answer, tab->name);
    if (!json_is_array(s->rows[t]) || json_array_size(s->rows[t]) == 0)
      return -EINVAL;
    s->n_rows[t] = json_array_size(s->rows[t]);
    while (tab->cols[s->n_cols[t]].name != NULL)
      s->n_cols[t]++;
    json_t *names = json_object_get(json_object_get(answer, "columns"), tab->name);
    s->at[t] = malloc(s->n_cols[t] * sizeof(size_t));
    if (!json_is_array(names) || s->at[t] == NULL)
      return s->at[t] == NULL ? -ENOMEM : -EINVAL;
    s->key_at[t] = stats__at(names, "key");
    s->label_at[t] = stats__at(names, "label");
    for (size_t c = 0; c < s->n_cols[t]; c++)
      s->at[t][c] = stats__at(names, tab->cols[c].name);
    size_t n_rels = 0;
    while (tab->rels[n_rels].whole != NULL)
      n_rels++;
    max_cells += s->n_rows[t] * s->n_cols[t];
    /* per row: the table's relations; per count column: one over the rows */
    max_rels += s->n_rows[t] * n_rels + s->n_cols[t];
    max_parts += s->n_rows[t] * n_rels * STATS_MAX_PARTS + s->n_cols[t] * s->n_rows[t];
  }
  s->cells = calloc(max_cells + 1, sizeof(*s->cells));
  s->rels = calloc(max_rels + 1, sizeof(*s->rels));
  s->parts = calloc(max_parts + 1, sizeof(*s->parts));
  if (s->cells == NULL || s->rels == NULL || s->parts == NULL)
    return -ENOMEM;
  for (int t = 0; t < STATS_N_TABLES; t++) {
    const stats_table_t *tab = &stats_tables[t];
    size_t nc = s->n_cols[t], nr = s->n_rows[t];
    s->index[t] = malloc(nr * nc * sizeof(size_t));
    if (s->index[t] == NULL)
      return -ENOMEM;
    for (size_t r = 0; r < nr; r++) {
      json_t *row = json_array_get(s->rows[t], r);
      bool total = r == nr - 1;
      for (size_t c = 0; c < nc; c++) {
        const stats_col_t *col = &tab->cols[c];
        size_t *slot = &s->index[t][r * nc + c];
        if (col->kind == STATS_RATE || col->kind == STATS_DAYS) {
          *slot = SIZE_MAX;
          continue;
        }
        /* The actions tables' total row is the activity table's total. */
        if (total && (t == STATS_BY_AREA || t == STATS_BY_SECTOR)) {
          const stats_table_t *act = &stats_tables[STATS_ACTIVITY];
          size_t ac = stats__col(act, col->name);
          size_t an = s->n_rows[STATS_ACTIVITY];
          if (ac != SIZE_MAX) {
            *slot = s->index[STATS_ACTIVITY][(an - 1) * s->n_cols[STATS_ACTIVITY] + ac];
            continue;
          }
        }
        *slot = s->n_cells++;
        s->cells[*slot] = (disclosure_cell_t){.value = stats__int(row, s->at[t][c]),
                                              .hidden = col->kind == STATS_HIDDEN};
      }
    }
    /* Hidden cells: the whole minus the published parts of their relation. */
    for (size_t r = 0; r < nr; r++) {
      for (size_t k = 0; tab->rels[k].whole != NULL; k++) {
        const stats_rel_t *rel = &tab->rels[k];
        size_t w = stats__col(tab, rel->whole);
        size_t ids[STATS_MAX_PARTS];
        size_t n = 0;
        long long rest = s->cells[s->index[t][r * nc + w]].value;
        size_t hidden = SIZE_MAX;
        for (size_t p = 0; rel->parts[p] != NULL; p++) {
          size_t pc = stats__col(tab, rel->parts[p]);
          ids[n++] = s->index[t][r * nc + pc];
          if (tab->cols[pc].kind == STATS_HIDDEN)
            hidden = ids[n - 1];
          else
            rest -= s->cells[ids[n - 1]].value;
        }
        if (hidden != SIZE_MAX)
          s->cells[hidden].value = rest < 0 ? 0 : rest;
        int rc = stats__add_rel(s, s->index[t][r * nc + w], ids, n);
        if (rc != 0)
          return rc;
      }
    }
    /* Each count column: its group rows add up to the total row. (Not true
     * of distinct people over months, whom a citizen may be counted in
     * twice; protecting them as if it were costs a cell at most.) */
    for (size_t c = 0; c < nc && nr > 1; c++) {
      if (tab->cols[c].kind == STATS_RATE || tab->cols[c].kind == STATS_DAYS)
        continue;
      size_t ids[nr];
      for (size_t r = 0; r + 1 < nr; r++)
        ids[r] = s->index[t][r * nc + c];
      int rc = stats__add_rel(s, s->index[t][(nr - 1) * nc + c], ids, nr - 1);
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}

/* ------------------------------------------------------------ rendering */

/* x (>= 0) rounded half up to `scale` (10, 1000). */
static double stats__round(double x, double scale) {
  return (double)(long long)(x * scale + 0.5) / scale;
}

typedef enum { STATS_SHOWN, STATS_SUPPRESSED, STATS_NONE } stats_state_t;

/* One published value: its state and number. */
static stats_state_t stats__value(const stats_t *s, int t, size_t r, size_t c, double *out, int *decimals) {
  const stats_table_t *tab = &stats_tables[t];
  const stats_col_t *col = &tab->cols[c];
  size_t nc = s->n_cols[t];
  json_t *row = json_array_get(s->rows[t], r);
  *decimals = 0;
  if (col->kind == STATS_COUNT) {
    const disclosure_cell_t *cell = &s->cells[s->index[t][r * nc + c]];
    *out = (double)cell->value;
    return cell->suppressed ? STATS_SUPPRESSED : STATS_SHOWN;
  }
  if (col->kind == STATS_DAYS) {
    const disclosure_cell_t *n = &s->cells[s->index[t][r * nc + stats__col(tab, col->num)]];
    json_t *v = stats__get(row, s->at[t][c]);
    if (n->suppressed || (n->value > 0 && n->value < STATS_THRESHOLD))
      return STATS_SUPPRESSED;
    if (n->value == 0 || !json_is_number(v))
      return STATS_NONE;
    *out = stats__round(json_number_value(v), 10);
    *decimals = 1;
    return STATS_SHOWN;
  }
  /* RATE: from published counts only. */
  const disclosure_cell_t *num = &s->cells[s->index[t][r * nc + stats__col(tab, col->num)]];
  long long den = 0;
  bool suppressed = num->suppressed;
  for (size_t i = 0; col->den[i] != NULL; i++) {
    const disclosure_cell_t *d = &s->cells[s->index[t][r * nc + stats__col(tab, col->den[i])]];
    suppressed = suppressed || d->suppressed;
    den += d->value;
  }
  if (suppressed)
    return STATS_SUPPRESSED;
  if (den == 0)
    return STATS_NONE;
  *out = stats__round((double)num->value / (double)den, 1000);
  *decimals = 3;
  return STATS_SHOWN;
}

/* One JSON value as compact text (a borrowed jansson value: the strings of
 * the answer, escaped by jansson). */
static void stats__put(FILE *out, json_t *v) {
  if (v == NULL)
    fputs("null", out);
  else
    json_dumpf(v, out, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* One published value as JSON text: an integer, a number with up to
 * `decimals` digits (no trailing zeros beyond the first: 0.409, 1.0, 12.5),
 * null, or {"value": null, "suppressed": true}. */
static void stats__put_value(FILE *out, stats_state_t st, double v, int decimals) {
  if (st == STATS_SUPPRESSED) {
    fputs("{\"value\":null,\"suppressed\":true}", out);
    return;
  }
  if (st == STATS_NONE) {
    fputs("null", out);
    return;
  }
  if (decimals == 0) {
    fprintf(out, "%lld", (long long)v);
    return;
  }
  char num[64];
  int n = snprintf(num, sizeof(num), "%.*f", decimals, v);
  while (n > 2 && num[n - 1] == '0' && num[n - 2] != '.')
    num[--n] = '\0';
  fputs(num, out);
}

/* The JSON answer, written as text straight from the cells: building it as
 * jansson objects and encoding them took about 40 ms by organisation (1,001
 * rows of 17 values; docs/performance.md). The keys come in the order of
 * docs/statistics.md: the header, the suppression rule, then each table as
 * {rows, total}. New text in *text (free()), its length in *len; 0 or
 * -ENOMEM. */
static int stats__json(const stats_t *s, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  FILE *out = open_memstream(text, len);
  if (out == NULL)
    return -ENOMEM;
  const char *keys[] = {"from", "to", "group_by", "organisation", "as_of", "refreshed_at", "groups", NULL};
  fputc('{', out);
  for (size_t i = 0; keys[i] != NULL; i++) {
    fprintf(out, "\"%s\":", keys[i]);
    stats__put(out, json_object_get(s->answer, keys[i]));
    fputc(',', out);
  }
  fprintf(out, "\"suppression\":{\"threshold\":%d,\"rule\":\"complementary\"}", STATS_THRESHOLD);
  for (int t = 0; t < STATS_N_TABLES; t++) {
    const stats_table_t *tab = &stats_tables[t];
    fprintf(out, ",\"%s\":{\"rows\":[", tab->name);
    for (size_t r = 0; r < s->n_rows[t]; r++) {
      json_t *src = json_array_get(s->rows[t], r);
      bool is_total = r == s->n_rows[t] - 1;
      bool first = true;
      if (is_total)
        fputs("],\"total\":{", out);
      else {
        fputs(r == 0 ? "{\"key\":" : ",{\"key\":", out);
        stats__put(out, stats__get(src, s->key_at[t]));
        fputs(",\"label\":", out);
        stats__put(out, stats__get(src, s->label_at[t]));
        first = false;
      }
      for (size_t c = 0; c < s->n_cols[t]; c++) {
        if (tab->cols[c].kind == STATS_HIDDEN)
          continue;
        double v = 0;
        int decimals;
        stats_state_t st = stats__value(s, t, r, c, &v, &decimals);
        fprintf(out, first ? "\"%s\":" : ",\"%s\":", tab->cols[c].name);
        first = false;
        stats__put_value(out, st, v, decimals);
      }
      fputc('}', out);
    }
    fputc('}', out);
  }
  fputc('}', out);
  if (ferror(out)) {
    fclose(out);
    free(*text);
    *text = NULL;
    return -ENOMEM;
  }
  if (fclose(out) != 0) {
    free(*text);
    *text = NULL;
    return -ENOMEM;
  }
  return 0;
}

/* The CSV answer: each table as a block (a line naming it, a header, its
 * rows, its total, an empty line). New text in *text, or -errno. */
static int stats__csv(const stats_t *s, char **text, size_t *len) {
  csv_t c;
  int rc = csv_init(&c);
  if (rc != 0)
    return rc;
  for (int t = 0; t < STATS_N_TABLES; t++) {
    const stats_table_t *tab = &stats_tables[t];
    csv_text(&c, "table");
    csv_text(&c, tab->name);
    csv_end_record(&c);
    csv_text(&c, "key");
    csv_text(&c, "label");
    for (size_t k = 0; k < s->n_cols[t]; k++)
      if (tab->cols[k].kind != STATS_HIDDEN)
        csv_text(&c, tab->cols[k].name);
    csv_end_record(&c);
    for (size_t r = 0; r < s->n_rows[t]; r++) {
      json_t *src = json_array_get(s->rows[t], r);
      bool is_total = r == s->n_rows[t] - 1;
      csv_text(&c, is_total ? "total" : json_string_value(stats__get(src, s->key_at[t])));
      csv_text(&c, is_total ? "total" : json_string_value(stats__get(src, s->label_at[t])));
      for (size_t k = 0; k < s->n_cols[t]; k++) {
        if (tab->cols[k].kind == STATS_HIDDEN)
          continue;
        double v;
        int decimals;
        stats_state_t st = stats__value(s, t, r, k, &v, &decimals);
        if (st == STATS_SUPPRESSED)
          csv_text(&c, "..");
        else if (st == STATS_NONE)
          csv_text(&c, NULL);
        else
          csv_number(&c, v, decimals);
      }
      csv_end_record(&c);
    }
    csv_end_record(&c);
  }
  return csv_finish(&c, text, len);
}

/* Does the Accept header (RFC 9110 §12.5.1) name text/csv with a q above 0?
 * Each comma-separated media range is "type/subtype" followed by
 * ";"-separated parameters, one of which may be q. Only an explicit
 * text/csv counts: any other range, the wildcard too, keeps JSON. */
static bool stats__wants_csv(const char *accept) {
  if (accept == NULL)
    return false;
  for (const char *range = accept; *range != '\0';) {
    size_t range_len = strcspn(range, ",");
    const char *end = range + range_len;
    const char *p = range + strspn(range, " \t");
    size_t type_len = strcspn(p, ";,");
    if (p + type_len > end)
      type_len = (size_t)(end - p);
    while (type_len > 0 && (p[type_len - 1] == ' ' || p[type_len - 1] == '\t'))
      type_len--;
    if (type_len == 8 && strncasecmp(p, "text/csv", 8) == 0) {
      double q = 1;
      for (const char *param = p + strcspn(p, ";,"); param < end && *param == ';';) {
        param++;
        param += strspn(param, " \t");
        if ((param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
          q = strtod(param + 2, NULL);
        param += strcspn(param, ";,");
      }
      return q > 0;
    }
    range = *end == ',' ? end + 1 : end;
  }
  return false;
}

static void stats_done(kreq_t *r, const kreq_row_t *row) {
  json_t *answer = kreq_row_object(r, row);
  if (answer == NULL)
    return;
  stats_t s;
  int rc = stats__build(&s, answer);
  if (rc != 0) {
    stats__free(&s);
    json_decref(answer);
    kreq_problem(r, 500, "could not lay out the statistics", NULL, NULL);
    return;
  }
  if (disclosure_protect(s.cells, s.n_cells, s.rels, s.n_rels, STATS_THRESHOLD) != 0) {
    stats__free(&s);
    json_decref(answer);
    kreq_problem(r, 500, "could not suppress the small cells", NULL, NULL);
    return;
  }
  static const http_header_t vary[] = {{"Vary", "Accept"}};
  if (stats__wants_csv(http_request_header(r->http, "accept"))) {
    char *text = NULL;
    size_t len = 0;
    rc = stats__csv(&s, &text, &len);
    stats__free(&s);
    json_decref(answer);
    if (rc != 0) {
      kreq_problem(r, 500, "could not write the CSV", NULL, NULL);
      return;
    }
    kreq_reply_raw(r, 200, "text/csv; charset=utf-8; header=present", text, len, vary, 1);
    free(text);
    return;
  }
  char *text = NULL;
  size_t len = 0;
  rc = stats__json(&s, &text, &len);
  stats__free(&s);
  json_decref(answer);
  if (rc != 0) {
    kreq_problem(r, 500, "could not build the statistics", NULL, NULL);
    return;
  }
  kreq_reply_raw(r, 200, "application/json; charset=utf-8", text, len, vary, 1);
  free(text);
}

/* ---------------------------------------------------------------- route */

static const char *const group_by_values[] = {"month", "quarter", "organisation", "sector", NULL};

static const jc_field_t stats_query[] = {
  {.name = "from", .type = JC_STRING, .format = jc_format_date},
  {.name = "to", .type = JC_STRING, .format = jc_format_date},
  {.name = "organisation", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "group_by", .type = JC_STRING, .enum_values = group_by_values},
  {NULL},
};

static const pg_stmt_t stats_stmt = {"stats", "SELECT * FROM kip_api.stats($1::jsonb, $2::jsonb)", 2};

/* Days from 1970-01-01 of a checked YYYY-MM-DD (the proleptic Gregorian
 * calendar, Howard Hinnant's days_from_civil). */
static long stats__days(const char *date) {
  int y = atoi(date), m = atoi(date + 5), d = atoi(date + 8);
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void stats_handler(kreq_t *r) {
  r->query_problem = true;   /* every problem here is about the query string */
  const char *from = json_string_value(json_object_get(r->query, "from"));
  const char *to = json_string_value(json_object_get(r->query, "to"));
  if (from != NULL && to != NULL) {
    long span = stats__days(to) - stats__days(from);
    if (span < 0) {
      kreq_problem_code(r, 422, "from: must not be after to", "out_of_range", "from", "must not be after to");
      return;
    }
    if (span >= STATS_MAX_DAYS) {
      kreq_problem_code(r, 422, "to: the period is longer than 1827 days (five years)", "out_of_range", "to",
                        "the period may be at most 1827 days (five years)");
      return;
    }
  } else if (from != NULL || to != NULL) {
    const char *missing = from == NULL ? "from" : "to";
    kreq_problem_code(r, 422, arena_sprintf(&r->http->arena, "%s: give both from and to, or neither", missing),
                      "required", missing, "give both from and to, or neither");
    return;
  }
  const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  params[1] = kreq_json_text(r, r->query);
  kreq_exec(r, &stats_stmt, params, 200, stats_done);
}

const route_t api_stats_routes[] = {
  {"GET", "/v1/stats", stats_handler, NULL, stats_query, &stats_stmt, 200, 0},
};
const size_t api_stats_n_routes = KIPD_ARRAY_SIZE(api_stats_routes);
