-- callcontrol's own secretary settings: what the AI secretary says and does, per domain and,
-- optionally, per secretary. A stock FusionPBX has no voice-secretary table (v_voice_secretaries
-- belongs to a separately installed app), so these settings live here, in callcontrol's table.
--
-- secretary_uuid NULL is "the domain's secretary": it answers every call of the domain whose
-- dialplan names no secretary, names the nil UUID, or names one nobody configured. A row with a
-- secretary_uuid serves calls whose dialplan sets that voice_secretary_uuid (and may be the
-- other app's secretary, whose company name and prompt are read when that app is installed).
-- Every setting may be NULL: NULL means "the domain row's value, else the server's default".

CREATE TABLE IF NOT EXISTS callcontrol_secretaries (
    secretary_settings_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_uuid uuid NOT NULL,
    secretary_uuid uuid,
    company_name text,
    instructions text,
    voice text,
    greeting text,
    default_destination_uuid uuid,
    transfer_enabled boolean,
    transfer_default_timeout integer,
    transfer_announce_enabled boolean,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT callcontrol_secretaries_timeout_check
        CHECK (transfer_default_timeout IS NULL OR transfer_default_timeout BETWEEN 1 AND 600),
    CONSTRAINT callcontrol_secretaries_not_nil
        CHECK (secretary_uuid IS DISTINCT FROM '00000000-0000-0000-0000-000000000000'::uuid)
);

-- One row per (domain, secretary), the domain's own row included.
CREATE UNIQUE INDEX IF NOT EXISTS callcontrol_secretaries_one_per_secretary
    ON callcontrol_secretaries
    (domain_uuid, COALESCE(secretary_uuid, '00000000-0000-0000-0000-000000000000'::uuid));

COMMENT ON TABLE callcontrol_secretaries IS
    'callcontrol: the AI secretary''s settings per domain (secretary_uuid NULL) and per secretary';
COMMENT ON COLUMN callcontrol_secretaries.secretary_uuid IS
    'NULL: the domain''s secretary (calls naming no secretary, the nil UUID or an unknown one)';
COMMENT ON COLUMN callcontrol_secretaries.default_destination_uuid IS
    'v_voice_transfer_destinations row used when a caller asks for nobody in particular; '
    'NULL: the destination marked is_default';

DROP TRIGGER IF EXISTS callcontrol_touch_updated_at ON callcontrol_secretaries;
CREATE TRIGGER callcontrol_touch_updated_at
    BEFORE UPDATE ON callcontrol_secretaries
    FOR EACH ROW EXECUTE FUNCTION callcontrol_touch_updated_at();

-- Releases up to 0.1 added transfer_* columns to the other app's v_voice_secretaries (002) and
-- seeded destinations for its secretaries (001). Keep what an admin set there, here. The columns
-- themselves are left in place (callcontrol no longer reads them): they are in another app's
-- table, and dropping columns there is that app's admin's call.
DO $$
BEGIN
    IF to_regclass('v_voice_secretaries') IS NOT NULL AND EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'v_voice_secretaries'
          AND column_name = 'transfer_default_timeout'
    ) THEN
        EXECUTE $copy$
            INSERT INTO callcontrol_secretaries
                (domain_uuid, secretary_uuid, transfer_enabled, transfer_default_timeout,
                 transfer_announce_enabled)
            SELECT s.domain_uuid, s.voice_secretary_uuid, s.transfer_enabled,
                   CASE WHEN s.transfer_default_timeout BETWEEN 1 AND 600
                        THEN s.transfer_default_timeout END,
                   s.transfer_announce_enabled
            FROM v_voice_secretaries AS s
            WHERE s.domain_uuid IS NOT NULL
              AND s.voice_secretary_uuid <> '00000000-0000-0000-0000-000000000000'::uuid
            ON CONFLICT DO NOTHING
        $copy$;
    END IF;
END
$$;

-- Seeding is gone: migrate adds no destination the domain does not have
-- (`callcontrol destinations import` proposes them from the domain's own ring groups, queues and
-- extensions). Rows an earlier release seeded stay: the admin may be using them.
DROP FUNCTION IF EXISTS callcontrol_seed_transfer_destinations();
