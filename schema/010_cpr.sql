-- 010: CPR numbers at rest (issue #5, the CPR part).
--
-- The database never holds a CPR number in clear. kipd seals it with
-- AES-256-GCM under a key from its key file (never in the database) and
-- sends three values in place of citizen.cpr (daemon/util/cpr_crypt.h):
--   citizen_cpr       the mask, "DDMMYY-****", for lists and history (the
--                     first six digits are the birth date, stored anyway);
--   citizen_cpr_enc   the sealed token "\x01kipd-cpr:1:<key id>:<base64url>";
--   citizen_cpr_hmac  HMAC-SHA256 of the number under a separate MAC key,
--                     the blind index that exact search compares.
-- Responses carry the token where the full number goes (kip.plan_doc);
-- kipd decrypts it before sending. See docs/cpr-encryption.md.
--
-- SQL cannot encrypt (the key is not here), so this migration moves the
-- clear numbers of an existing database to kip.cpr_pending, and kipd seals
-- them at start-up, before it serves anyone, and deletes the pending rows.

-- The keys the database's tokens are sealed under: id and a fingerprint
-- (an HMAC under the key, which does not reveal it), never the key itself.
-- kipd refuses to start when its key file does not hold them.
CREATE TABLE kip.cpr_keys (
  id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
  fingerprint  text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  is_current   boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cpr_keys_one_current ON kip.cpr_keys (is_current) WHERE is_current;

-- Clear numbers waiting for kipd to seal them (legacy rows; the benchmark
-- generator). Empty once kipd has started.
CREATE TABLE kip.cpr_pending (
  plan_id  uuid PRIMARY KEY REFERENCES kip.plans (id),
  cpr      text NOT NULL CHECK (cpr ~ '^[0-9]{6}-[0-9]{4}$')
);

ALTER TABLE kip.plans ADD COLUMN citizen_cpr_enc text, ADD COLUMN citizen_cpr_hmac text;

-- Existing rows: the number to kip.cpr_pending, the mask in its place. This
-- changes no citizen, so the history trigger is off meanwhile.
ALTER TABLE kip.plans DISABLE TRIGGER plans_history;
INSERT INTO kip.cpr_pending (plan_id, cpr)
SELECT id, citizen_cpr FROM kip.plans WHERE citizen_cpr IS NOT NULL;
ALTER TABLE kip.plans DROP CONSTRAINT plans_citizen_cpr_check;
UPDATE kip.plans SET citizen_cpr = kip.cpr_mask(citizen_cpr) WHERE citizen_cpr IS NOT NULL;
ALTER TABLE kip.plans ENABLE TRIGGER plans_history;

ALTER TABLE kip.plans
  ADD CONSTRAINT plans_citizen_cpr_masked CHECK (citizen_cpr ~ '^[0-9]{6}-\*{4}$'),
  ADD CONSTRAINT plans_citizen_cpr_enc_token
    CHECK (citizen_cpr_enc ~ '^\x01kipd-cpr:1:[0-9a-f]{16}:[A-Za-z0-9_-]{52}$'),
  ADD CONSTRAINT plans_citizen_cpr_hmac_hex CHECK (citizen_cpr_hmac ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT plans_citizen_cpr_sealed
    CHECK ((citizen_cpr_enc IS NULL) = (citizen_cpr_hmac IS NULL)
           AND (citizen_cpr_enc IS NULL OR citizen_cpr IS NOT NULL));
COMMENT ON COLUMN kip.plans.citizen_cpr IS 'the CPR number masked (DDMMYY-****), never in clear';
COMMENT ON COLUMN kip.plans.citizen_cpr_enc IS 'the CPR number sealed by kipd (AES-256-GCM), see docs/cpr-encryption.md';
COMMENT ON COLUMN kip.plans.citizen_cpr_hmac IS 'HMAC-SHA256 blind index of the CPR number, for exact search';

DROP INDEX kip.plans_cpr;
CREATE INDEX plans_cpr_hmac ON kip.plans (citizen_cpr_hmac) WHERE citizen_cpr_hmac IS NOT NULL;

-- A write must carry a token sealed under the database's current key. A
-- kipd still running with the old key after kipd --rotate-key gets 503
-- here instead of writing what the key file can no longer open.
CREATE FUNCTION kip.cpr_check_sealed(p_citizen jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_citizen ? 'cpr' AND p_citizen->>'cpr' IS NOT NULL
     AND split_part(p_citizen->>'cpr_enc', ':', 3) IS DISTINCT FROM
         (SELECT id FROM kip.cpr_keys WHERE is_current) THEN
    PERFORM kip.fail(503, NULL, 'the CPR key was rotated; restart kipd');
  END IF;
END
$$;

-- ---------------------------------------------------------- redefined

-- The history trigger (002): CPR changes are found by the blind index and
-- recorded as masks.
CREATE OR REPLACE FUNCTION kip.track_history() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_new jsonb := to_jsonb(NEW);
  v_old jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) ELSE '{}'::jsonb END;
  v_plan uuid := CASE WHEN TG_TABLE_NAME = 'plans' THEN (v_new->>'id')::uuid
                      ELSE (v_new->>'plan_id')::uuid END;
  v_key text;
  v_field text;
  v_before jsonb;
  v_after jsonb;
  v_cpr_maintenance boolean := coalesce(current_setting('kip.cpr_maintenance', true), '') = 'on';
BEGIN
  FOR v_key IN SELECT jsonb_object_keys(v_new) LOOP
    CONTINUE WHEN v_key IN ('id', 'plan_id', 'version', 'created_at', 'updated_at', 'created_by',
                            'superseded_at');
    v_before := v_old->v_key;
    v_after := v_new->v_key;
    CONTINUE WHEN TG_OP = 'INSERT' AND (v_after IS NULL OR v_after = 'null'::jsonb);
    CONTINUE WHEN v_before IS NOT DISTINCT FROM v_after;
    -- CPR numbers: the blind index says whether the number changed (the
    -- mask alone cannot), and the history shows the masks. The token is
    -- never recorded. Re-encryption (kipd at start-up, kipd --rotate-key)
    -- changes no citizen and records nothing.
    CONTINUE WHEN v_key IN ('citizen_cpr', 'citizen_cpr_enc');
    CONTINUE WHEN v_key = 'citizen_cpr_hmac' AND v_cpr_maintenance;
    IF v_key = 'citizen_cpr_hmac' THEN
      v_key := 'citizen_cpr';
      v_before := v_old->'citizen_cpr';
      v_after := v_new->'citizen_cpr';
    END IF;
    v_field := CASE
      WHEN v_key LIKE 'citizen\_%' THEN 'citizen.' || substr(v_key, 9)
      WHEN v_key = 'coordinator_participant_id' THEN 'coordinator'
      ELSE v_key END;
    IF v_key = 'citizen_cpr' THEN  -- masks already; cpr_mask() keeps it so
      v_before := to_jsonb(kip.cpr_mask(v_before #>> '{}'));
      v_after := to_jsonb(kip.cpr_mask(v_after #>> '{}'));
    END IF;
    INSERT INTO kip.history (plan_id, user_id, resource, resource_id, operation, field, before, after)
    VALUES (v_plan, kip.actor_id(), TG_ARGV[0], (v_new->>'id')::uuid,
            CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END, v_field, v_before, v_after);
  END LOOP;
  RETURN NEW;
END
$$;

-- The plan document (005): the sealed token where the CPR number goes; kipd
-- decrypts it in the response.
CREATE OR REPLACE FUNCTION kip.plan_doc(p kip.plans) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', p.id, 'version', p.version, 'status', p.status,
    'citizen', jsonb_build_object('name', p.citizen_name, 'cpr', p.citizen_cpr_enc,
                                  'birth_date', p.citizen_birth_date, 'phone', p.citizen_phone,
                                  'address', p.citizen_address,
                                  'preferred_language', p.citizen_preferred_language),
    'reason', p.reason,
    'owner_organisation_id', p.owner_organisation_id,
    'coordinator', p.coordinator_participant_id,
    'coordinators', kip.coordinators_doc(p.id),
    'goals', p.goals,
    'needs', p.needs,
    'consent', (SELECT kip.consent_doc(c) FROM kip.consents c
                 WHERE c.plan_id = p.id AND c.superseded_at IS NULL),
    'participants', coalesce((SELECT jsonb_agg(kip.participant_doc(pa) ORDER BY pa.joined_at, pa.id)
                                FROM kip.participants pa WHERE pa.plan_id = p.id), '[]'::jsonb),
    'meetings', coalesce((SELECT jsonb_agg(kip.meeting_doc(m) ORDER BY m.starts_at DESC, m.id DESC)
                            FROM kip.meetings m WHERE m.plan_id = p.id), '[]'::jsonb),
    'actions', coalesce((SELECT jsonb_agg(kip.action_doc(a) ORDER BY a.created_at, a.id)
                           FROM kip.actions a WHERE a.plan_id = p.id), '[]'::jsonb),
    'follow_up_date', p.follow_up_date,
    'approved_at', p.approved_at,
    'created_at', p.created_at, 'updated_at', p.updated_at, 'closed_at', p.closed_at,
    'close_reason', p.close_reason, 'close_note', p.close_note)
$$;

-- plan_create (003): stores the mask, the token and the blind index kipd
-- sent in place of citizen.cpr.
CREATE OR REPLACE FUNCTION kip_api.plan_create(p_ctx jsonb, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_cit jsonb := p_body->'citizen';
  v_coord jsonb := coalesce(p_body->'coordinator', '{}');
  v_pid uuid := gen_random_uuid();
  p kip.plans;
BEGIN
  PERFORM kip.require_role(u, ARRAY['coordinator', 'integration'],
                           'only coordinators and integrations create plans');
  PERFORM kip.cpr_check_sealed(v_cit);
  INSERT INTO kip.plans (owner_organisation_id, coordinator_participant_id, citizen_name,
                         citizen_cpr, citizen_cpr_enc, citizen_cpr_hmac, citizen_birth_date, citizen_phone, citizen_address,
                         citizen_preferred_language, reason, goals, needs, follow_up_date,
                         approved_at, created_by)
  VALUES (u.organisation_id, v_pid, v_cit->>'name', v_cit->>'cpr', v_cit->>'cpr_enc', v_cit->>'cpr_hmac',
          (v_cit->>'birth_date')::date, v_cit->>'phone', v_cit->>'address',
          v_cit->>'preferred_language', coalesce(p_body->>'reason', ''),
          kip.goals_normalise(p_body->'goals'), kip.needs_normalise(p_body->'needs'),
          (p_body->>'follow_up_date')::date, (p_body->>'approved_at')::date, u.id)
  RETURNING * INTO p;
  INSERT INTO kip.participants (id, plan_id, kind, user_id, name, role, role_title,
                                organisation_id, phone, email)
  VALUES (v_pid, p.id, 'professional', u.id, u.display_name,
          coalesce(v_coord->>'role', 'social_nurse'), v_coord->>'role_title', u.organisation_id,
          coalesce(v_coord->>'phone', u.phone), coalesce(v_coord->>'email', u.email));
  INSERT INTO kip.participants (plan_id, kind, name, role, phone)
  VALUES (p.id, 'citizen', p.citizen_name, 'citizen', p.citizen_phone);
  INSERT INTO kip.coordinator_history (plan_id, participant_id, changed_by) VALUES (p.id, v_pid, u.id);
  PERFORM kip.audit('create', p.id, 'plan');
  RETURN kip.ok(kip.plan_doc(p), 201, p.version::text, '/v1/plans/' || p.id);
END
$$;

-- plan_patch (003): the same for a changed citizen.cpr.
CREATE OR REPLACE FUNCTION kip_api.plan_patch(p_ctx jsonb, p_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id, true);
  v_cit jsonb := coalesce(p_body->'citizen', '{}');
  v_status text := coalesce(p_body->>'status', p.status);
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  PERFORM kip.cpr_check_sealed(v_cit);
  IF v_status <> p.status THEN
    IF v_status = 'closed' THEN
      PERFORM kip.fail(422, 'status', 'close a plan with POST /v1/plans/{id}/close');
    ELSIF v_status = 'active' THEN
      IF NOT EXISTS (SELECT 1 FROM kip.consents c WHERE c.plan_id = p.id AND c.superseded_at IS NULL
                        AND c.kip_consent AND c.withdrawn_at IS NULL) THEN
        PERFORM kip.fail(422, 'status', 'a plan becomes active only once kip_consent is recorded');
      END IF;
    ELSIF p.status = 'active' THEN
      PERFORM kip.fail(422, 'status', 'an active plan leaves that state by closing or by consent withdrawal');
    END IF;
  END IF;
  UPDATE kip.plans SET
    status = v_status,
    citizen_name = CASE WHEN v_cit ? 'name' THEN v_cit->>'name' ELSE citizen_name END,
    citizen_cpr = CASE WHEN v_cit ? 'cpr' THEN v_cit->>'cpr' ELSE citizen_cpr END,
    citizen_cpr_enc = CASE WHEN v_cit ? 'cpr' THEN v_cit->>'cpr_enc' ELSE citizen_cpr_enc END,
    citizen_cpr_hmac = CASE WHEN v_cit ? 'cpr' THEN v_cit->>'cpr_hmac' ELSE citizen_cpr_hmac END,
    citizen_birth_date = CASE WHEN v_cit ? 'birth_date' THEN (v_cit->>'birth_date')::date
                              ELSE citizen_birth_date END,
    citizen_phone = CASE WHEN v_cit ? 'phone' THEN v_cit->>'phone' ELSE citizen_phone END,
    citizen_address = CASE WHEN v_cit ? 'address' THEN v_cit->>'address' ELSE citizen_address END,
    citizen_preferred_language = CASE WHEN v_cit ? 'preferred_language'
                                      THEN v_cit->>'preferred_language'
                                      ELSE citizen_preferred_language END,
    reason = CASE WHEN p_body ? 'reason' THEN p_body->>'reason' ELSE reason END,
    goals = CASE WHEN p_body ? 'goals' THEN kip.goals_normalise(p_body->'goals') ELSE goals END,
    needs = CASE WHEN p_body ? 'needs' THEN kip.needs_normalise(p_body->'needs') ELSE needs END,
    follow_up_date = CASE WHEN p_body ? 'follow_up_date' THEN (p_body->>'follow_up_date')::date
                          ELSE follow_up_date END,
    approved_at = CASE WHEN p_body ? 'approved_at' THEN (p_body->>'approved_at')::date
                       ELSE approved_at END,
    version = version + 1,
    updated_at = now()
  WHERE id = p.id RETURNING * INTO p;
  -- Keep the citizen participant in step with the citizen.
  UPDATE kip.participants SET name = p.citizen_name, phone = p.citizen_phone
   WHERE plan_id = p.id AND kind = 'citizen'
     AND (name IS DISTINCT FROM p.citizen_name OR phone IS DISTINCT FROM p.citizen_phone);
  PERFORM kip.audit('update', p.id, 'plan');
  RETURN kip.ok(kip.plan_doc(p), NULL, p.version::text);
END
$$;

-- plan_list: a CPR-shaped q arrives as its blind index (query member
-- cpr_hmac; kipd takes the number itself out of the query). The one change is
-- the CPR condition of the WHERE clause:
--     AND (v_q IS NULL OR p.citizen_name ILIKE v_like OR p.citizen_cpr = v_cpr)
-- becomes
--     AND (v_q IS NULL OR p.citizen_name ILIKE v_like)
--     AND (p_query->>'cpr_hmac' IS NULL OR p.citizen_cpr_hmac = p_query->>'cpr_hmac')
-- It is applied to the function as the earlier migrations left it (003, or a
-- later redefinition such as the audit's), so this file does not carry a
-- copy of plan_list that would undo theirs. It fails unless the condition
-- is found exactly once.
DO $$
DECLARE
  v_old constant text := 'AND (v_q IS NULL OR p.citizen_name ILIKE v_like OR p.citizen_cpr = v_cpr)';
  v_new constant text := 'AND (v_q IS NULL OR p.citizen_name ILIKE v_like)' || chr(10) ||
    '             AND (p_query->>''cpr_hmac'' IS NULL OR p.citizen_cpr_hmac = p_query->>''cpr_hmac'')';
  v_src text := pg_get_functiondef('kip_api.plan_list(jsonb, jsonb)'::regprocedure);
BEGIN
  IF array_length(string_to_array(v_src, v_old), 1) IS DISTINCT FROM 2 THEN
    RAISE EXCEPTION '010_cpr: the CPR condition of kip_api.plan_list was not found exactly once';
  END IF;
  EXECUTE replace(v_src, v_old, v_new);
END
$$;
