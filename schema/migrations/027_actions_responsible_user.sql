-- 027_actions_responsible_user: the user behind an action's responsible
-- participant, kept on the action (issue 12).
--
-- GET /v1/me/actions?overdue=true (a caseworker's worklist) found the
-- caller's open actions through each of their participations: about 220
-- index probes for a busy caseworker, then every overdue candidate sorted.
-- With the user on the action, one index gives the caller's open actions
-- in due-date order, and the page stops after its limit. The column is
-- derived: kip.actions_responsible_user() (schema/functions/16_actions.sql)
-- sets it whenever an action is written and follows a participant whose
-- user changes. It is not part of any document or of the plan history.
ALTER TABLE kip.actions ADD COLUMN responsible_user_id uuid;
UPDATE kip.actions a SET responsible_user_id = pa.user_id
  FROM kip.participants pa
 WHERE pa.id = a.responsible_participant_id AND pa.user_id IS NOT NULL;
CREATE INDEX actions_user_open ON kip.actions (responsible_user_id, due_date, id)
  WHERE status IN ('open', 'in_progress');
