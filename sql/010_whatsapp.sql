-- WhatsApp (issue 9): the customer is sent the approved template through the outbox when the
-- agent is free, and answers it. Migration 005 already gave the tickets notify_via_whatsapp,
-- whatsapp_sent_at, whatsapp_response and whatsapp_response_at; this adds what matching a reply
-- needs and what the outbox must be able to say about a message that can never be delivered.

-- The id WhatsApp gave the last template sent for the ticket (wamid.…): a reply quotes it.
ALTER TABLE callcontrol_callback_requests
    ADD COLUMN IF NOT EXISTS whatsapp_message_id text;

-- The receiver's own id for what it accepted (WhatsApp: the wamid of every message sent, the
-- confirmations too), so a reply to any of them finds its ticket.
ALTER TABLE callcontrol_outbox
    ADD COLUMN IF NOT EXISTS external_id text;
CREATE INDEX IF NOT EXISTS callcontrol_outbox_external_id
    ON callcontrol_outbox (external_id) WHERE external_id IS NOT NULL;

-- failed: the receiver said it can never be delivered as written (a number that is not on
-- WhatsApp): not retried, kept with last_error; every other refusal is still retried.
ALTER TABLE callcontrol_outbox DROP CONSTRAINT IF EXISTS callcontrol_outbox_status_check;
ALTER TABLE callcontrol_outbox ADD CONSTRAINT callcontrol_outbox_status_check
    CHECK (status IN ('pending', 'sending', 'failing', 'delivered', 'failed'));
