-- 017_webhooks: webhook subscriptions and their deliveries (issue 14). The
-- functions (the fan-out trigger on kip.events, the claim, the result, the
-- API) live in schema/functions/21_webhooks.sql; docs/webhooks.md has the
-- design.

-- A subscription: the organisation's endpoint, the event types it wants
-- (empty: all) and its signing secret. The secret is kept as given (it keys
-- an HMAC, so it cannot be hashed); no API answer shows it after the
-- creation (docs/security.md, "Webhook secrets").
CREATE TABLE kip.webhooks (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organisation_id  uuid NOT NULL REFERENCES kip.organisations (id),
  created_by       uuid NOT NULL REFERENCES kip.users (id),
  url              text NOT NULL CHECK (length(url) BETWEEN 10 AND 2000),
  event_types      text[] NOT NULL DEFAULT '{}',
  description      text CHECK (length(description) <= 200),
  secret           text NOT NULL CHECK (length(secret) >= 32),
  created_at       timestamptz NOT NULL DEFAULT now(),
  deleted_at       timestamptz
);
CREATE INDEX webhooks_organisation ON kip.webhooks (organisation_id, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;

-- One event for one subscription. pending → delivered | failed (retries
-- exhausted) | withheld (the subscription may no longer see the plan, or
-- was deleted). next_attempt_at doubles as the lease of a claimed attempt:
-- a claim moves it past the request's timeout, so a kipd killed mid-request
-- leaves the delivery to be claimed again (at least once). claim names the
-- attempt in flight; a result for another attempt is ignored.
CREATE TABLE kip.webhook_deliveries (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  webhook_id       uuid NOT NULL REFERENCES kip.webhooks (id),
  event_id         bigint NOT NULL REFERENCES kip.events (id),
  status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed', 'withheld')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  retry_from       timestamptz NOT NULL DEFAULT now(),
  claim            uuid,
  last_attempt_at  timestamptz,
  last_status      integer,
  last_error       text,
  delivered_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON kip.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_page ON kip.webhook_deliveries (webhook_id, created_at DESC, id DESC);
