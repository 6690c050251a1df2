-- 028_plan_list: keys for GET /v1/plans (issue 12).
--
-- 1. kip.plan_contacts: the organisations a plan's live KIP consent names as
-- contacts, one row each, in the order of the plan list.
--
-- GET /v1/plans for a caller outside the owning organisation found the
-- plans its organisation may see through the GIN index on
-- consents.contact_organisation_ids, which gives no order: every candidate
-- plan (about 550 for an organisation at scale 1) was read and sorted to
-- show the newest 50. With this key the list reads each branch of the access
-- rule (the caller's own organisation's plans, plans_owner_page; the plans
-- whose consent names it, plan_contacts_pkey) newest first and stops at the
-- page's limit. Kept by kip.plan_contacts_sync() (schema/functions/14_consent.sql)
-- whenever a consent is written, and follows a plan's created_at.
CREATE TABLE kip.plan_contacts (
  organisation_id  uuid NOT NULL,
  plan_created_at  timestamptz NOT NULL,
  plan_id          uuid NOT NULL REFERENCES kip.plans (id),
  PRIMARY KEY (organisation_id, plan_created_at, plan_id)
);
CREATE INDEX plan_contacts_plan ON kip.plan_contacts (plan_id);
INSERT INTO kip.plan_contacts (organisation_id, plan_created_at, plan_id)
SELECT DISTINCT o.id, p.created_at, p.id
  FROM kip.consents c
  JOIN kip.plans p ON p.id = c.plan_id
 CROSS JOIN LATERAL unnest(c.contact_organisation_ids) AS o(id)
 WHERE c.superseded_at IS NULL AND c.withdrawn_at IS NULL AND c.kip_consent;

-- 2. The counts of each listed plan's open and overdue actions from the index
-- alone: actions_plan (004) gains status and due_date as included columns,
-- so the list's counts are an index-only scan of about 3 pages per plan
-- instead of reading its ~12 action rows (759 buffer hits a page became 159),
-- and the plan document still reads a plan's actions in order from it.
DROP INDEX kip.actions_plan;
CREATE INDEX actions_plan ON kip.actions (plan_id, created_at, id) INCLUDE (status, due_date);
