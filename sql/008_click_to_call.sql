-- Click-to-call (issue 8): every attempt to call a callback ticket back is a row, with the two
-- legs' own UUIDs (origination_uuid: a Job-UUID is not a call), what became of it and, when
-- agent and customer talked, for how long. The ticket's status and its history stay where
-- they are (callcontrol_callback_requests, callcontrol_callback_history); this says how each
-- call went. Numbered 008 though written after 009: the runner applies every missing number.

CREATE TABLE IF NOT EXISTS callcontrol_callback_attempts (
    attempt_id bigserial PRIMARY KEY,
    request_uuid uuid NOT NULL
        REFERENCES callcontrol_callback_requests (request_uuid) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt > 0),     -- 1: the ticket's first call
    call_order text NOT NULL CHECK (call_order IN ('agent-first', 'customer-first')),
    agent_endpoint text NOT NULL,                     -- user/1001@empresa.com.br
    customer_endpoint text NOT NULL,                  -- loopback/+55.../ctx or sofia/gateway/...
    agent_uuid uuid NOT NULL,
    customer_uuid uuid NOT NULL,
    outcome text CHECK (outcome IN (
        'bridged', 'agent_unavailable', 'agent_busy', 'agent_no_answer', 'agent_failed',
        'agent_hung_up', 'customer_busy', 'customer_no_answer', 'customer_failed',
        'customer_hung_up', 'bridge_failed', 'cancelled')),  -- null: still ringing
    hangup_cause text,                                -- FreeSWITCH's, of the leg that ended it
    instance text,                                    -- CALLCONTROL_INSTANCE_ID that called
    started_at timestamptz NOT NULL DEFAULT now(),
    bridged_at timestamptz,
    ended_at timestamptz,
    duration_seconds integer,                         -- bridged until the first hangup
    UNIQUE (request_uuid, attempt)
);
CREATE INDEX IF NOT EXISTS callcontrol_callback_attempts_request
    ON callcontrol_callback_attempts (request_uuid, started_at);
