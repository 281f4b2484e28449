-- Whether the caller's words (preferred_time) named a time: false means they were kept and the
-- callback scheduled as soon as possible (scheduled_at, from 005). NULL for rows written before
-- this file, and for messages.

ALTER TABLE callcontrol_callback_requests ADD COLUMN IF NOT EXISTS time_understood boolean;
