-- What each call became, with its transcript, and what callers asked for when nobody could
-- answer. A callback request is written (in its own transaction) before the AI tells the
-- caller it was noted, so nothing the caller gave is lost.

CREATE TABLE IF NOT EXISTS callcontrol_calls (
    call_uuid uuid PRIMARY KEY,
    domain_uuid uuid,
    secretary_uuid uuid,
    caller_number text,
    caller_name text,
    instance text,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    outcome text,                 -- bridged | callback_requested | message_taken | voicemail | ended | caller_hangup | ai_failed
    handoff_status text,          -- the last handoff's outcome (success, busy, ...), if any
    handoff_destination text,
    hangup_cause text,
    transcript jsonb NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX IF NOT EXISTS callcontrol_calls_domain_started
    ON callcontrol_calls (domain_uuid, started_at);

CREATE TABLE IF NOT EXISTS callcontrol_callback_requests (
    request_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind text NOT NULL CHECK (kind IN ('callback', 'message')),
    call_uuid uuid,
    domain_uuid uuid,
    secretary_uuid uuid,
    destination_uuid uuid,
    destination_name text,
    caller_name text,
    phone_number text NOT NULL,   -- E.164, validated before it is written
    preferred_time text,
    reason text,
    message text,
    status text NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS callcontrol_callback_requests_pending
    ON callcontrol_callback_requests (domain_uuid, status, created_at);
