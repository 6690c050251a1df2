-- 23_fhir.sql: a plan as an HL7 FHIR R4 Bundle (daemon/api/fhir.c,
-- GET /v1/plans/{id}/fhir). The mapping, field by field, is docs/fhir.md.
--
-- Every resource has fullUrl "urn:uuid:<id>" and every reference is
-- "urn:uuid:<id>" of an entry in the same Bundle. The ids are kipd's own
-- (plan, participant, organisation, goal, action, meeting, consent); the
-- two resources kipd has no row for (the CareTeam, a professional's
-- Practitioner) get a name-based id, md5 of a fixed prefix and the row's id,
-- so the same plan always gives the same ids.
--
-- The Patient's CPR identifier is the sealed token; kipd reveals it in the
-- answer (app/kreq_cpr.c) and api/fhir.c writes it as 10 digits. Values
-- that are NULL are left out (json_strip_nulls at the end); the builders
-- never make an empty array or object, which FHIR forbids.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- A reference to the resource with this id, with its type.
CREATE FUNCTION kip.fhir_ref(p_type text, p_id uuid)
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE WHEN p_id IS NULL THEN NULL
              ELSE json_build_object('reference', 'urn:uuid:' || p_id, 'type', p_type) END
$function$;

-- A name-based id for a resource kipd keeps no row of.
CREATE FUNCTION kip.fhir_id(p_kind text, p_id uuid)
 RETURNS uuid
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT md5('kipd-fhir:' || p_kind || ':' || p_id)::uuid
$function$;

-- The resource a participant is in the Bundle: the citizen is the Patient,
-- a relative a RelatedPerson, a professional a PractitionerRole (whose id
-- is the participant's).
CREATE FUNCTION kip.fhir_party(p_participant_id uuid, p_patient uuid)
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE pa.kind WHEN 'citizen' THEN kip.fhir_ref('Patient', p_patient)
                      WHEN 'relative' THEN kip.fhir_ref('RelatedPerson', pa.id)
                      ELSE kip.fhir_ref('PractitionerRole', pa.id) END
    FROM kip.participants pa WHERE pa.id = p_participant_id
$function$;

CREATE FUNCTION kip.fhir_role_label(p_role text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE p_role
    WHEN 'social_nurse' THEN 'Social nurse'
    WHEN 'caseworker' THEN 'Caseworker'
    WHEN 'jobcenter_caseworker' THEN 'Jobcentre caseworker'
    WHEN 'support_contact_person' THEN 'Support and contact person'
    WHEN 'general_practitioner' THEN 'General practitioner'
    WHEN 'addiction_counsellor' THEN 'Addiction counsellor'
    WHEN 'psychiatry' THEN 'Psychiatry'
    WHEN 'municipal_authority' THEN 'Municipal authority'
    WHEN 'relative' THEN 'Relative'
    WHEN 'citizen' THEN 'Citizen'
    WHEN 'coordinator' THEN 'Coordinator (tovholder)'
    ELSE 'Other' END
$function$;

-- A CodeableConcept of one coding: {coding: [{system, code, display}],
-- text}; display and text are left out when NULL.
CREATE FUNCTION kip.fhir_concept(p_system text, p_code text, p_display text DEFAULT NULL, p_text text DEFAULT NULL)
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT json_build_object('coding', json_build_array(json_build_object('system', p_system, 'code', p_code,
                                                                        'display', p_display)),
                           'text', p_text)
$function$;

-- A participant's role: kipd's code, and the participant's own title as
-- the text when there is one.
CREATE FUNCTION kip.fhir_role(p_role text, p_title text)
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT kip.fhir_concept('https://kipd.dk/fhir/CodeSystem/participant-role', p_role, kip.fhir_role_label(p_role),
                          coalesce(p_title, kip.fhir_role_label(p_role)))
$function$;

CREATE FUNCTION kip.fhir_telecom(p_phone text, p_email text)
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE WHEN p_phone IS NULL AND p_email IS NULL THEN NULL
              WHEN p_email IS NULL THEN json_build_array(json_build_object('system', 'phone', 'value', p_phone))
              WHEN p_phone IS NULL THEN json_build_array(json_build_object('system', 'email', 'value', p_email))
              ELSE json_build_array(json_build_object('system', 'phone', 'value', p_phone),
                                    json_build_object('system', 'email', 'value', p_email)) END
$function$;

CREATE FUNCTION kip.fhir_entry(p_id uuid, p_resource json)
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT json_build_object('fullUrl', 'urn:uuid:' || p_id, 'resource', p_resource)
$function$;

-- One goal (or sub-goal) as a Goal; a goal's sub-goals are its milestones
-- (the core extension goal-relationship).
CREATE FUNCTION kip.fhir_goal(p_goal jsonb, p_owner text, p_patient uuid)
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT json_build_object(
    'resourceType', 'Goal',
    'id', p_goal->>'id',
    'extension', (SELECT json_agg(json_build_object(
                    'url', 'http://hl7.org/fhir/StructureDefinition/goal-relationship',
                    'extension', json_build_array(
                      json_build_object('url', 'type', 'valueCodeableConcept',
                                        kip.fhir_concept('http://hl7.org/fhir/goal-relationship-type', 'milestone')),
                      json_build_object('url', 'target', 'valueReference',
                                        kip.fhir_ref('Goal', (s->>'id')::uuid))))
                    ORDER BY n)
                    FROM jsonb_array_elements(p_goal->'sub_goals') WITH ORDINALITY AS x(s, n)),
    'lifecycleStatus', CASE coalesce(p_goal->>'status', 'open') WHEN 'achieved' THEN 'completed'
                                                                  WHEN 'dropped' THEN 'cancelled'
                                                                  ELSE 'active' END,
    'achievementStatus', kip.fhir_concept('http://terminology.hl7.org/CodeSystem/goal-achievement',
        CASE coalesce(p_goal->>'status', 'open') WHEN 'achieved' THEN 'achieved'
                                                 WHEN 'dropped' THEN 'not-achieved'
                                                 ELSE 'in-progress' END),
    'category', CASE WHEN p_owner IS NOT NULL THEN json_build_array(kip.fhir_concept(
        'https://kipd.dk/fhir/CodeSystem/goal-owner', p_owner,
        CASE p_owner WHEN 'citizen' THEN 'The citizen''s own goal' ELSE 'The team''s goal' END)) END,
    'description', json_build_object('text', p_goal->>'text'),
    'subject', kip.fhir_ref('Patient', p_patient),
    'expressedBy', CASE WHEN p_owner = 'citizen' THEN kip.fhir_ref('Patient', p_patient) END)
$function$;

-- One meeting as an Appointment: the invitees in their order, then the
-- chair and anyone the outcome says attended who was not invited.
CREATE FUNCTION kip.fhir_appointment(m kip.meetings, p_plan_id uuid, p_patient uuid)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT json_build_object(
    'resourceType', 'Appointment',
    'id', m.id,
    'status', CASE m.status WHEN 'held' THEN 'fulfilled' WHEN 'cancelled' THEN 'cancelled' ELSE 'booked' END,
    'cancelationReason', CASE WHEN m.status = 'cancelled' THEN json_build_object('text', m.cancel_reason) END,
    'serviceType', json_build_array(kip.fhir_concept('https://kipd.dk/fhir/CodeSystem/meeting-type',
                                                     'kip-meeting', 'KIP meeting', 'KIP-møde')),
    'description', m.purpose,
    'supportingInformation', json_build_array(kip.fhir_ref('CarePlan', p_plan_id)),
    'start', m.starts_at,
    'end', kip.meeting_ends_at(m),
    'minutesDuration', m.duration_minutes,
    'created', m.created_at,
    'comment', concat_ws(', ', CASE m.location_kind WHEN 'hospital' THEN 'Hospital'
                                                    WHEN 'citizen_home' THEN 'The citizen''s home'
                                                    WHEN 'municipality' THEN 'Municipality'
                                                    WHEN 'general_practice' THEN 'General practice'
                                                    WHEN 'virtual' THEN 'Virtual meeting'
                                                    ELSE 'Other place' END,
                         m.location_address, m.location_room, m.location_video_url),
    'participant', (SELECT json_agg(json_build_object(
        'extension', (SELECT json_agg(e ORDER BY k) FROM (VALUES
            (1, CASE WHEN coalesce(att->>'mode', x.mode) IS NOT NULL THEN json_build_object(
                  'url', 'https://kipd.dk/fhir/StructureDefinition/attendance-mode',
                  'valueCode', coalesce(att->>'mode', x.mode)) END),
            (2, CASE WHEN att IS NOT NULL THEN json_build_object(
                  'url', 'https://kipd.dk/fhir/StructureDefinition/attended',
                  'valueBoolean', (att->>'attended')::boolean) END)) AS v(k, e) WHERE e IS NOT NULL),
        'type', CASE WHEN x.pid = m.chair_participant_id THEN json_build_array(kip.fhir_concept(
                  'https://kipd.dk/fhir/CodeSystem/meeting-role', 'chair', 'Chair')) END,
        'actor', kip.fhir_party(x.pid, p_patient),
        -- The invitee's answer; someone the outcome records as there has
        -- accepted, whatever they answered before.
        'status', CASE WHEN (att->>'attended')::boolean THEN 'accepted'
                       WHEN x.response = 'declined' THEN 'declined'
                       WHEN x.response = 'pending' THEN 'needs-action' ELSE 'accepted' END,
        'period', CASE WHEN x.window_start IS NOT NULL OR x.window_end IS NOT NULL THEN
                    json_build_object('start', x.window_start, 'end', x.window_end) END)
        ORDER BY x.pos)
      FROM (SELECT i.participant_id AS pid, i.position AS pos, i.response, i.mode, i.window_start, i.window_end
              FROM kip.meeting_invitees i WHERE i.meeting_id = m.id
            UNION ALL
            SELECT m.chair_participant_id, -1, NULL, NULL, NULL, NULL
             WHERE NOT EXISTS (SELECT 1 FROM kip.meeting_invitees i
                                WHERE i.meeting_id = m.id AND i.participant_id = m.chair_participant_id)
            UNION ALL
            SELECT (a->>'participant_id')::uuid, 100000 + n::integer, NULL, NULL, NULL, NULL
              FROM kip.meeting_outcomes o, jsonb_array_elements(o.attendance) WITH ORDINALITY AS y(a, n)
             WHERE o.meeting_id = m.id AND (a->>'participant_id')::uuid <> m.chair_participant_id
               AND NOT EXISTS (SELECT 1 FROM kip.meeting_invitees i
                                WHERE i.meeting_id = m.id AND i.participant_id = (a->>'participant_id')::uuid)) x
      LEFT JOIN LATERAL (SELECT a AS att FROM kip.meeting_outcomes o, jsonb_array_elements(o.attendance) a
                          WHERE o.meeting_id = m.id AND a->>'participant_id' = x.pid::text LIMIT 1) z ON true
     WHERE EXISTS (SELECT 1 FROM kip.participants pa WHERE pa.id = x.pid))));
END
$function$;

-- The whole Bundle (type collection) of one plan.
CREATE FUNCTION kip.fhir_bundle(p kip.plans)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  v_patient uuid := coalesce((SELECT pa.id FROM kip.participants pa
                               WHERE pa.plan_id = p.id AND pa.kind = 'citizen'
                               ORDER BY pa.joined_at, pa.id LIMIT 1),
                             kip.fhir_id('patient', p.id));
  v_team uuid := kip.fhir_id('careteam', p.id);
  c kip.consents;
  v_orgs uuid[];
  v_entries json[] := '{}';
BEGIN
  SELECT * INTO c FROM kip.consents WHERE plan_id = p.id AND superseded_at IS NULL;
  SELECT array_agg(DISTINCT x) INTO v_orgs
    FROM (SELECT p.owner_organisation_id AS x
          UNION ALL SELECT pa.organisation_id FROM kip.participants pa
                     WHERE pa.plan_id = p.id AND pa.organisation_id IS NOT NULL
          UNION ALL SELECT unnest(coalesce(c.contact_organisation_ids, '{}'))) o;

  -- The citizen.
  v_entries := v_entries || kip.fhir_entry(v_patient, json_build_object(
    'resourceType', 'Patient',
    'id', v_patient,
    'identifier', CASE WHEN p.citizen_cpr_enc IS NOT NULL THEN json_build_array(json_build_object(
        'use', 'official', 'system', 'urn:oid:1.2.208.176.1.2',
        'value', kip.cpr_bound(p.citizen_cpr_enc, p.id))) END,
    'active', p.status <> 'closed',
    'name', json_build_array(json_build_object('use', 'official', 'text', p.citizen_name)),
    'telecom', kip.fhir_telecom(p.citizen_phone, NULL),
    'birthDate', p.citizen_birth_date,
    'address', CASE WHEN p.citizen_address IS NOT NULL THEN
                 json_build_array(json_build_object('use', 'home', 'text', p.citizen_address)) END,
    'communication', CASE WHEN p.citizen_preferred_language IS NOT NULL THEN
                       json_build_array(json_build_object('language', json_build_object(
                         'text', p.citizen_preferred_language), 'preferred', true)) END));

  -- The plan.
  v_entries := v_entries || kip.fhir_entry(p.id, json_build_object(
    'resourceType', 'CarePlan',
    'id', p.id,
    'identifier', json_build_array(json_build_object('system', 'urn:ietf:rfc:3986',
                                                     'value', 'urn:uuid:' || p.id)),
    'status', CASE p.status WHEN 'active' THEN 'active'
                            WHEN 'closed' THEN CASE WHEN p.close_reason = 'completed' THEN 'completed'
                                                    ELSE 'revoked' END
                            ELSE 'draft' END,
    'intent', 'plan',
    'category', json_build_array(kip.fhir_concept('https://kipd.dk/fhir/CodeSystem/plan-type', 'kip',
                                                  'Coordinated intervention plan (KIP)',
                                                  'Koordinerende indsatsplan')),
    'title', 'Koordinerende indsatsplan',
    'description', nullif(p.reason, ''),
    'subject', kip.fhir_ref('Patient', v_patient),
    'period', json_build_object('start', p.created_at, 'end', p.closed_at),
    'created', p.created_at,
    'author', kip.fhir_ref('Organization', p.owner_organisation_id),
    'contributor', (SELECT json_build_array(kip.fhir_party(p.coordinator_participant_id, v_patient))
                     WHERE kip.fhir_party(p.coordinator_participant_id, v_patient) IS NOT NULL),
    'careTeam', json_build_array(kip.fhir_ref('CareTeam', v_team)),
    'goal', (SELECT json_agg(kip.fhir_ref('Goal', (g->>'id')::uuid) ORDER BY n, m)
               FROM (SELECT g0 AS g, n, 0::bigint AS m FROM jsonb_array_elements(p.goals) WITH ORDINALITY AS a(g0, n)
                     UNION ALL
                     SELECT s, n, m FROM jsonb_array_elements(p.goals) WITH ORDINALITY AS a(g0, n),
                                         jsonb_array_elements(coalesce(g0->'sub_goals', '[]')) WITH ORDINALITY AS b(s, m)) y),
    'activity', (SELECT json_agg(json_build_object('reference', r) ORDER BY k, at, id)
                   FROM (SELECT 1 AS k, a.created_at AS at, a.id, kip.fhir_ref('Task', a.id) AS r
                           FROM kip.actions a WHERE a.plan_id = p.id
                         UNION ALL
                         SELECT 2, m.starts_at, m.id, kip.fhir_ref('Appointment', m.id)
                           FROM kip.meetings m WHERE m.plan_id = p.id) acts),
    'note', CASE WHEN p.close_note IS NOT NULL THEN json_build_array(json_build_object('text', p.close_note)) END));

  -- The team: every participant, a left one with the end of their period.
  v_entries := v_entries || kip.fhir_entry(v_team, json_build_object(
    'resourceType', 'CareTeam',
    'id', v_team,
    'status', CASE p.status WHEN 'active' THEN 'active' WHEN 'closed' THEN 'inactive' ELSE 'proposed' END,
    'name', 'KIP-team',
    'subject', kip.fhir_ref('Patient', v_patient),
    'period', json_build_object('start', p.created_at, 'end', p.closed_at),
    'participant', (SELECT json_agg(json_build_object(
        'role', CASE WHEN pa.id = p.coordinator_participant_id
                     THEN json_build_array(kip.fhir_role(pa.role, pa.role_title), kip.fhir_role('coordinator', NULL))
                     ELSE json_build_array(kip.fhir_role(pa.role, pa.role_title)) END,
        'member', CASE pa.kind WHEN 'citizen' THEN kip.fhir_ref('Patient', v_patient)
                               WHEN 'relative' THEN kip.fhir_ref('RelatedPerson', pa.id)
                               ELSE kip.fhir_ref('Practitioner', kip.fhir_id('practitioner', pa.id)) END,
        'onBehalfOf', CASE WHEN pa.kind = 'professional' THEN kip.fhir_ref('Organization', pa.organisation_id) END,
        'period', json_build_object('start', pa.joined_at, 'end', pa.left_at))
        ORDER BY pa.joined_at, pa.id)
      FROM kip.participants pa WHERE pa.plan_id = p.id),
    'managingOrganization', json_build_array(kip.fhir_ref('Organization', p.owner_organisation_id))));

  -- The organisations involved: the owner, the participants', the consent's.
  v_entries := v_entries || ARRAY(
    SELECT kip.fhir_entry(o.id, json_build_object(
      'resourceType', 'Organization',
      'id', o.id,
      'identifier', CASE WHEN o.cvr IS NOT NULL OR o.ean IS NOT NULL THEN
                      (SELECT json_agg(i) FROM (VALUES
                        (CASE WHEN o.cvr IS NOT NULL THEN json_build_object(
                           'system', 'https://kipd.dk/fhir/NamingSystem/cvr', 'value', o.cvr) END),
                        (CASE WHEN o.ean IS NOT NULL THEN json_build_object(
                           'system', 'urn:oid:1.3.88', 'value', o.ean) END)) AS v(i) WHERE i IS NOT NULL) END,
      'active', true,
      'type', json_build_array(kip.fhir_concept('https://kipd.dk/fhir/CodeSystem/organisation-sector', o.sector)),
      'name', o.name))
      FROM kip.organisations o WHERE o.id = ANY (v_orgs) ORDER BY o.name, o.id);

  -- The people: a professional is a Practitioner and a PractitionerRole, a
  -- relative a RelatedPerson (the citizen is the Patient above).
  v_entries := v_entries || ARRAY(
    SELECT e FROM kip.participants pa,
           LATERAL (VALUES
             (1, CASE WHEN pa.kind = 'professional' THEN kip.fhir_entry(kip.fhir_id('practitioner', pa.id),
                   json_build_object('resourceType', 'Practitioner',
                                     'id', kip.fhir_id('practitioner', pa.id),
                                     'active', pa.left_at IS NULL,
                                     'name', json_build_array(json_build_object('text', pa.name)))) END),
             (2, CASE WHEN pa.kind = 'professional' THEN kip.fhir_entry(pa.id, json_build_object(
                   'resourceType', 'PractitionerRole',
                   'id', pa.id,
                   'active', pa.left_at IS NULL,
                   'period', json_build_object('start', pa.joined_at, 'end', pa.left_at),
                   'practitioner', kip.fhir_ref('Practitioner', kip.fhir_id('practitioner', pa.id)),
                   'organization', kip.fhir_ref('Organization', pa.organisation_id),
                   'code', json_build_array(kip.fhir_role(pa.role, pa.role_title)),
                   'telecom', kip.fhir_telecom(pa.phone, pa.email))) END),
             (3, CASE WHEN pa.kind = 'relative' THEN kip.fhir_entry(pa.id, json_build_object(
                   'resourceType', 'RelatedPerson',
                   'id', pa.id,
                   'active', pa.left_at IS NULL,
                   'patient', kip.fhir_ref('Patient', v_patient),
                   'relationship', json_build_array(json_build_object('text', coalesce(pa.role_title, 'Relative'))),
                   'name', json_build_array(json_build_object('text', pa.name)),
                   'telecom', kip.fhir_telecom(pa.phone, pa.email),
                   'period', json_build_object('start', pa.joined_at, 'end', pa.left_at))) END)) AS v(k, e)
     WHERE pa.plan_id = p.id AND e IS NOT NULL
     ORDER BY pa.joined_at, pa.id, k);

  -- The goals, each followed by its sub-goals.
  v_entries := v_entries || ARRAY(
    SELECT kip.fhir_entry((y.g->>'id')::uuid, kip.fhir_goal(y.g, y.owner, v_patient))
      FROM (SELECT g0 AS g, g0->>'owner' AS owner, n, 0::bigint AS m
              FROM jsonb_array_elements(p.goals) WITH ORDINALITY AS a(g0, n)
            UNION ALL
            SELECT s, NULL, n, m FROM jsonb_array_elements(p.goals) WITH ORDINALITY AS a(g0, n),
                                      jsonb_array_elements(coalesce(g0->'sub_goals', '[]')) WITH ORDINALITY AS b(s, m)) y
     ORDER BY y.n, y.m);

  -- The actions.
  v_entries := v_entries || ARRAY(
    SELECT kip.fhir_entry(a.id, json_build_object(
      'resourceType', 'Task',
      'id', a.id,
      'basedOn', json_build_array(kip.fhir_ref('CarePlan', p.id)),
      'status', CASE a.status WHEN 'in_progress' THEN 'in-progress' WHEN 'done' THEN 'completed'
                              WHEN 'cancelled' THEN 'cancelled' ELSE 'requested' END,
      'businessStatus', CASE WHEN kip.action_overdue(a.due_date, a.status) THEN kip.fhir_concept(
          'https://kipd.dk/fhir/CodeSystem/action-business-status', 'overdue', 'Overdue', 'Overdue') END,
      'intent', 'plan',
      'code', kip.fhir_concept('https://kipd.dk/fhir/CodeSystem/action-area', a.area),
      'description', a.title,
      'for', kip.fhir_ref('Patient', v_patient),
      'executionPeriod', CASE WHEN a.completed_at IS NOT NULL THEN json_build_object('end', a.completed_at) END,
      'authoredOn', a.created_at,
      'lastModified', a.updated_at,
      'owner', kip.fhir_party(a.responsible_participant_id, v_patient),
      'note', CASE WHEN a.description IS NOT NULL THEN json_build_array(json_build_object('text', a.description)) END,
      'restriction', CASE WHEN a.due_date IS NOT NULL THEN json_build_object(
                       'period', json_build_object('end', a.due_date)) END))
      FROM kip.actions a WHERE a.plan_id = p.id ORDER BY a.created_at, a.id);

  -- The meetings, oldest first.
  v_entries := v_entries || ARRAY(
    SELECT kip.fhir_entry(m.id, kip.fhir_appointment(m, p.id, v_patient))
      FROM kip.meetings m WHERE m.plan_id = p.id ORDER BY m.starts_at, m.id);

  -- The current consent.
  IF c.id IS NOT NULL THEN
    v_entries := v_entries || kip.fhir_entry(c.id, json_build_object(
      'resourceType', 'Consent',
      'id', c.id,
      'status', CASE WHEN c.withdrawn_at IS NOT NULL THEN 'inactive'
                     WHEN c.kip_consent THEN 'active' ELSE 'rejected' END,
      'scope', kip.fhir_concept('http://terminology.hl7.org/CodeSystem/consentscope', 'patient-privacy'),
      'category', json_build_array(kip.fhir_concept('http://loinc.org', '59284-0', NULL,
                                                    'Samtykke til koordinerende indsatsplan')),
      'patient', kip.fhir_ref('Patient', v_patient),
      'dateTime', c.given_at,
      'performer', json_build_array(kip.fhir_ref('Patient', v_patient)),
      'organization', json_build_array(kip.fhir_ref('Organization', p.owner_organisation_id)),
      'policyRule', kip.fhir_concept('http://terminology.hl7.org/CodeSystem/v3-ActCode', 'OPTIN'),
      'verification', json_build_array(json_build_object('verified', true, 'verificationDate', c.given_at)),
      'provision', json_build_object(
        'type', CASE WHEN c.kip_consent THEN 'permit' ELSE 'deny' END,
        'period', json_build_object('start', c.given_at, 'end', c.withdrawn_at),
        'actor', (SELECT json_agg(json_build_object(
                    'role', kip.fhir_concept('http://terminology.hl7.org/CodeSystem/v3-ParticipationType', 'IRCP'),
                    'reference', kip.fhir_ref('Organization', x)) ORDER BY n)
                    FROM unnest(c.contact_organisation_ids) WITH ORDINALITY AS u(x, n)),
        'provision', json_build_array(json_build_object(
          'type', CASE WHEN c.kip_consent AND c.relatives_allowed THEN 'permit' ELSE 'deny' END,
          'code', json_build_array(kip.fhir_concept('https://kipd.dk/fhir/CodeSystem/consent-provision',
                                                    'relatives', 'Involve the citizen''s relatives')))))));
  END IF;

  RETURN json_strip_nulls(json_build_object(
    'resourceType', 'Bundle',
    'meta', json_build_object('lastUpdated', p.updated_at),
    'type', 'collection',
    'timestamp', now(),
    'entry', array_to_json(v_entries)));
END
$function$;

-- GET /v1/plans/{id}/fhir: the plan as a FHIR R4 Bundle, under the same
-- access rule as GET /v1/plans/{id}, audited as plan.read with the
-- resource fhir.
CREATE FUNCTION kip_api.plan_fhir(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
BEGIN
  PERFORM kip.audit('plan.read', p.id, 'fhir');
  RETURN kip.ok_json(kip.fhir_bundle(p), NULL, p.version::text);
END
$function$;
