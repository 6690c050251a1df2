-- 023_perf_writes: the index that the overlap check of meeting writes needs
-- (issue 12, scenario 6: POST /v1/meetings/{id}/outcome).
--
-- kip.meeting_warnings looks, for each invitee who is a user, for another
-- planned meeting of that user at an overlapping time. It went from the
-- user's participants to every invitation they ever had (meeting_invitees by
-- participant_id) and then to each meeting, to keep the planned ones: about
-- 280-570 invitations per busy user at scale 0.3, read for each of the 4-6
-- invitees of every meeting created, rescheduled or followed by an outcome
-- (about two thirds of the outcome's database time). It now goes from the
-- user's participants to the planned meetings of their plans in the time
-- window (this index; held and cancelled meetings are not in it), and only
-- then to the invitation. The index is partial, so it holds only the
-- meetings still planned.
CREATE INDEX meetings_plan_planned ON kip.meetings (plan_id, starts_at) WHERE status = 'planned';

-- The caller's participants by user id, from the index alone (an index-only
-- scan instead of one heap page per participant): GET /v1/me/actions
-- (kip_api.my_actions, scenario 2: 200-400 participants for a busy
-- caseworker) needs their ids, and the overlap check above needs their ids
-- and plans. It serves every lookup by user_id that participants_user
-- served, so that one goes.
CREATE INDEX participants_user_id ON kip.participants (user_id, id) INCLUDE (plan_id);
DROP INDEX kip.participants_user;
