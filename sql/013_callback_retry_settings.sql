-- Click-to-call's retries per domain (issue 8): how many more attempts after the first, and
-- how long to wait between two. NULL, or no row, means the environment's value
-- (CALLBACK_RETRY_ATTEMPTS, CALLBACK_RETRY_DELAY_SECONDS). A ticket keeps the number of
-- attempts it was allowed when it was taken (max_attempts, migration 005).
ALTER TABLE callcontrol_callback_settings
    ADD COLUMN IF NOT EXISTS retry_attempts integer CHECK (retry_attempts BETWEEN 0 AND 20),
    ADD COLUMN IF NOT EXISTS retry_delay_seconds integer
        CHECK (retry_delay_seconds BETWEEN 1 AND 86400);
