-- 007_bench_indexes: indexes found missing by the benchmark (tests/bench, issue 6).
--
-- GET /v1/me/actions (kip_api.my_actions) joins the caller's participants to
-- kip.actions on responsible_participant_id for every status. The only index
-- on that column, actions_responsible_open, is partial (open/in_progress) and
-- cannot serve the general query, so PostgreSQL scanned all of kip.actions
-- (1,000,000 rows at scale 1) on every worklist request.
CREATE INDEX actions_responsible ON kip.actions (responsible_participant_id, due_date, id);

-- kip.participants has only a partial index on user_id (active participants,
-- participants_user_active). Two request paths look participants up by
-- user_id without "left_at IS NULL" and so scanned all of kip.participants
-- (600,000 rows at scale 1): the overlap check of kip.meeting_warnings (run
-- by every meeting create, reschedule and outcome: 6 scans, ~430 ms of a
-- ~490 ms POST /v1/meetings/{id}/outcome) and kip_api.my_actions
-- (r.user_id = u.id). Measured at scale 1 in a rolled-back transaction:
-- outcome 489 ms -> 46 ms, my_actions ~60 ms -> 20 ms.
CREATE INDEX participants_user ON kip.participants (user_id);

-- GET /v1/plans starts from the plans whose current consent covers the
-- caller's organisation (kip_api.plan_list); without this index that branch
-- read every consent.
CREATE INDEX consents_contact_organisations ON kip.consents USING gin (contact_organisation_ids)
  WHERE superseded_at IS NULL AND withdrawn_at IS NULL AND kip_consent;
