-- Every committed change an agent's console shows (a ticket stored, moved, told again or put
-- off) is announced with NOTIFY on the channel callcontrol_tickets, by a trigger, so that no
-- path can skip it and every serve instance hears the changes made by any other (and by hand in
-- SQL). NOTIFY is sent at commit: a rolled-back change is never announced. The payload is what
-- the event stream filters on (the schema, the domain, the agent's extension) and what a notice
-- shows; its texts are cut short so it stays far below NOTIFY's 8000 bytes.

CREATE OR REPLACE FUNCTION callcontrol_ticket_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        change := 'created';
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        change := 'status';
    ELSIF NEW.notification_count IS DISTINCT FROM OLD.notification_count THEN
        change := 'notified';
    ELSIF NEW.scheduled_at IS DISTINCT FROM OLD.scheduled_at THEN
        change := 'rescheduled';
    ELSE
        RETURN NULL;
    END IF;
    PERFORM pg_notify('callcontrol_tickets', json_build_object(
        'schema', TG_TABLE_SCHEMA,
        'id', NEW.request_uuid,
        'change', change,
        'status', NEW.status,
        'previous_status', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.status END,
        'kind', NEW.kind,
        'domain_uuid', NEW.domain_uuid,
        -- the ticket's agent as tickets.AGENT_COLUMNS reads it: its own extension, else its
        -- destination's when that is an extension
        'extension', coalesce(NEW.extension, (
            SELECT t.destination_number FROM v_voice_transfer_destinations t
             WHERE t.transfer_destination_uuid = NEW.destination_uuid
               AND t.destination_type = 'extension')),
        'notification_count', NEW.notification_count,
        'scheduled_at', NEW.scheduled_at,
        'caller_number', left(NEW.phone_number, 40),
        'caller_name', left(NEW.caller_name, 100),
        'reason', left(NEW.reason, 200),
        'at', now())::text);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS callcontrol_ticket_notify ON callcontrol_callback_requests;
CREATE TRIGGER callcontrol_ticket_notify
    AFTER INSERT OR UPDATE OF status, notification_count, scheduled_at
    ON callcontrol_callback_requests
    FOR EACH ROW EXECUTE FUNCTION callcontrol_ticket_notify();
