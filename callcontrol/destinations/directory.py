"""The transfer directory: destinations per domain and secretary, cached for five minutes.

Loading happens once per (domain, secretary) per TTL; concurrent calls for the same key wait for
the one load in flight instead of each querying. The clock is trio's, so tests run the TTL on a
MockClock. ``invalidate`` drops entries at once (after an admin edits destinations). When the
database is unavailable and an expired entry exists, the stale entry is served: a caller who
asks for "suporte" during a database blip still reaches support.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs
import trio

from callcontrol.db import Database, DatabaseUnavailable
from callcontrol.destinations.availability import check_availability
from callcontrol.destinations.hours import Availability
from callcontrol.destinations.matching import (
    Ambiguous,
    Matched,
    MatchResult,
    default_destination,
    match,
)
from callcontrol.destinations.model import Destination, InvalidDestination, destination_from_row
from callcontrol.logs import get_logger

DEFAULT_TTL_SECONDS = 300.0

_log = get_logger("callcontrol.destinations")

_Key = tuple[UUID, UUID | None]

# A default destination named in callcontrol_secretaries (the secretary's row, else the
# domain's) replaces the is_default flags; without one, is_default decides.
_LOAD = """
WITH chosen AS (
    SELECT default_destination_uuid AS uuid FROM callcontrol_secretaries
    WHERE domain_uuid = %(domain)s AND default_destination_uuid IS NOT NULL
      AND (secretary_uuid IS NULL OR secretary_uuid = %(secretary)s::uuid)
    ORDER BY secretary_uuid NULLS LAST LIMIT 1
)
SELECT transfer_destination_uuid, domain_uuid, secretary_uuid, name, aliases, destination_type,
       destination_number, destination_context, gateway, ring_timeout_seconds, max_retries,
       retry_delay_seconds, fallback_action, department, role, description, working_hours,
       priority,
       CASE WHEN (SELECT uuid FROM chosen) IS NULL THEN is_default
            ELSE transfer_destination_uuid = (SELECT uuid FROM chosen) END AS is_default
FROM v_voice_transfer_destinations
WHERE domain_uuid = %(domain)s
  AND is_enabled::text = 'true'
  AND (secretary_uuid IS NULL OR secretary_uuid = %(secretary)s::uuid)
ORDER BY priority, name
"""


@attrs.frozen
class _Entry:
    destinations: tuple[Destination, ...]
    loaded_at: float


@attrs.define
class Directory:
    """Destinations of a secretary (plus the domain-wide ones, ``secretary_uuid IS NULL``)."""

    db: Database
    default_timezone: str = "America/Sao_Paulo"
    ttl: float = DEFAULT_TTL_SECONDS
    _cache: dict[_Key, _Entry] = attrs.field(factory=dict, init=False)
    _locks: dict[_Key, trio.Lock] = attrs.field(factory=dict, init=False)

    async def destinations(
        self, domain_uuid: UUID, secretary_uuid: UUID | None = None
    ) -> tuple[Destination, ...]:
        key = (domain_uuid, secretary_uuid)
        entry = self._fresh(key)
        if entry is not None:
            return entry.destinations
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            entry = self._fresh(key)  # loaded by whoever held the lock before us
            if entry is None:
                entry = await self._load(key)
        return entry.destinations

    async def find(self, domain_uuid: UUID, secretary_uuid: UUID | None, said: str) -> MatchResult:
        """Resolve what the caller asked for (see :mod:`callcontrol.destinations.matching`)."""
        result = match(said, await self.destinations(domain_uuid, secretary_uuid))
        _log.info(
            "destinations.match",
            domain_uuid=str(domain_uuid),
            said=said,
            result=type(result).__name__,
            kind=getattr(result, "kind", None),
            destination=result.destination.name if isinstance(result, Matched) else None,
            candidates=[c.name for c in result.candidates]
            if isinstance(result, Ambiguous)
            else None,
        )
        return result

    async def default(
        self, domain_uuid: UUID, secretary_uuid: UUID | None = None
    ) -> Destination | None:
        return default_destination(await self.destinations(domain_uuid, secretary_uuid))

    async def get(
        self, domain_uuid: UUID, secretary_uuid: UUID | None, destination_uuid: UUID
    ) -> Destination | None:
        for destination in await self.destinations(domain_uuid, secretary_uuid):
            if destination.uuid == destination_uuid:
                return destination
        return None

    def invalidate(self, domain_uuid: UUID | None = None) -> None:
        """Forget cached destinations of one domain (all domains when None)."""
        for key in list(self._cache):
            if domain_uuid is None or key[0] == domain_uuid:
                del self._cache[key]
        _log.info("destinations.invalidated", domain_uuid=str(domain_uuid) if domain_uuid else None)

    def _fresh(self, key: _Key) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is not None and trio.current_time() - entry.loaded_at < self.ttl:
            return entry
        return None

    async def _load(self, key: _Key) -> _Entry:
        domain_uuid, secretary_uuid = key
        try:
            rows = await self.db.fetch_all(
                _LOAD, {"domain": domain_uuid, "secretary": secretary_uuid}
            )
        except DatabaseUnavailable:
            stale = self._cache.get(key)
            if stale is None:
                raise
            _log.warning("destinations.serving_stale", domain_uuid=str(domain_uuid))
            return stale
        destinations = []
        for row in rows:
            try:
                destinations.append(destination_from_row(row, self.default_timezone))
            except InvalidDestination as exc:
                _log.error(
                    "destinations.row_refused",
                    transfer_destination_uuid=str(row["transfer_destination_uuid"]),
                    name=row["name"],
                    reason=str(exc),
                )
        entry = _Entry(tuple(destinations), trio.current_time())
        self._cache[key] = entry
        _log.info("destinations.loaded", domain_uuid=str(domain_uuid), count=len(destinations))
        return entry


def availability(
    destination: Destination, now: datetime | None = None, language: str = "pt-BR"
) -> Availability:
    """Is ``destination`` open at ``now``? ``(False, message, next_opening)`` when closed."""
    return check_availability(destination.name, destination.working_hours, now, language)
