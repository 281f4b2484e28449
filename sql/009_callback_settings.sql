-- Callback settings per domain (issue 8), in callcontrol's own table, never in FusionPBX's.
-- A missing row, or a NULL column, means the environment's value (CALLBACK_EXPIRATION_HOURS,
-- CALLBACK_MAX_NOTIFICATIONS, CALLBACK_MIN_INTERVAL_MINUTES).
CREATE TABLE IF NOT EXISTS callcontrol_callback_settings (
    domain_uuid uuid PRIMARY KEY,
    expiration_hours integer CHECK (expiration_hours > 0),
    max_notifications integer CHECK (max_notifications > 0),
    min_interval_minutes integer CHECK (min_interval_minutes > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
