-- The tickets' NOTIFYs (012) once per statement instead of once per row: a scan that notifies
-- thousands of tickets in one UPDATE sent as many NOTIFYs, each from a plpgsql call of its own,
-- and the scan took measurably longer. Now each statement's changes (its transition tables)
-- go out as few payloads as fit NOTIFY's 8000 bytes: {"schema": ..., "changes": [...]}, each
-- change the object 012 sent alone, in the statement's order.

DROP TRIGGER IF EXISTS callcontrol_ticket_notify ON callcontrol_callback_requests;
DROP FUNCTION IF EXISTS callcontrol_ticket_notify();

-- One change as the payload says it.
CREATE OR REPLACE FUNCTION callcontrol_ticket_change(
    n callcontrol_callback_requests, previous_status text, change text
) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', n.request_uuid,
        'change', change,
        'status', n.status,
        'previous_status', previous_status,
        'kind', n.kind,
        'domain_uuid', n.domain_uuid,
        -- the ticket's agent as tickets.AGENT_COLUMNS reads it: its own extension, else its
        -- destination's when that is an extension
        'extension', coalesce(n.extension, (
            SELECT t.destination_number FROM v_voice_transfer_destinations t
             WHERE t.transfer_destination_uuid = n.destination_uuid
               AND t.destination_type = 'extension')),
        'notification_count', n.notification_count,
        'scheduled_at', n.scheduled_at,
        'caller_number', left(n.phone_number, 40),
        'caller_name', left(n.caller_name, 100),
        'reason', left(n.reason, 200),
        'at', now())::text
$$;

-- The changes of one statement, in payloads under 8000 bytes: a new payload starts every 6000
-- bytes, and one change is at most ~1.5 kB (its texts are cut above).
CREATE OR REPLACE FUNCTION callcontrol_ticket_announce(schema_name text, changes text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    FOR payload IN
        SELECT '{"schema":' || to_json(schema_name)::text || ',"changes":['
               || string_agg(c, ',' ORDER BY i) || ']}'
          FROM (SELECT c, i, sum(octet_length(c)) OVER (ORDER BY i) - octet_length(c) AS before
                  FROM unnest(changes) WITH ORDINALITY AS u(c, i)) sized
         GROUP BY before / 6000
         ORDER BY before / 6000
    LOOP
        PERFORM pg_notify('callcontrol_tickets', payload);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION callcontrol_ticket_notify_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM callcontrol_ticket_announce(TG_TABLE_SCHEMA, ARRAY(
        SELECT callcontrol_ticket_change(n, NULL, 'created') FROM new_rows n));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION callcontrol_ticket_notify_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM callcontrol_ticket_announce(TG_TABLE_SCHEMA, ARRAY(
        SELECT callcontrol_ticket_change(n, o.status, CASE
                   WHEN n.status IS DISTINCT FROM o.status THEN 'status'
                   WHEN n.notification_count IS DISTINCT FROM o.notification_count
                       THEN 'notified'
                   ELSE 'rescheduled' END)
          FROM new_rows n JOIN old_rows o ON o.request_uuid = n.request_uuid
         WHERE n.status IS DISTINCT FROM o.status
            OR n.notification_count IS DISTINCT FROM o.notification_count
            OR n.scheduled_at IS DISTINCT FROM o.scheduled_at));
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS callcontrol_ticket_notify_insert ON callcontrol_callback_requests;
CREATE TRIGGER callcontrol_ticket_notify_insert
    AFTER INSERT ON callcontrol_callback_requests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION callcontrol_ticket_notify_insert();

DROP TRIGGER IF EXISTS callcontrol_ticket_notify_update ON callcontrol_callback_requests;
CREATE TRIGGER callcontrol_ticket_notify_update
    AFTER UPDATE ON callcontrol_callback_requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION callcontrol_ticket_notify_update();
