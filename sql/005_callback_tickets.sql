-- Callback requests grow into tickets (issue 8), in place: no row is lost or rewritten, the
-- callers' words stay as they were. Every status change, by callcontrol or by hand in SQL, is
-- a row in callcontrol_callback_history, written by a trigger so that no path can skip it.

ALTER TABLE callcontrol_callback_requests
    ADD COLUMN IF NOT EXISTS extension text,              -- the agent's extension, if known
    ADD COLUMN IF NOT EXISTS intended_for text,           -- who the caller wanted ("o João")
    ADD COLUMN IF NOT EXISTS department text,
    ADD COLUMN IF NOT EXISTS scheduled_at timestamptz,    -- not before (null: as soon as possible)
    ADD COLUMN IF NOT EXISTS expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS max_attempts integer NOT NULL DEFAULT 3,
    ADD COLUMN IF NOT EXISTS notification_count integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_notified_at timestamptz,
    ADD COLUMN IF NOT EXISTS min_interval_minutes integer NOT NULL DEFAULT 10,
    ADD COLUMN IF NOT EXISTS completed_at timestamptz,
    ADD COLUMN IF NOT EXISTS notify_via_whatsapp boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS whatsapp_sent_at timestamptz,
    ADD COLUMN IF NOT EXISTS whatsapp_response text,
    ADD COLUMN IF NOT EXISTS whatsapp_response_at timestamptz,
    ADD COLUMN IF NOT EXISTS call_started_at timestamptz,  -- the caller's call (call_uuid)
    ADD COLUMN IF NOT EXISTS call_duration_seconds integer,
    ADD COLUMN IF NOT EXISTS recording_path text,
    ADD COLUMN IF NOT EXISTS transcript jsonb,
    ADD COLUMN IF NOT EXISTS summary text;

-- Requests written before tickets existed expire like new ones would (CALLBACK_EXPIRATION_HOURS
-- defaults to 24), counted from when the caller asked.
UPDATE callcontrol_callback_requests
   SET expires_at = created_at + interval '24 hours'
 WHERE expires_at IS NULL;
-- ...and so do new ones unless their writer says otherwise.
ALTER TABLE callcontrol_callback_requests
    ALTER COLUMN expires_at SET DEFAULT now() + interval '24 hours';

-- A status this release does not know (written by hand) is kept for a person to look at.
UPDATE callcontrol_callback_requests
   SET status = 'needs_review'
 WHERE status NOT IN ('pending', 'notified', 'ready_to_call', 'in_progress', 'completed',
                      'expired', 'canceled', 'failed', 'needs_review');

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'callcontrol_callback_requests_status_known'
                      AND conrelid = 'callcontrol_callback_requests'::regclass) THEN
        ALTER TABLE callcontrol_callback_requests
            ADD CONSTRAINT callcontrol_callback_requests_status_known CHECK (status IN (
                'pending', 'notified', 'ready_to_call', 'in_progress', 'completed', 'expired',
                'canceled', 'failed', 'needs_review'));
    END IF;
END $$;

-- What the scanner reads: the open tickets by when they are due.
CREATE INDEX IF NOT EXISTS callcontrol_callback_requests_open
    ON callcontrol_callback_requests (scheduled_at, created_at)
    WHERE status IN ('pending', 'notified', 'ready_to_call');

CREATE TABLE IF NOT EXISTS callcontrol_callback_history (
    history_id bigserial PRIMARY KEY,
    request_uuid uuid NOT NULL
        REFERENCES callcontrol_callback_requests (request_uuid) ON DELETE CASCADE,
    from_status text,                 -- null: the ticket was created
    to_status text NOT NULL,
    changed_by text NOT NULL,         -- secretary, scanner, click-to-call, an agent, migration, sql
    reason text,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS callcontrol_callback_history_request
    ON callcontrol_callback_history (request_uuid, changed_at);

-- Who changed it and why come from the transaction's settings (callcontrol sets them with
-- set_config(..., true)); a change made by hand in SQL is recorded as 'sql'.
CREATE OR REPLACE FUNCTION callcontrol_callback_history_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO callcontrol_callback_history
            (request_uuid, from_status, to_status, changed_by, reason)
        VALUES (NEW.request_uuid,
                CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.status END,
                NEW.status,
                coalesce(nullif(current_setting('callcontrol.changed_by', true), ''), 'sql'),
                nullif(current_setting('callcontrol.change_reason', true), ''));
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS callcontrol_callback_history_write ON callcontrol_callback_requests;
CREATE TRIGGER callcontrol_callback_history_write
    AFTER INSERT OR UPDATE OF status ON callcontrol_callback_requests
    FOR EACH ROW EXECUTE FUNCTION callcontrol_callback_history_write();

-- The tickets that existed before: one history row each, saying where they came from.
INSERT INTO callcontrol_callback_history (request_uuid, from_status, to_status, changed_by,
                                          reason, changed_at)
SELECT r.request_uuid, NULL, r.status, 'migration',
       'created before callback history existed', r.created_at
  FROM callcontrol_callback_requests r
 WHERE NOT EXISTS (SELECT 1 FROM callcontrol_callback_history h
                    WHERE h.request_uuid = r.request_uuid);
