"""What the domain itself holds, read from FusionPBX's own tables.

callcontrol rings ``user/<ext>@<domain>`` for an extension. That goes through FusionPBX's
directory (so DND becomes ``error/user_busy``) but NOT through the domain's dialplan, where
FusionPBX applies forward-all (515_call-forward-all), follow-me, forward on busy / no answer
(895) and voicemail (local_extension). So callcontrol decides, from the same columns
(docs/destinations.md, "Extensions and FusionPBX's forwarding"):

* ``enabled`` false: never rung;
* DND: reported as DND, not rung (:mod:`callcontrol.destinations.dnd`);
* forward-all on, with a destination: that destination is rung instead, once (an extension of
  the domain directly, anything else through the domain's dialplan, as FusionPBX would);
* follow-me, forward on busy / no answer / not registered: not applied; the destination's
  ``fallback_action`` is what happens when the desk phone does not answer.

Every flag is ``boolean`` from FusionPBX 5.5 and ``text`` before: read as ``::text``.
A NULL ``enabled`` (rows written by an old import) counts as enabled, as FusionPBX's own pages
show it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal
from uuid import UUID

import attrs

from callcontrol.db import Database
from callcontrol.destinations.dnd import dnd_sql
from callcontrol.destinations.model import Destination, DestinationType, FallbackAction


def _extension_sql(domain: str, number: str) -> str:
    """One extension's row (by number, else number alias), the key given as SQL text."""
    return f"""
SELECT e.enabled::text IS DISTINCT FROM 'false' AS enabled,
       {dnd_sql("e")} AS dnd,
       CASE WHEN e.forward_all_enabled::text = 'true'
            THEN nullif(trim(e.forward_all_destination), '') END AS forward_all,
       (e.follow_me_enabled::text = 'true' OR EXISTS (
            SELECT 1 FROM v_follow_me AS f
            WHERE f.follow_me_uuid = e.follow_me_uuid AND f.follow_me_enabled::text = 'true'
       )) AS follow_me
FROM v_extensions AS e
WHERE e.domain_uuid = {domain} AND (e.extension = {number} OR e.number_alias = {number})
ORDER BY (e.extension = {number}) DESC
LIMIT 1
"""  # noqa: S608 - fixed text: dnd_sql and the two key expressions below


_EXTENSION = _extension_sql("%(domain)s", "%(number)s")
# Several extensions in one query: the same row for each (domain, number) pair.
_EXTENSIONS = f"""
SELECT k.domain_uuid, k.number, s.*
FROM unnest(%(domains)s::uuid[], %(numbers)s::text[]) AS k(domain_uuid, number)
CROSS JOIN LATERAL ({_extension_sql("k.domain_uuid", "k.number")}) AS s
"""  # noqa: S608 - fixed text

_MAILBOX = """
SELECT voicemail_enabled::text = 'true' AS enabled FROM v_voicemails
WHERE domain_uuid = %(domain)s AND voicemail_id = %(number)s
LIMIT 1
"""

# The numbers a destination of each type may name, as FusionPBX stores them.
_EXISTS = {
    DestinationType.EXTENSION: """
        SELECT 1 FROM v_extensions WHERE domain_uuid = %(domain)s
          AND (extension = %(number)s OR number_alias = %(number)s)
          AND enabled::text IS DISTINCT FROM 'false'""",
    DestinationType.RING_GROUP: """
        SELECT 1 FROM v_ring_groups WHERE domain_uuid = %(domain)s
          AND ring_group_extension = %(number)s
          AND ring_group_enabled::text IS DISTINCT FROM 'false'""",
    DestinationType.QUEUE: """
        SELECT 1 FROM v_call_center_queues WHERE domain_uuid = %(domain)s
          AND queue_extension = %(number)s""",
}

# Whether the domain has the number at all, and whether FusionPBX has it enabled (queues have
# no enabled flag). One row, or none when the domain has no such number.
_STATE = {
    DestinationType.EXTENSION: """
        SELECT enabled::text IS DISTINCT FROM 'false' AS enabled FROM v_extensions
        WHERE domain_uuid = %(domain)s AND (extension = %(number)s OR number_alias = %(number)s)
        ORDER BY (extension = %(number)s) DESC, (enabled::text IS DISTINCT FROM 'false') DESC
        LIMIT 1""",
    DestinationType.RING_GROUP: """
        SELECT ring_group_enabled::text IS DISTINCT FROM 'false' AS enabled FROM v_ring_groups
        WHERE domain_uuid = %(domain)s AND ring_group_extension = %(number)s
        ORDER BY 1 DESC LIMIT 1""",
    DestinationType.QUEUE: """
        SELECT true AS enabled FROM v_call_center_queues
        WHERE domain_uuid = %(domain)s AND queue_extension = %(number)s LIMIT 1""",
}

# The same queries, for callers holding a plain psycopg connection (callcontrol doctor).
NUMBER_STATE_SQL = _STATE

# What `destinations import` proposes: the domain's enabled ring groups, queues and
# extensions, people-facing names first (ring groups are where calls usually go).
_PROPOSALS = """
SELECT kind, number, name, description FROM (
SELECT 'ring_group' AS kind, ring_group_extension AS number,
       coalesce(nullif(ring_group_name, ''), 'Grupo ' || ring_group_extension) AS name,
       nullif(ring_group_description, '') AS description, 1 AS rank
FROM v_ring_groups
WHERE domain_uuid = %(domain)s AND nullif(ring_group_extension, '') IS NOT NULL
  AND ring_group_enabled::text IS DISTINCT FROM 'false'
UNION ALL
SELECT 'queue', queue_extension,
       coalesce(nullif(queue_name, ''), 'Fila ' || queue_extension),
       nullif(queue_description, ''), 2
FROM v_call_center_queues
WHERE domain_uuid = %(domain)s AND nullif(queue_extension, '') IS NOT NULL
UNION ALL
SELECT 'extension', extension,
       coalesce(nullif(trim(effective_caller_id_name), ''),
                nullif(trim(concat_ws(' ', directory_first_name, directory_last_name)), ''),
                nullif(description, ''), 'Ramal ' || extension),
       nullif(description, ''), 3
FROM v_extensions
WHERE domain_uuid = %(domain)s AND nullif(extension, '') IS NOT NULL
  AND enabled::text IS DISTINCT FROM 'false'
) AS found
ORDER BY rank, length(number), number
"""


@attrs.frozen
class ExtensionState:
    exists: bool
    enabled: bool = True
    dnd: bool = False
    forward_all: str | None = None
    follow_me: bool = False


@attrs.frozen
class Proposal:
    """A destination the domain already has, as ``destinations import`` offers it."""

    destination_type: DestinationType
    number: str
    name: str
    description: str | None = None


async def extension_state(db: Database, domain_uuid: UUID, number: str) -> ExtensionState:
    row = await db.fetch_one(_EXTENSION, {"domain": domain_uuid, "number": number})
    if row is None:
        return ExtensionState(exists=False)
    return ExtensionState(True, bool(row["enabled"]), bool(row["dnd"]), row["forward_all"],
                          bool(row["follow_me"]))  # fmt: skip


async def extension_states(
    db: Database, keys: Collection[tuple[UUID, str]]
) -> dict[tuple[UUID, str], ExtensionState]:
    """``extension_state`` of each (domain, number) in ``keys``, in one round trip."""
    ordered = list(keys)
    rows = await db.fetch_all(_EXTENSIONS, {"domains": [d for d, _ in ordered],
                                            "numbers": [n for _, n in ordered]})  # fmt: skip
    states = dict.fromkeys(ordered, ExtensionState(exists=False))
    for row in rows:
        states[(row["domain_uuid"], row["number"])] = ExtensionState(
            True, bool(row["enabled"]), bool(row["dnd"]), row["forward_all"],
            bool(row["follow_me"]))  # fmt: skip
    return states


async def mailbox_enabled(db: Database, domain_uuid: UUID, number: str) -> bool:
    """Whether ``*99<number>`` would reach a voicemail box: it exists and is enabled."""
    row = await db.fetch_one(_MAILBOX, {"domain": domain_uuid, "number": number})
    return bool(row and row["enabled"])


async def number_exists(
    db: Database, domain_uuid: UUID, destination_type: DestinationType, number: str
) -> bool:
    """Whether the domain has an (enabled) extension, ring group or queue ``number``. External
    numbers are not the domain's: always True."""
    query = _EXISTS.get(destination_type)
    if query is None:
        return True
    return await db.fetch_one(query, {"domain": domain_uuid, "number": number}) is not None


async def number_state(
    db: Database, domain_uuid: UUID, destination_type: DestinationType, number: str
) -> Literal["missing", "disabled", "enabled"]:
    """What FusionPBX says about the domain's extension, ring group or queue ``number``: it
    has none, has it disabled, or has it enabled. External numbers are always "enabled"."""
    query = _STATE.get(destination_type)
    if query is None:
        return "enabled"
    row = await db.fetch_one(query, {"domain": domain_uuid, "number": number})
    if row is None:
        return "missing"
    return "enabled" if row["enabled"] else "disabled"


async def proposals(db: Database, domain_uuid: UUID) -> list[Proposal]:
    rows = await db.fetch_all(_PROPOSALS, {"domain": domain_uuid})
    return [Proposal(DestinationType(r["kind"]), r["number"], r["name"], r["description"])
            for r in rows]  # fmt: skip


async def domain_fallback(db: Database, domain_uuid: UUID) -> Destination | None:
    """Whom to ring when the domain has no destination configured at all: its first enabled
    ring group (lowest number), else its first enabled extension not in DND. None when the
    domain has neither."""
    for found in await proposals(db, domain_uuid):
        if found.destination_type is DestinationType.QUEUE:
            continue
        if found.destination_type is DestinationType.EXTENSION:
            state = await extension_state(db, domain_uuid, found.number)
            if state.dnd:
                continue
        return Destination(
            uuid=UUID(int=0), domain_uuid=domain_uuid, name=found.name,
            destination_type=found.destination_type, number=found.number,
            fallback_action=FallbackAction.OFFER_CALLBACK, is_default=True,
        )  # fmt: skip
    return None


async def domain_uuid_of(db: Database, domain_name: str) -> UUID | None:
    value = await db.fetch_value(
        "SELECT domain_uuid FROM v_domains WHERE lower(domain_name) = lower(%s)", (domain_name,)
    )
    return value if isinstance(value, UUID) else None
