-- The outbox (issue 8): everything that leaves the process for another system (today the
-- helpdesk webhook, later WhatsApp) is first a row here, written in the same transaction as the
-- ticket change that causes it, so a change is never sent without being stored nor stored
-- without being sent. A delivery task claims rows (FOR UPDATE SKIP LOCKED, then a lease), sends
-- them, and retries with backoff until the receiver answers 2xx; a row is never deleted by
-- callcontrol, a delivery that keeps failing stays here, visible.

CREATE TABLE IF NOT EXISTS callcontrol_outbox (
    outbox_id bigserial PRIMARY KEY,
    -- sent as the Idempotency-Key header: a receiver that sees it twice has seen one delivery
    idempotency_key uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    kind text NOT NULL,                    -- helpdesk_webhook (whatsapp later)
    event text NOT NULL,                   -- callback.created, callback.updated, callback.notified
    request_uuid uuid REFERENCES callcontrol_callback_requests (request_uuid) ON DELETE SET NULL,
    payload jsonb NOT NULL,                -- the body, as it was when the change happened
    -- pending: waiting for its first try or its next one; sending: claimed by an instance
    -- until lease_until; failing: tried at least 3 times without a 2xx, still retried;
    -- delivered: the receiver answered 2xx
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'failing', 'delivered')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    last_attempt_at timestamptz,
    last_error text,                       -- "HTTP 503: ..." or the connection error
    response_status integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);

-- What the delivery task reads: the rows not yet delivered, by when they are due.
CREATE INDEX IF NOT EXISTS callcontrol_outbox_undelivered
    ON callcontrol_outbox (kind, next_attempt_at) WHERE status <> 'delivered';
CREATE INDEX IF NOT EXISTS callcontrol_outbox_request
    ON callcontrol_outbox (request_uuid);
