-- For tests/integration/test_stats.py: every grouping over periods that
-- start and end mid-month, on month edges, around today, in the future, on
-- one day, over DST changes and over five years. The summary's body must
-- equal the facts' body (less the header kip_api.stats adds to it), and the
-- summary a recount of the facts.
-- One line: cases;differing;which differ;summary rows differing from a recount.
WITH cases AS (
  SELECT c.f, c.t, g.g,
         kip.stats_body_summary(c.f, c.t, kip.today(), g.g)::jsonb - ARRAY['from', 'to', 'group_by', 'organisation', 'as_of']
           IS DISTINCT FROM kip.stats_body_facts(c.f, c.t, kip.today(), g.g, NULL) AS differs
    FROM (SELECT kip.today() AS d) t
   CROSS JOIN LATERAL (VALUES
     ((t.d - interval '1 year')::date + 1, t.d),
     (t.d - 400, t.d - 17),
     (date_trunc('month', t.d - 200)::date, date_trunc('month', t.d)::date - 1),
     (date_trunc('month', t.d - 200)::date, t.d + 45),
     (t.d - 3, t.d + 3),
     (t.d, t.d),
     (t.d - 77, t.d - 77),
     (t.d + 5, t.d + 90),
     (t.d - 1800, t.d + 20),
     (date_trunc('month', t.d)::date, (date_trunc('month', t.d) + interval '1 month')::date - 1),
     ((t.d - interval '13 months')::date + 9, (t.d - interval '1 month')::date - 12),
     (date '2026-03-29', date '2026-03-29'),
     (date '2025-10-26', date '2026-03-30')
   ) c(f, t)
   CROSS JOIN (VALUES ('month'), ('quarter'), ('organisation'), ('sector')) g(g)
)
SELECT count(*) || ';' || count(*) FILTER (WHERE differs) || ';'
       || coalesce(string_agg(format('%s..%s %s', f, t, g), ', ') FILTER (WHERE differs), '') || ';'
       || (SELECT count(*) FROM kip.stats_sum_check())
  FROM cases;
