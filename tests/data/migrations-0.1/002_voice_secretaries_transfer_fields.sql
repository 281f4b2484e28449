-- Transfer settings per secretary. v_voice_secretaries belongs to the FusionPBX voice-secretary
-- app, so it is only extended where it exists; a NULL means "use the server's TRANSFER_* default".

DO $$
BEGIN
    IF to_regclass('v_voice_secretaries') IS NOT NULL THEN
        ALTER TABLE v_voice_secretaries
            ADD COLUMN IF NOT EXISTS transfer_enabled boolean DEFAULT true,
            ADD COLUMN IF NOT EXISTS transfer_default_timeout integer DEFAULT 30,
            ADD COLUMN IF NOT EXISTS transfer_announce_enabled boolean DEFAULT true;
    END IF;
END
$$;
