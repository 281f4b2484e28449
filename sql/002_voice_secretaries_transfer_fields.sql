-- Superseded by 004: the transfer settings per secretary live in callcontrol's own table
-- (callcontrol_secretaries). Releases up to 0.1 added transfer_enabled, transfer_default_timeout
-- and transfer_announce_enabled to v_voice_secretaries, a table of another app (absent from a
-- stock FusionPBX); this file no longer touches it. 004 copies what those columns held.
--
-- The version stays so numbering and installed databases are unchanged; the line below tells
-- `migrate` that a database which ran the earlier text is up to date with this one.
-- replaces checksum 71e99bdc75c109b8593c88f15edc2e041b14a46e8dc63ffe7d06fa300711d13e

SELECT 1;
