"""A transfer destination as the directory hands it out: validated, immutable."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import attrs

from callcontrol.destinations.hours import InvalidWorkingHours, WorkingHours


class DestinationType(enum.StrEnum):
    EXTENSION = "extension"
    RING_GROUP = "ring_group"
    QUEUE = "queue"
    EXTERNAL = "external"


class FallbackAction(enum.StrEnum):
    OFFER_CALLBACK = "offer_callback"
    VOICEMAIL = "voicemail"
    TRANSFER_DEFAULT = "transfer_default"
    HANGUP = "hangup"


class InvalidDestination(ValueError):
    """A v_voice_transfer_destinations row the directory refuses to offer."""


@attrs.frozen
class Destination:
    uuid: UUID
    domain_uuid: UUID
    name: str
    destination_type: DestinationType
    number: str
    secretary_uuid: UUID | None = None
    context: str | None = None
    gateway: str | None = None
    aliases: tuple[str, ...] = ()
    department: str | None = None
    role: str | None = None
    description: str | None = None
    ring_timeout_seconds: int = 30
    max_retries: int = 0
    retry_delay_seconds: int = 5
    fallback_action: FallbackAction = FallbackAction.OFFER_CALLBACK
    working_hours: WorkingHours | None = None
    priority: int = 100
    is_default: bool = False


def destination_from_row(row: Mapping[str, Any], default_timezone: str) -> Destination:
    """Build a Destination from a database row, or raise InvalidDestination saying why."""
    try:
        destination_type = DestinationType(row["destination_type"])
    except ValueError:
        raise InvalidDestination(f"unknown destination_type {row['destination_type']!r}") from None
    try:
        fallback = FallbackAction(row.get("fallback_action") or FallbackAction.OFFER_CALLBACK)
    except ValueError:
        raise InvalidDestination(f"unknown fallback_action {row['fallback_action']!r}") from None
    name = (row.get("name") or "").strip()
    number = (row.get("destination_number") or "").strip()
    if not name or not number:
        raise InvalidDestination("name and destination_number are required")
    try:
        hours = WorkingHours.parse(row.get("working_hours"), default_timezone)
    except InvalidWorkingHours as exc:
        raise InvalidDestination(f"working_hours: {exc}") from None
    return Destination(
        uuid=row["transfer_destination_uuid"],
        domain_uuid=row["domain_uuid"],
        secretary_uuid=row.get("secretary_uuid"),
        name=name,
        destination_type=destination_type,
        number=number,
        context=(row.get("destination_context") or "").strip() or None,
        gateway=(row.get("gateway") or "").strip() or None,
        aliases=_aliases(row.get("aliases")),
        department=row.get("department") or None,
        role=row.get("role") or None,
        description=row.get("description") or None,
        ring_timeout_seconds=_int(row, "ring_timeout_seconds", 30),
        max_retries=_int(row, "max_retries", 0),
        retry_delay_seconds=_int(row, "retry_delay_seconds", 5),
        fallback_action=fallback,
        working_hours=hours,
        priority=_int(row, "priority", 100),
        is_default=bool(row.get("is_default")),
    )


def _aliases(value: Any) -> tuple[str, ...]:
    # jsonb arrives decoded; a text column (hand-made tables) arrives as JSON text.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [part for part in value.split(",")]
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidDestination("aliases must be a JSON array of strings")
    return tuple(str(alias).strip() for alias in value if str(alias).strip())


def _int(row: Mapping[str, Any], key: str, default: int) -> int:
    value = row.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidDestination(f"{key} must be a whole number, not {value!r}") from None
