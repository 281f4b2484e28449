-- WhatsApp replies (issue 9): every message a customer sends to the webhook is a row here,
-- keyed by WhatsApp's own message id, written in the transaction that acts on it. Meta delivers
-- a webhook again until it gets a 200 (and sometimes twice anyway): the second delivery finds
-- the id taken and changes nothing.

CREATE TABLE IF NOT EXISTS callcontrol_whatsapp_inbound (
    message_id text PRIMARY KEY,           -- wamid.… of the customer's message
    sender text NOT NULL,                  -- the customer's number, digits (WhatsApp's wa_id)
    request_uuid uuid REFERENCES callcontrol_callback_requests (request_uuid) ON DELETE SET NULL,
    kind text NOT NULL,                    -- text, button, interactive, image, …
    body text,                             -- what they wrote or the button they pressed
    context_id text,                       -- the message of ours they replied to, if any
    -- call_now, later, cancel (a move was made), other (shown to the agent), refused (the
    -- ticket could not move that way: closed, or expiring first), unmatched (no ticket)
    outcome text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS callcontrol_whatsapp_inbound_request
    ON callcontrol_whatsapp_inbound (request_uuid, received_at);

-- The reply's fallback match: the newest ticket we wrote to at that number.
CREATE INDEX IF NOT EXISTS callcontrol_callback_requests_whatsapp_number
    ON callcontrol_callback_requests (phone_number, whatsapp_sent_at)
    WHERE whatsapp_sent_at IS NOT NULL;
