-- The transfer directory: who the AI secretary can hand a call to, per domain and secretary.
--
-- Idempotent: every statement may run again on a database that already has it, including a
-- database whose table was created by an earlier voice-secretary release (missing columns are
-- added). The name is FusionPBX-facing (v_ prefix) because FusionPBX's admin pages read it.
-- No foreign keys: FusionPBX creates none either, and v_voice_secretaries may be absent.
--
-- Releases up to 0.1 also seeded "Atendimento → ring group 9000" and "Suporte → queue 5001" here
-- without checking the domain had them; migrate now adds no destination (see 004 and
-- `callcontrol destinations import`). A database that ran the earlier text is up to date:
-- replaces checksum d265feaba7857a2f04c4ef1ed1cc5025a7876ecf369afa5c16fcc5047c3e82fb

CREATE TABLE IF NOT EXISTS v_voice_transfer_destinations (
    transfer_destination_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_uuid uuid NOT NULL,
    secretary_uuid uuid,
    name text NOT NULL,
    aliases jsonb NOT NULL DEFAULT '[]'::jsonb,
    destination_type text NOT NULL DEFAULT 'extension',
    destination_number text NOT NULL,
    destination_context text,
    ring_timeout_seconds integer NOT NULL DEFAULT 30,
    max_retries integer NOT NULL DEFAULT 0,
    retry_delay_seconds integer NOT NULL DEFAULT 5,
    fallback_action text NOT NULL DEFAULT 'offer_callback',
    department text,
    role text,
    description text,
    working_hours jsonb,
    priority integer NOT NULL DEFAULT 100,
    is_default boolean NOT NULL DEFAULT false,
    is_enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT v_voice_transfer_destinations_type_check
        CHECK (destination_type IN ('extension', 'ring_group', 'queue', 'external')),
    CONSTRAINT v_voice_transfer_destinations_fallback_check
        CHECK (fallback_action IN ('offer_callback', 'voicemail', 'transfer_default', 'hangup')),
    CONSTRAINT v_voice_transfer_destinations_timing_check
        CHECK (ring_timeout_seconds BETWEEN 1 AND 600
               AND max_retries BETWEEN 0 AND 10
               AND retry_delay_seconds BETWEEN 0 AND 3600)
);

-- Columns an earlier release's table may lack; the CHECKs above only guard tables we created.
ALTER TABLE v_voice_transfer_destinations
    ADD COLUMN IF NOT EXISTS secretary_uuid uuid,
    ADD COLUMN IF NOT EXISTS aliases jsonb DEFAULT '[]'::jsonb,
    ADD COLUMN IF NOT EXISTS destination_context text,
    ADD COLUMN IF NOT EXISTS ring_timeout_seconds integer DEFAULT 30,
    ADD COLUMN IF NOT EXISTS max_retries integer DEFAULT 0,
    ADD COLUMN IF NOT EXISTS retry_delay_seconds integer DEFAULT 5,
    ADD COLUMN IF NOT EXISTS fallback_action text DEFAULT 'offer_callback',
    ADD COLUMN IF NOT EXISTS department text,
    ADD COLUMN IF NOT EXISTS role text,
    ADD COLUMN IF NOT EXISTS description text,
    ADD COLUMN IF NOT EXISTS working_hours jsonb,
    ADD COLUMN IF NOT EXISTS priority integer DEFAULT 100,
    ADD COLUMN IF NOT EXISTS is_default boolean DEFAULT false,
    ADD COLUMN IF NOT EXISTS is_enabled boolean DEFAULT true,
    ADD COLUMN IF NOT EXISTS created_at timestamptz DEFAULT now(),
    ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT now(),
    -- A named sofia gateway for an external number; NULL dials through the domain's outbound
    -- routes (loopback into the domain's context).
    ADD COLUMN IF NOT EXISTS gateway text;

COMMENT ON TABLE v_voice_transfer_destinations IS
    'callcontrol: people, ring groups, queues and external numbers the AI secretary transfers to';
COMMENT ON COLUMN v_voice_transfer_destinations.secretary_uuid IS
    'NULL: offered by every secretary of the domain';
COMMENT ON COLUMN v_voice_transfer_destinations.aliases IS
    'JSON array of words callers use for this destination, e.g. ["financeiro", "boleto"]';
COMMENT ON COLUMN v_voice_transfer_destinations.destination_context IS
    'dialplan context for ring_group/queue/external; NULL: the domain name (FusionPBX)';
COMMENT ON COLUMN v_voice_transfer_destinations.working_hours IS
    'NULL: always open. {"timezone": "America/Sao_Paulo", "schedule": {"mon": ["08:00-12:00", '
    '"13:00-18:00"], ...}, "holidays": ["2025-12-25", "01-01"]}';
COMMENT ON COLUMN v_voice_transfer_destinations.priority IS
    'lower wins: breaks ties between matches and between several defaults';

CREATE INDEX IF NOT EXISTS v_voice_transfer_destinations_domain_idx
    ON v_voice_transfer_destinations (domain_uuid);
CREATE INDEX IF NOT EXISTS v_voice_transfer_destinations_secretary_idx
    ON v_voice_transfer_destinations (secretary_uuid);
CREATE INDEX IF NOT EXISTS v_voice_transfer_destinations_enabled_idx
    ON v_voice_transfer_destinations (is_enabled);

CREATE OR REPLACE FUNCTION callcontrol_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS callcontrol_touch_updated_at ON v_voice_transfer_destinations;
CREATE TRIGGER callcontrol_touch_updated_at
    BEFORE UPDATE ON v_voice_transfer_destinations
    FOR EACH ROW EXECUTE FUNCTION callcontrol_touch_updated_at();
