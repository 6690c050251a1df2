-- 04_documents.sql: Document builders: the JSON shape of each resource,
-- shared by every route that returns it.
--
-- How they are built (issue 12, docs/performance.md): `json`, not `jsonb`
-- (keys in the order written, no re-parse at each nesting level); a piece
-- that needs a subquery is a PL/pgSQL `RETURN (SELECT ...)` function, whose
-- plan PL/pgSQL caches for the session, with its sub-documents inlined as
-- correlated subqueries; a piece that is one expression over a row stays a
-- SQL function, which the planner inlines into its caller.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

CREATE FUNCTION kip.cpr_mask(p_cpr text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE WHEN p_cpr IS NULL THEN NULL ELSE left(p_cpr, 6) || '-****' END
$function$;

-- A sealed CPR number as a reply carries it: the token and the id of the
-- plan row it was read from, "<token>:<plan id>". kipd opens the token
-- with that plan id (the AES-GCM additional data), so a token copied into
-- another plan's row does not open there (docs/cpr-encryption.md).
CREATE FUNCTION kip.cpr_bound(p_enc text, p_plan_id uuid)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT p_enc || ':' || p_plan_id::text
$function$;

CREATE FUNCTION kip.organisation_doc(o kip.organisations)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object('id', o.id, 'name', o.name, 'sector', o.sector, 'cvr', o.cvr,
                            'ean', o.ean, 'created_at', o.created_at)
$function$;

CREATE FUNCTION kip.user_doc(u kip.users)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object('id', u.id, 'username', u.username, 'display_name', u.display_name,
                            'organisation_id', u.organisation_id, 'roles', to_jsonb(u.roles),
                            'email', u.email, 'phone', u.phone, 'active', u.active,
                            'created_at', u.created_at)
$function$;

CREATE FUNCTION kip.token_doc(t kip.tokens)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object('id', t.id, 'user_id', t.user_id, 'name', t.name,
                            'created_at', t.created_at, 'expires_at', t.expires_at,
                            'revoked_at', t.revoked_at, 'last_used_at', t.last_used_at)
$function$;

CREATE FUNCTION kip.participant_doc(pa kip.participants)
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
  SELECT json_build_object('id', pa.id, 'plan_id', pa.plan_id, 'kind', pa.kind,
                           'user_id', pa.user_id, 'name', pa.name, 'role', pa.role,
                           'role_title', pa.role_title, 'organisation_id', pa.organisation_id,
                           'phone', pa.phone, 'email', pa.email,
                           'default_attendance', pa.default_attendance,
                           'active', pa.left_at IS NULL, 'joined_at', pa.joined_at,
                           'left_at', pa.left_at)
$function$;

-- The consent as shown, with review_expired: the yearly review date has
-- passed (in Europe/Copenhagen) and the consent is not withdrawn. The daily
-- pass lists the same consents as consent.review_due events.
CREATE FUNCTION kip.consent_doc(c kip.consents)
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
  SELECT json_build_object('id', c.id, 'kip_consent', c.kip_consent,
                           'contact_organisation_ids', to_json(c.contact_organisation_ids),
                           'relatives_allowed', c.relatives_allowed, 'form', c.form,
                           'given_at', c.given_at, 'recorded_by', c.recorded_by,
                           'review_by', c.review_by, 'withdrawn_at', c.withdrawn_at,
                           'review_expired', c.withdrawn_at IS NULL AND c.review_by < kip.today())
$function$;

-- A plans list item. next_meeting, open_actions (open or in progress,
-- overdue ones included) and overdue_actions (kip.action_overdue) spare the
-- list a read of every plan's document. The caller computes the three
-- (kip_api.plan_list, in the same statement): with no subquery in its body
-- this function is inlined rather than run as a statement per plan.
CREATE FUNCTION kip.plan_summary(p kip.plans, p_next_meeting timestamp with time zone,
                                 p_open_actions integer, p_overdue_actions integer)
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
  SELECT json_build_object(
    'id', p.id, 'version', p.version, 'status', p.status,
    'citizen', json_build_object('name', p.citizen_name, 'cpr', kip.cpr_mask(p.citizen_cpr)),
    'reason', p.reason, 'owner_organisation_id', p.owner_organisation_id,
    'coordinator', p.coordinator_participant_id,
    'created_at', p.created_at, 'updated_at', p.updated_at, 'closed_at', p.closed_at,
    'close_reason', p.close_reason,
    'next_meeting', p_next_meeting, 'open_actions', p_open_actions, 'overdue_actions', p_overdue_actions)
$function$;

-- Derived, never stored: the due date has passed in Copenhagen and the
-- action is neither done nor cancelled.
CREATE FUNCTION kip.action_overdue(p_due date, p_status text, p_at timestamp with time zone DEFAULT now())
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT p_due IS NOT NULL AND p_status IN ('open', 'in_progress') AND p_due < kip.today(p_at)
$function$;

CREATE FUNCTION kip.action_doc(a kip.actions)
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
  SELECT json_build_object(
    'id', a.id, 'plan_id', a.plan_id, 'version', a.version, 'title', a.title,
    'description', a.description, 'area', a.area,
    'responsible_participant_id', a.responsible_participant_id, 'due_date', a.due_date,
    'status', a.status, 'agreed_in_meeting_id', a.agreed_in_meeting_id,
    'created_at', a.created_at, 'updated_at', a.updated_at, 'completed_at', a.completed_at,
    'overdue', kip.action_overdue(a.due_date, a.status))
$function$;

-- STABLE, not IMMUTABLE: timestamptz + interval depends on the TimeZone
-- setting (a day or a month is counted in local time).
CREATE FUNCTION kip.meeting_ends_at(m kip.meetings)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE
AS $function$
  SELECT m.starts_at + m.duration_minutes * interval '1 minute'
$function$;

-- Derived, never stored: planned, its end has passed, no outcome.
CREATE FUNCTION kip.meeting_overdue_outcome(m kip.meetings, p_at timestamp with time zone DEFAULT now())
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT m.status = 'planned' AND kip.meeting_ends_at(m) < p_at
$function$;

-- One meeting. The same object as each item of kip.meetings_doc(); the two
-- are written out twice so that each stays one cached statement (the
-- documents-unchanged test compares both with the baseline).
CREATE FUNCTION kip.meeting_doc(m kip.meetings)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT json_build_object(
      'id', m.id, 'plan_id', m.plan_id, 'version', m.version, 'sequence', m.sequence,
      'status', m.status, 'starts_at', m.starts_at,
      'ends_at', m.starts_at + m.duration_minutes * interval '1 minute',
      'duration_minutes', m.duration_minutes,
      'location', json_build_object('kind', m.location_kind, 'address', m.location_address,
                                    'room', m.location_room, 'video_url', m.location_video_url),
      'purpose', m.purpose, 'chair_participant_id', m.chair_participant_id,
      'invitees', coalesce((SELECT json_agg(json_build_object(
                              'participant_id', i.participant_id, 'mode', i.mode,
                              'window_start', i.window_start, 'window_end', i.window_end,
                              'response', i.response, 'responded_at', i.responded_at) ORDER BY i.position)
                              FROM kip.meeting_invitees i WHERE i.meeting_id = m.id), '[]'::json),
      'previous_meeting_id', m.previous_meeting_id,
      'cancel_reason', m.cancel_reason, 'cancelled_at', m.cancelled_at,
      'overdue_outcome', m.status = 'planned'
                         AND m.starts_at + m.duration_minutes * interval '1 minute' < now(),
      'outcome', (SELECT json_build_object(
                    'attendance', o.attendance, 'observations', o.observations, 'summary', o.summary,
                    'shared_assessment', o.shared_assessment, 'citizen_accepted', o.citizen_accepted,
                    'action_ids', coalesce((SELECT json_agg(a.id ORDER BY a.created_at, a.id)
                                              FROM kip.actions a
                                             WHERE a.agreed_in_meeting_id = o.meeting_id), '[]'::json),
                    'next_meeting_id', o.next_meeting_id,
                    'no_further_meeting', CASE WHEN o.no_further_meeting_reason IS NULL THEN NULL
                                               ELSE json_build_object('reason', o.no_further_meeting_reason) END,
                    'recorded_by', o.recorded_by, 'recorded_at', o.recorded_at)
                    FROM kip.meeting_outcomes o WHERE o.meeting_id = m.id),
      'created_at', m.created_at, 'updated_at', m.updated_at));
END
$function$;

-- A plan's meetings, newest first.
CREATE FUNCTION kip.meetings_doc(p_plan_id uuid)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT coalesce(json_agg(json_build_object(
        'id', m.id, 'plan_id', m.plan_id, 'version', m.version, 'sequence', m.sequence,
        'status', m.status, 'starts_at', m.starts_at,
        'ends_at', m.starts_at + m.duration_minutes * interval '1 minute',
        'duration_minutes', m.duration_minutes,
        'location', json_build_object('kind', m.location_kind, 'address', m.location_address,
                                      'room', m.location_room, 'video_url', m.location_video_url),
        'purpose', m.purpose, 'chair_participant_id', m.chair_participant_id,
        'invitees', coalesce((SELECT json_agg(json_build_object(
                                'participant_id', i.participant_id, 'mode', i.mode,
                                'window_start', i.window_start, 'window_end', i.window_end,
                                'response', i.response, 'responded_at', i.responded_at) ORDER BY i.position)
                                FROM kip.meeting_invitees i WHERE i.meeting_id = m.id), '[]'::json),
        'previous_meeting_id', m.previous_meeting_id,
        'cancel_reason', m.cancel_reason, 'cancelled_at', m.cancelled_at,
        'overdue_outcome', m.status = 'planned'
                           AND m.starts_at + m.duration_minutes * interval '1 minute' < now(),
        'outcome', (SELECT json_build_object(
                      'attendance', o.attendance, 'observations', o.observations, 'summary', o.summary,
                      'shared_assessment', o.shared_assessment, 'citizen_accepted', o.citizen_accepted,
                      'action_ids', coalesce((SELECT json_agg(a.id ORDER BY a.created_at, a.id)
                                                FROM kip.actions a
                                               WHERE a.agreed_in_meeting_id = o.meeting_id), '[]'::json),
                      'next_meeting_id', o.next_meeting_id,
                      'no_further_meeting', CASE WHEN o.no_further_meeting_reason IS NULL THEN NULL
                                                 ELSE json_build_object('reason', o.no_further_meeting_reason) END,
                      'recorded_by', o.recorded_by, 'recorded_at', o.recorded_at)
                      FROM kip.meeting_outcomes o WHERE o.meeting_id = m.id),
        'created_at', m.created_at, 'updated_at', m.updated_at)
    ORDER BY m.starts_at DESC, m.id DESC), '[]'::json)
    FROM kip.meetings m WHERE m.plan_id = p_plan_id);
END
$function$;

-- The plan document: the sealed token, bound to the row's id, where the
-- CPR number goes; kipd decrypts it in the response.
CREATE FUNCTION kip.plan_doc(p kip.plans)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT json_build_object(
    'id', p.id, 'version', p.version, 'status', p.status,
    'citizen', json_build_object('name', p.citizen_name, 'cpr', kip.cpr_bound(p.citizen_cpr_enc, p.id),
                                 'birth_date', p.citizen_birth_date, 'phone', p.citizen_phone,
                                 'address', p.citizen_address,
                                 'preferred_language', p.citizen_preferred_language),
    'reason', p.reason,
    'owner_organisation_id', p.owner_organisation_id,
    'coordinator', p.coordinator_participant_id,
    -- the tovholders it has had, oldest first
    'coordinators', coalesce((SELECT json_agg(json_build_object('participant_id', h.participant_id,
                                                                'started_at', h.started_at,
                                                                'ended_at', h.ended_at) ORDER BY h.id)
                                FROM kip.coordinator_history h WHERE h.plan_id = p.id), '[]'::json),
    'goals', p.goals,
    'needs', p.needs,
    'consent', (SELECT kip.consent_doc(c) FROM kip.consents c
                 WHERE c.plan_id = p.id AND c.superseded_at IS NULL),
    'participants', coalesce((SELECT json_agg(kip.participant_doc(pa) ORDER BY pa.joined_at, pa.id)
                                FROM kip.participants pa WHERE pa.plan_id = p.id), '[]'::json),
    'meetings', kip.meetings_doc(p.id),
    'actions', coalesce((SELECT json_agg(kip.action_doc(a) ORDER BY a.created_at, a.id)
                           FROM kip.actions a WHERE a.plan_id = p.id), '[]'::json),
    'follow_up_date', p.follow_up_date,
    'approved_at', p.approved_at,
    'created_at', p.created_at, 'updated_at', p.updated_at, 'closed_at', p.closed_at,
    'close_reason', p.close_reason, 'close_note', p.close_note));
END
$function$;

-- The old one-argument form, kept for callers: the user's own calendar.
CREATE FUNCTION kip.calendar_doc(u kip.users)
 RETURNS jsonb
 LANGUAGE sql
AS $function$
  SELECT kip.calendar_doc(u, 'calendar.mine')
$function$;

CREATE FUNCTION kip.settings_doc(p_user_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object('calendar_show_citizen_name',
                            coalesce((SELECT s.calendar_show_citizen_name FROM kip.user_settings s
                                       WHERE s.user_id = p_user_id), false))
$function$;

-- The events of a user's calendar feed, for kipd to render as iCalendar:
-- meetings from 90 days back, with the caller's own attendance window. The
-- citizen appears by initials unless the user chose the full name; the CPR
-- never appears.
CREATE FUNCTION kip.calendar_doc(u kip.users, p_action text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_full boolean := coalesce((SELECT s.calendar_show_citizen_name FROM kip.user_settings s
                               WHERE s.user_id = u.id), false);
  v_events jsonb;
  v_plans uuid[];
BEGIN
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'uid', (x.m).id::text || '@kipd',
           'sequence', (x.m).sequence,
           'status', (x.m).status,
           'start', extract(epoch FROM coalesce(i.window_start, (x.m).starts_at))::bigint,
           'end', extract(epoch FROM coalesce(i.window_end, kip.meeting_ends_at(x.m)))::bigint,
           'meeting_start', extract(epoch FROM (x.m).starts_at)::bigint,
           'meeting_end', extract(epoch FROM kip.meeting_ends_at(x.m))::bigint,
           'has_window', i.window_start IS NOT NULL OR i.window_end IS NOT NULL,
           'stamp', extract(epoch FROM (x.m).updated_at)::bigint,
           'citizen', CASE WHEN v_full THEN (x.p).citizen_name ELSE kip.initials((x.p).citizen_name) END,
           'purpose', (x.m).purpose,
           'location_kind', (x.m).location_kind, 'address', (x.m).location_address,
           'room', (x.m).location_room, 'video_url', (x.m).location_video_url,
           'mode', i.mode,
           'chair', ch.name,
           'cancel_reason', (x.m).cancel_reason)
           ORDER BY (x.m).starts_at, (x.m).id), '[]'::jsonb),
         array_agg(DISTINCT (x.p).id)
    INTO v_events, v_plans
    FROM kip.my_meetings(u, now() - interval '90 days', 'infinity') x
    LEFT JOIN kip.meeting_invitees i ON i.meeting_id = (x.m).id AND i.participant_id = x.my_participant_id
    LEFT JOIN kip.participants ch ON ch.id = (x.m).chair_participant_id;
  PERFORM kip.audit_plans(p_action, v_plans, 'calendar');
  RETURN jsonb_build_object('name', 'KIP-møder', 'events', v_events);
END
$function$;
