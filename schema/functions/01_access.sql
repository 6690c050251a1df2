-- 01_access.sql: The access rule: which plans a user may see (plan_access,
-- require_plan) and write (plan_may_write, action_may_write).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- The current consent of a plan, if any and not withdrawn.
CREATE FUNCTION kip.consent_covers(p_plan_id uuid, p_org uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN EXISTS (SELECT 1 FROM kip.consents c
                  WHERE c.plan_id = p_plan_id AND c.superseded_at IS NULL
                    AND c.withdrawn_at IS NULL AND c.kip_consent
                    AND p_org = ANY (c.contact_organisation_ids));
END
$function$;

-- THE access rule. Every route that touches a plan goes through it, via
-- kip.require_plan() for one plan, or kip.plan_access_rule() in queries over
-- many plans.
-- A user who holds a plan-working role may see a plan when
--   * their organisation owns the plan, or
--   * the current consent covers their organisation and they are a
--     coordinator or caseworker (so a municipal team leader sees the work
--     of their organisation), or
--   * they are an active participant linked by user_id and the current
--     consent covers their organisation.
-- admin and auditor alone see no plan. A withdrawn consent covers nobody.
--
-- Written once, here, as a set-returning SQL function: one row (true) when
-- the user may see the plan, none otherwise. PostgreSQL inlines a
-- set-returning SQL function into the query that uses it, so a list query
-- that tests each candidate plan with
--   EXISTS (SELECT 1 FROM kip.plan_access_rule(u.id, u.organisation_id, u.roles, p.id, p.owner_organisation_id))
-- evaluates the rule inside its own plan, with no function call per row
-- (issue 12: a PL/pgSQL call per candidate was most of GET /v1/me/actions).
-- The consent is read only when the owner test fails.
CREATE FUNCTION kip.plan_access_rule(p_user_id uuid, p_org uuid, p_roles text[], p_plan_id uuid, p_owner uuid)
 RETURNS SETOF boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT true
   WHERE p_roles && ARRAY['coordinator', 'caseworker', 'integration']
     AND (p_owner = p_org
          OR (EXISTS (SELECT 1 FROM kip.consents c
                       WHERE c.plan_id = p_plan_id AND c.superseded_at IS NULL
                         AND c.withdrawn_at IS NULL AND c.kip_consent
                         AND p_org = ANY (c.contact_organisation_ids))
              AND (p_roles && ARRAY['coordinator', 'caseworker']
                   OR EXISTS (SELECT 1 FROM kip.participants pa
                               WHERE pa.plan_id = p_plan_id AND pa.user_id = p_user_id
                                 AND pa.left_at IS NULL))))
$function$;

-- The rule for one plan. PL/pgSQL, so the statement (with the rule inlined)
-- is planned once per session.
CREATE FUNCTION kip.plan_access(p_user_id uuid, p_org uuid, p_roles text[], p_plan_id uuid, p_owner uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN EXISTS (SELECT 1 FROM kip.plan_access_rule(p_user_id, p_org, p_roles, p_plan_id, p_owner));
END
$function$;

-- Load a plan the caller may see, or 404. p_write: the caller must also
-- have the right to change it (403: they know it exists) and the plan must
-- not be closed (409). Writes lock the plan row.
CREATE FUNCTION kip.require_plan(p_user kip.users, p_plan_id uuid, p_write boolean DEFAULT false)
 RETURNS kip.plans
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_plan kip.plans;
  v_seen boolean;
BEGIN
  IF p_write THEN
    SELECT * INTO v_plan FROM kip.plans WHERE id = p_plan_id FOR UPDATE;
  ELSE
    SELECT * INTO v_plan FROM kip.plans WHERE id = p_plan_id;
  END IF;
  -- The access rule runs for a missing id too (with no owner, so it reads
  -- the consents as for a hidden plan): a hidden plan and a missing one get
  -- the same answer in the same time (issue 16, the timing oracle).
  v_seen := kip.plan_access(p_user.id, p_user.organisation_id, p_user.roles,
                            p_plan_id, v_plan.owner_organisation_id);
  IF v_plan.id IS NULL OR NOT v_seen THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such plan');
  END IF;
  IF p_write AND NOT kip.plan_may_write(p_user, v_plan) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization',
      CASE WHEN v_plan.owner_organisation_id <> p_user.organisation_id
                AND NOT kip.consent_covers(v_plan.id, p_user.organisation_id)
           THEN 'the consent is withdrawn: only the owning organisation may change this plan'
           ELSE 'only the plan''s participants and the owning organisation''s coordinators may change it'
      END);
  END IF;
  IF p_write AND v_plan.status = 'closed' THEN
    PERFORM kip.fail(409, 'closed', 'status', 'the plan is closed and read-only');
  END IF;
  RETURN v_plan;
END
$function$;

-- May the caller see this plan? For the lookups by a sub-resource's id
-- (meetings, actions), which must answer a hidden plan's resource exactly
-- as a missing one, with the sub-resource's own 404. p_plan_id is NULL when
-- the sub-resource does not exist; the plan lookup and the access rule run
-- all the same, so a hidden resource and a missing one take the same time
-- (issue 16, the timing oracle).
CREATE FUNCTION kip.plan_visible(p_user kip.users, p_plan_id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  v_owner uuid;
  v_found boolean;
  v_seen boolean;
BEGIN
  SELECT owner_organisation_id INTO v_owner FROM kip.plans WHERE id = p_plan_id;
  v_found := FOUND;
  v_seen := kip.plan_access(p_user.id, p_user.organisation_id, p_user.roles, p_plan_id, v_owner);
  RETURN v_found AND v_seen;
END
$function$;

CREATE FUNCTION kip.require_role(p_user kip.users, p_roles text[], p_what text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF NOT (p_user.roles && p_roles) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization', p_what);
  END IF;
END
$function$;

CREATE FUNCTION kip.require_participant(p_plan_id uuid, p_id uuid, p_lock boolean DEFAULT false)
 RETURNS kip.participants
 LANGUAGE plpgsql
AS $function$
DECLARE
  pa kip.participants;
BEGIN
  IF p_lock THEN
    SELECT * INTO pa FROM kip.participants WHERE id = p_id AND plan_id = p_plan_id FOR UPDATE;
  ELSE
    SELECT * INTO pa FROM kip.participants WHERE id = p_id AND plan_id = p_plan_id;
  END IF;
  IF pa.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such participant');
  END IF;
  RETURN pa;
END
$function$;

-- Load an action through its plan's access rule; for a write, the caller
-- must be allowed to change the plan and this action.
CREATE FUNCTION kip.require_action(p_user kip.users, p_id uuid, p_write boolean DEFAULT false, OUT a kip.actions, OUT p kip.plans)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_plan uuid;
BEGIN
  SELECT plan_id INTO v_plan FROM kip.actions WHERE id = p_id;
  -- An action in a hidden plan answers as a missing one, in the same time
  -- (plan_visible does the same work for a NULL plan id).
  IF NOT kip.plan_visible(p_user, v_plan) THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such action');
  END IF;
  p := kip.require_plan(p_user, v_plan, p_write);
  IF p_write THEN
    SELECT * INTO a FROM kip.actions WHERE id = p_id FOR UPDATE;
    IF NOT kip.action_may_write(p_user, p, a) THEN
      PERFORM kip.fail(403, 'forbidden', 'Authorization',
        'only the responsible participant, the tovholder or the owning organisation''s coordinators may change an action');
    END IF;
  ELSE
    SELECT * INTO a FROM kip.actions WHERE id = p_id;
  END IF;
END
$function$;

-- Write rights are stricter than read rights, and a consent withdrawal makes
-- a plan read-only outside its owning organisation. Reading is
-- kip.plan_access. Writing a plan needs, on top of it, kip.plan_may_write:
--   * the owning organisation's coordinators (and its integration, which
--     acts for the organisation), or
--   * an active participant linked by user_id, from the owning organisation
--     or from an organisation the current consent covers.
-- A withdrawn consent covers nobody, so after a withdrawal only the owning
-- organisation can change the plan. Changing an action needs one more thing
-- (kip.action_may_write): being its responsible participant, the tovholder,
-- or the owning organisation's coordinator or integration.
-- These are PL/pgSQL, RETURN (SELECT ...), so the statement is planned once per
-- session: as SQL functions taking whole rows they could not be inlined and
-- were parsed and planned again on every write (docs/performance.md).
CREATE FUNCTION kip.plan_may_write(p_user kip.users, p kip.plans)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT (p.owner_organisation_id = p_user.organisation_id
            AND p_user.roles && ARRAY['coordinator', 'integration'])
        OR (p_user.roles && ARRAY['coordinator', 'caseworker']
            AND EXISTS (SELECT 1 FROM kip.participants pa
                         WHERE pa.plan_id = p.id AND pa.user_id = p_user.id AND pa.left_at IS NULL)
            AND (p.owner_organisation_id = p_user.organisation_id
                 OR kip.consent_covers(p.id, p_user.organisation_id))));
END
$function$;

CREATE FUNCTION kip.action_may_write(p_user kip.users, p kip.plans, a kip.actions)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT (p.owner_organisation_id = p_user.organisation_id
            AND p_user.roles && ARRAY['coordinator', 'integration'])
        OR EXISTS (SELECT 1 FROM kip.participants pa
                    WHERE pa.user_id = p_user.id AND pa.left_at IS NULL
                      AND pa.id IN (p.coordinator_participant_id, a.responsible_participant_id)));
END
$function$;

-- Who steers a plan: changes its consent, hands over the tovholder role or
-- closes it (issue #16). Stricter than kip.plan_may_write: the plan's
-- tovholder (an active participant linked by user_id) or the owning
-- organisation's coordinators and integration (which acts for the
-- organisation, as in kip.plan_may_write). Other participants may work in
-- the plan but not widen who sees it, take it over or end it.
CREATE FUNCTION kip.plan_may_steer(p_user kip.users, p kip.plans)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT (p.owner_organisation_id = p_user.organisation_id
            AND p_user.roles && ARRAY['coordinator', 'integration'])
        OR EXISTS (SELECT 1 FROM kip.participants pa
                    WHERE pa.id = p.coordinator_participant_id AND pa.user_id = p_user.id
                      AND pa.left_at IS NULL));
END
$function$;

-- 403 unless the caller may steer the plan (call after kip.require_plan
-- with p_write, so a hidden plan still answers 404).
CREATE FUNCTION kip.require_steward(p_user kip.users, p kip.plans, p_what text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF NOT kip.plan_may_steer(p_user, p) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization',
      format('only the tovholder and the owning organisation''s coordinators may %s', p_what));
  END IF;
END
$function$;
