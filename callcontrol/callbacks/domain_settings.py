"""Callback settings per domain: a domain's own value, else the environment's.

Kept in ``callcontrol_callback_settings`` (migration 009), one row per domain; a missing row or
a NULL column is the environment default, so an admin only stores what differs.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import attrs

from callcontrol.config import Settings
from callcontrol.db.database import Database, DatabaseUnavailable
from callcontrol.logs import get_logger

# The environment variable's name -> (the Settings field, the table's column)
KEYS: dict[str, tuple[str, str]] = {
    "CALLBACK_EXPIRATION_HOURS": ("callback_expiration_hours", "expiration_hours"),
    "CALLBACK_MAX_NOTIFICATIONS": ("callback_max_notifications", "max_notifications"),
    "CALLBACK_MIN_INTERVAL_MINUTES": ("callback_min_interval_minutes", "min_interval_minutes"),
    "CALLBACK_RETRY_ATTEMPTS": ("callback_retry_attempts", "retry_attempts"),
    "CALLBACK_RETRY_DELAY_SECONDS": ("callback_retry_delay_seconds", "retry_delay_seconds"),
}
# The bounds a domain's value must keep (the table's CHECKs, and the environment's own)
BOUNDS: dict[str, tuple[int, int]] = {
    "CALLBACK_RETRY_ATTEMPTS": (0, 20),
    "CALLBACK_RETRY_DELAY_SECONDS": (1, 86_400),
}

_log = get_logger("callcontrol.callbacks.domain_settings")

_READ = """
SELECT expiration_hours, max_notifications, min_interval_minutes, retry_attempts,
       retry_delay_seconds
  FROM callcontrol_callback_settings WHERE domain_uuid = %s
"""


async def stored(db: Database, domain_uuid: str) -> dict[str, int | None]:
    """The domain's own values by key (None: the environment's)."""
    row = await db.fetch_one(_READ, (domain_uuid,))
    return {key: (row or {}).get(column) for key, (_field, column) in KEYS.items()}


async def for_domain(
    db: Database, settings: Settings, domain_uuid: str | UUID | None
) -> Settings:
    """``settings`` with the domain's own callback values; the environment's when the domain
    has none or the database cannot say (a callback is still taken, with the defaults)."""
    if not domain_uuid:
        return settings
    try:
        own = await stored(db, str(domain_uuid))
    except DatabaseUnavailable as exc:
        _log.warning("callbacks.domain_settings_unread", domain_uuid=str(domain_uuid),
                     error=str(exc), effect="the environment's values apply")  # fmt: skip
        return settings
    changes: dict[str, Any] = {KEYS[k][0]: v for k, v in own.items() if v is not None}
    return attrs.evolve(settings, **changes) if changes else settings


def parse_assignment(text: str) -> tuple[str, int | None]:
    """``KEY=VALUE`` (VALUE a positive integer, or empty / ``default`` for the environment's);
    ``ValueError`` with the reason for anything else."""
    key, eq, value = text.partition("=")
    key = key.strip().upper()
    if not eq or key not in KEYS:
        raise ValueError(f"{text!r}: expected KEY=VALUE with KEY one of {', '.join(KEYS)}")
    value = value.strip()
    if value.lower() in ("", "default"):
        return key, None
    low, high = BOUNDS.get(key, (1, 1_000_000))
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"{key}: {value!r} is not a whole number from {low} to {high}")
    return key, int(value)


async def store(db: Database, domain_uuid: str, key: str, value: int | None) -> None:
    column = KEYS[key][1]  # from KEYS only: never text from the command line
    await db.execute(
        f"INSERT INTO callcontrol_callback_settings (domain_uuid, {column}) VALUES (%s, %s)"  # noqa: S608
        f" ON CONFLICT (domain_uuid) DO UPDATE SET {column} = EXCLUDED.{column},"
        " updated_at = now()",
        (domain_uuid, value),
    )
    _log.info("callbacks.domain_setting_set", domain_uuid=domain_uuid, key=key, value=value,
              reason="set by an admin (None: the environment's value)")  # fmt: skip
