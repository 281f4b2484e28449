-- Failed sign-ins, shared by every process and instance that serves the API: counted in memory,
-- each of `serve --workers N` (or each instance behind a load balancer) would give a guesser
-- its own five tries. One row per try counted against a key (an account, or a client address);
-- a try is written before its password is checked, so concurrent guesses cannot all pass one
-- check, and taken back when the password was right. Rows older than the window are deleted
-- by the sign-ins themselves (callcontrol.api.ratelimit), so the table stays small.

CREATE TABLE IF NOT EXISTS callcontrol_sign_in_failures (
    failure_id bigserial PRIMARY KEY,
    -- account: a FusionPBX user_uuid, or username|domain when no user matched;
    -- address: the client's IP (behind a proxy, the proxy's)
    kind text NOT NULL CHECK (kind IN ('account', 'address')),
    key text NOT NULL,
    failed_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS callcontrol_sign_in_failures_key
    ON callcontrol_sign_in_failures (kind, key, failed_at);
CREATE INDEX IF NOT EXISTS callcontrol_sign_in_failures_age
    ON callcontrol_sign_in_failures (failed_at);
