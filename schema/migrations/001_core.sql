-- 001_core: accounts, plans, participants, consent, history and audit.
--
-- Conventions:
--   * Schema `kip` holds tables and internal functions; schema `kip_api`
--     holds one function per HTTP operation. kipd calls only kip_api.
--   * kip_api functions take (ctx jsonb, path params..., body jsonb, query
--     jsonb), authenticate the token in ctx, apply the one access rule
--     (kip.plan_access), write the audit record, and return kip.reply.
--   * Errors are raised through kip.fail() with SQLSTATE 'KPnnn', where nnn
--     is the HTTP status, and a DETAIL of {"user_id", "errors": [{field,
--     message}]}.

CREATE SCHEMA kip;
CREATE SCHEMA kip_api;

-- ---------------------------------------------------------------- accounts

CREATE TABLE kip.organisations (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  sector      text NOT NULL CHECK (sector IN ('region_hospital', 'region_psychiatry',
                'municipality_jobcenter', 'municipality_social', 'municipality_addiction',
                'general_practice', 'civil_society', 'private', 'other')),
  cvr         text CHECK (cvr ~ '^[0-9]{8}$'),
  ean         text CHECK (ean ~ '^[0-9]{13}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organisations_page ON kip.organisations (created_at DESC, id DESC);

CREATE TABLE kip.users (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  username         text NOT NULL CONSTRAINT users_username_key UNIQUE
                     CHECK (username ~ '^[a-z0-9._-]{3,64}$'),
  display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  organisation_id  uuid NOT NULL CONSTRAINT users_organisation_id_fkey
                     REFERENCES kip.organisations (id),
  roles            text[] NOT NULL CHECK (cardinality(roles) > 0 AND roles <@
                     ARRAY['admin', 'coordinator', 'caseworker', 'integration', 'auditor']),
  email            text,
  phone            text,
  active           boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_page ON kip.users (created_at DESC, id DESC);
CREATE INDEX users_organisation ON kip.users (organisation_id);

-- Bearer tokens: only the SHA-256 of the token is stored.
CREATE TABLE kip.tokens (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES kip.users (id),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  token_hash    text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,
  revoked_at    timestamptz,
  last_used_at  timestamptz
);
CREATE INDEX tokens_user ON kip.tokens (user_id);

-- ------------------------------------------------------------------- plans

CREATE TABLE kip.plans (
  id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  version                     integer NOT NULL DEFAULT 1,
  status                      text NOT NULL DEFAULT 'draft'
                                CHECK (status IN ('draft', 'awaiting_consent', 'active', 'closed')),
  owner_organisation_id       uuid NOT NULL REFERENCES kip.organisations (id),
  coordinator_participant_id  uuid NOT NULL,
  citizen_name                text NOT NULL CHECK (length(citizen_name) BETWEEN 1 AND 200),
  citizen_cpr                 text CHECK (citizen_cpr ~ '^[0-9]{6}-[0-9]{4}$'),
  citizen_birth_date          date,
  citizen_phone               text,
  citizen_address             text,
  citizen_preferred_language  text,
  reason                      text NOT NULL DEFAULT '',
  goals                       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(goals) = 'array'),
  needs                       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(needs) = 'object'),
  follow_up_date              date,
  approved_at                 date,
  created_by                  uuid REFERENCES kip.users (id),
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  closed_at                   timestamptz,
  close_reason                text CHECK (close_reason IN ('completed', 'transferred', 'declined',
                                'consent_withdrawn', 'deceased', 'moved', 'other')),
  close_note                  text,
  CHECK ((status = 'closed') = (closed_at IS NOT NULL AND close_reason IS NOT NULL))
);
CREATE INDEX plans_page ON kip.plans (created_at DESC, id DESC);
CREATE INDEX plans_owner_page ON kip.plans (owner_organisation_id, created_at DESC, id DESC);
CREATE INDEX plans_cpr ON kip.plans (citizen_cpr) WHERE citizen_cpr IS NOT NULL;

CREATE TABLE kip.participants (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  plan_id             uuid NOT NULL REFERENCES kip.plans (id),
  kind                text NOT NULL CHECK (kind IN ('citizen', 'relative', 'professional')),
  user_id             uuid CONSTRAINT participants_user_id_fkey REFERENCES kip.users (id),
  name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  role                text NOT NULL CHECK (role IN ('social_nurse', 'caseworker',
                        'jobcenter_caseworker', 'support_contact_person', 'general_practitioner',
                        'addiction_counsellor', 'psychiatry', 'municipal_authority', 'relative',
                        'citizen', 'other')),
  role_title          text,
  organisation_id     uuid CONSTRAINT participants_organisation_id_fkey
                        REFERENCES kip.organisations (id),
  phone               text,
  email               text,
  default_attendance  text NOT NULL DEFAULT 'in_person'
                        CHECK (default_attendance IN ('in_person', 'phone', 'video')),
  joined_at           timestamptz NOT NULL DEFAULT now(),
  left_at             timestamptz
);
CREATE INDEX participants_plan ON kip.participants (plan_id);
CREATE UNIQUE INDEX participants_one_active_user ON kip.participants (plan_id, user_id)
  WHERE left_at IS NULL AND user_id IS NOT NULL;
CREATE INDEX participants_user_active ON kip.participants (user_id)
  WHERE left_at IS NULL AND user_id IS NOT NULL;

ALTER TABLE kip.plans ADD CONSTRAINT plans_coordinator_fkey
  FOREIGN KEY (coordinator_participant_id) REFERENCES kip.participants (id)
  DEFERRABLE INITIALLY DEFERRED;

-- Every tovholder a plan has had, with dates.
CREATE TABLE kip.coordinator_history (
  id              bigserial PRIMARY KEY,
  plan_id         uuid NOT NULL REFERENCES kip.plans (id),
  participant_id  uuid NOT NULL REFERENCES kip.participants (id),
  started_at      timestamptz NOT NULL DEFAULT now(),
  ended_at        timestamptz,
  changed_by      uuid REFERENCES kip.users (id)
);
CREATE INDEX coordinator_history_plan ON kip.coordinator_history (plan_id, id);

-- Consent: one current record per plan; replaced records stay, superseded.
CREATE TABLE kip.consents (
  id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  plan_id                   uuid NOT NULL REFERENCES kip.plans (id),
  kip_consent               boolean NOT NULL,
  contact_organisation_ids  uuid[] NOT NULL DEFAULT '{}',
  relatives_allowed         boolean NOT NULL DEFAULT false,
  form                      text NOT NULL CHECK (form IN ('verbal', 'written')),
  given_at                  timestamptz NOT NULL,
  recorded_by               uuid NOT NULL REFERENCES kip.users (id),
  review_by                 date NOT NULL,
  withdrawn_at              timestamptz,
  withdraw_note             text,
  created_at                timestamptz NOT NULL DEFAULT now(),
  superseded_at             timestamptz
);
CREATE UNIQUE INDEX consents_current ON kip.consents (plan_id) WHERE superseded_at IS NULL;

-- Field-level change history of plans, participants and consents.
CREATE TABLE kip.history (
  id           bigserial PRIMARY KEY,
  plan_id      uuid NOT NULL,
  at           timestamptz NOT NULL DEFAULT now(),
  user_id      uuid,
  resource     text NOT NULL,
  resource_id  uuid NOT NULL,
  operation    text NOT NULL CHECK (operation IN ('create', 'update')),
  field        text NOT NULL,
  before       jsonb,
  after        jsonb
);
CREATE INDEX history_plan ON kip.history (plan_id, id);

-- Who read or wrote what. Issue 5 adds the hash chain and the grants.
CREATE TABLE kip.audit (
  id               bigserial PRIMARY KEY,
  at               timestamptz NOT NULL DEFAULT now(),
  user_id          uuid,
  organisation_id  uuid,
  action           text NOT NULL,
  plan_id          uuid,
  resource         text NOT NULL,
  request_id       text,
  remote_addr      text
);
CREATE INDEX audit_plan ON kip.audit (plan_id, id);
CREATE INDEX audit_user ON kip.audit (user_id, id);
