"""``callcontrol destinations list | add | import``: the domain's transfer destinations without SQL.

* ``list --domain NAME``: one line per destination of the domain.
* ``add --domain NAME --name N --type T --number X [...]``: one destination, refused (one line
  on stderr, exit status 1) unless the domain's FusionPBX tables hold that extension, ring group
  or queue, enabled.
* ``import --domain NAME [--yes]``: proposes the domain's enabled ring groups, call-center
  queues and extensions that are not destinations yet, and writes them with ``--yes`` (or a
  "y" at the prompt when stdin is a terminal). When the domain has no default destination, the
  first ring group (else the first extension) becomes the default. Running it again adds
  nothing.

The domain is named as in FusionPBX (``v_domains.domain_name``, case ignored). Rows are
written domain-wide (``secretary_uuid`` NULL: every secretary of the domain offers them).
Running servers see a change within their cache time (5 minutes).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import attrs
import trio

from callcontrol.config import load_settings
from callcontrol.db import Database, DatabaseUnavailable, PoolOptions, open_database
from callcontrol.db.database import Connection
from callcontrol.destinations.directory import DEFAULT_TTL_SECONDS
from callcontrol.destinations.fusionpbx import (
    Proposal,
    domain_uuid_of,
    mailbox_enabled,
    number_state,
    proposals,
)
from callcontrol.destinations.matching import normalize
from callcontrol.destinations.model import DestinationType, FallbackAction
from callcontrol.logs import configure_logging

_SAFE_NUMBER = re.compile(r"^[0-9A-Za-z*#+_.-]+$")  # what the dial strings accept

_SAID = {
    DestinationType.EXTENSION: "extension",
    DestinationType.RING_GROUP: "ring group",
    DestinationType.QUEUE: "queue",
    DestinationType.EXTERNAL: "external number",
}
_TABLE = {
    DestinationType.EXTENSION: ("v_extensions", "extension", "Accounts > Extensions"),
    DestinationType.RING_GROUP: ("v_ring_groups", "ring_group_extension",
                                 "Applications > Ring Groups"),
    DestinationType.QUEUE: ("v_call_center_queues", "queue_extension",
                            "Applications > Call Center"),
}  # fmt: skip


def _said(kind: str) -> str:
    try:
        return _SAID[DestinationType(kind)]
    except ValueError:
        return kind


class AdminError(Exception):
    """What the admin must change, in one line (printed after the command's name)."""


def run_destinations(args: argparse.Namespace) -> int:
    settings = load_settings()
    # What the command prints is its output; the pool's log lines would only repeat it.
    configure_logging(settings.log_format, level=logging.CRITICAL)
    prog = f"callcontrol destinations {args.destinations_command}"
    try:
        return trio.run(_run, settings.database_url, args)
    except AdminError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"{prog}: {exc.for_the_admin()}", file=sys.stderr)
        return 1


async def _run(url: str | None, args: argparse.Namespace) -> int:
    async with open_database(url, PoolOptions(min_size=1, max_size=2)) as db:
        domain = await find_domain(db, args.domain)
        command = args.destinations_command
        if command == "list":
            return await list_destinations(db, domain)
        if command == "add":
            return await add_destination(db, domain, args)
        return await import_destinations(db, domain, yes=args.yes)


@attrs.frozen
class Domain:
    uuid: UUID
    name: str


async def find_domain(db: Database, name: str) -> Domain:
    """The FusionPBX domain an admin named, or an AdminError that says what to fix."""
    tables = await db.fetch_one(
        "SELECT to_regclass('v_domains') IS NOT NULL AS pbx,"
        " to_regclass('v_voice_transfer_destinations') IS NOT NULL AS ours"
    )
    assert tables is not None
    if not tables["pbx"]:
        raise AdminError(
            f"this database ({db.description}) has no FusionPBX tables (v_domains) -- fix: set "
            "DATABASE_URL to the FusionPBX database (/etc/fusionpbx/config.conf)"
        )
    if not tables["ours"]:
        raise AdminError("callcontrol's tables are missing -- fix: run `callcontrol migrate`")
    domain_uuid = await domain_uuid_of(db, name.strip())
    if domain_uuid is None:
        known = [r["domain_name"] for r in await db.fetch_all(
            "SELECT domain_name FROM v_domains ORDER BY domain_name LIMIT 11")]  # fmt: skip
        listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        raise AdminError(
            f"no domain {name!r} in FusionPBX (v_domains)"
            + (f"; its domains: {listed}" if known else "; it has no domain yet")
        )
    shown = await db.fetch_value(
        "SELECT domain_name FROM v_domains WHERE domain_uuid = %s", (domain_uuid,)
    )
    return Domain(domain_uuid, str(shown))


# -- list -----------------------------------------------------------------------------------

_LIST = """
WITH chosen AS (
    SELECT default_destination_uuid AS uuid FROM callcontrol_secretaries
    WHERE domain_uuid = %(domain)s AND secretary_uuid IS NULL
      AND default_destination_uuid IS NOT NULL
)
SELECT transfer_destination_uuid AS uuid, name, destination_type, destination_number,
       is_enabled::text = 'true' AS enabled, ring_timeout_seconds, fallback_action,
       secretary_uuid,
       CASE WHEN (SELECT uuid FROM chosen) IS NULL THEN is_default::text = 'true'
            ELSE transfer_destination_uuid = (SELECT uuid FROM chosen) END AS is_default
FROM v_voice_transfer_destinations
WHERE domain_uuid = %(domain)s
ORDER BY is_enabled DESC, priority, name
"""


async def list_destinations(db: Database, domain: Domain) -> int:
    rows = await db.fetch_all(_LIST, {"domain": domain.uuid})
    if not rows:
        print(f"{domain.name} has no callcontrol destinations -- add them: "
              f"callcontrol destinations import --domain {domain.name}")  # fmt: skip
        return 0
    headers = ["NAME", "TYPE", "NUMBER", "DEFAULT", "ENABLED", "RING TIMEOUT", "FALLBACK"]
    scoped = any(r["secretary_uuid"] is not None for r in rows)
    if scoped:
        headers.append("SECRETARY")
    table = []
    for r in rows:
        line = [r["name"], r["destination_type"], r["destination_number"],
                _yes(r["is_default"]), _yes(r["enabled"]), f"{r['ring_timeout_seconds']} s",
                r["fallback_action"]]  # fmt: skip
        if scoped:
            line.append(str(r["secretary_uuid"]) if r["secretary_uuid"] else "all")
        table.append(line)
    for text in render_table(headers, table):
        print(text)
    enabled = sum(1 for r in rows if r["enabled"])
    defaults = [r["name"] for r in rows if r["enabled"] and r["is_default"]]
    summary = f"{len(rows)} destination(s), {enabled} enabled"
    summary += f"; default: {', '.join(defaults)}" if defaults else "; no default destination"
    print(summary)
    return 0


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    columns = zip(headers, *rows, strict=False)
    widths = [max(len(str(cell)) for cell in column) for column in columns]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _yes(value: Any) -> str:
    return "yes" if value else "no"


# -- add ------------------------------------------------------------------------------------


async def add_destination(db: Database, domain: Domain, args: argparse.Namespace) -> int:
    name = " ".join(args.name.split())
    number = args.number.strip()
    kind = DestinationType(args.type)
    fallback = FallbackAction(args.fallback)
    said = f"{_SAID[kind]} {number}"
    if not name:
        raise AdminError("--name is empty")
    if not _SAFE_NUMBER.match(number):
        raise AdminError(f"--number {args.number!r}: only digits, letters and * # + _ . -")
    if not 1 <= args.ring_timeout <= 600:
        raise AdminError(f"--ring-timeout {args.ring_timeout}: must be 1 to 600 seconds")
    await _check_number(db, domain, kind, number)
    if fallback is FallbackAction.VOICEMAIL:
        if kind is not DestinationType.EXTENSION:
            raise AdminError(
                f"--fallback voicemail needs an extension: a {_SAID[kind]} has no voicemail box "
                "of its own (choose offer_callback, transfer_default or hangup)"
            )
        if not await mailbox_enabled(db, domain.uuid, number):
            raise AdminError(
                f"extension {number} of {domain.name} has no enabled voicemail box "
                "(v_voicemails) -- fix: create or enable it in FusionPBX (Accounts > Voicemail), "
                "or choose another --fallback"
            )
    existing = await _existing(db, domain)
    for row in existing:
        if (row.kind, row.number) == (str(kind), number):
            raise AdminError(f"{domain.name} already has {said}: {row.name!r} "
                             f"(see callcontrol destinations list --domain {domain.name})")
        if normalize(row.name) == normalize(name):
            raise AdminError(f"{domain.name} already has a destination named {row.name!r} "
                             f"({_said(row.kind)} {row.number}); choose another --name")
    aliases = [a.strip() for a in args.alias if a.strip()]
    values = {"domain_uuid": domain.uuid, "name": name, "destination_type": str(kind),
              "destination_number": number, "is_default": args.default,
              "department": (args.department or "").strip() or None,
              "description": (args.description or "").strip() or None,
              "ring_timeout_seconds": args.ring_timeout, "fallback_action": str(fallback),
              "aliases": aliases}  # fmt: skip
    replaced = [r.name for r in existing if r.is_default] if args.default else []

    def write(conn: Connection) -> None:
        if args.default:
            conn.execute(
                "UPDATE v_voice_transfer_destinations SET is_default = false"
                " WHERE domain_uuid = %s AND secretary_uuid IS NULL AND is_default",
                (domain.uuid,),
            )
        _insert(conn, values)

    await db.transaction(write)
    detail = f"{said}, rings {args.ring_timeout} s, then {fallback}"
    if args.default:
        detail += ", the default" + (f" (instead of {', '.join(replaced)})" if replaced else "")
    print(f"added {name!r} to {domain.name}: {detail}")
    print(_seen_within())
    return 0


async def _check_number(db: Database, domain: Domain, kind: DestinationType, number: str) -> None:
    state = await number_state(db, domain.uuid, kind, number)
    table, column, page = _TABLE[kind]
    if state == "disabled":
        raise AdminError(f"{_SAID[kind]} {number} of {domain.name} is disabled in FusionPBX "
                         f"-- fix: enable it there ({page}) first")  # fmt: skip
    if state == "missing":
        numbers = [str(r["n"]) for r in await db.fetch_all(
            f"SELECT DISTINCT {column} AS n FROM {table}"  # noqa: S608 - names from _TABLE
            f" WHERE domain_uuid = %s AND nullif({column}, '') IS NOT NULL ORDER BY 1 LIMIT 11",
            (domain.uuid,))]  # fmt: skip
        listed = ", ".join(numbers[:10]) + (", ..." if len(numbers) > 10 else "")
        plural = "queues" if kind is DestinationType.QUEUE else f"{_SAID[kind]}s"
        has = f"its {plural}: {listed}" if numbers else f"it has no {plural}"
        raise AdminError(f"{domain.name} has no {_SAID[kind]} {number} in FusionPBX "
                         f"({table}); {has}")  # fmt: skip


@attrs.frozen
class _Row:
    uuid: UUID
    name: str
    kind: str  # a DestinationType value (or whatever an admin wrote)
    number: str
    is_default: bool
    enabled: bool


async def _existing(db: Database, domain: Domain) -> list[_Row]:
    rows = await db.fetch_all(
        "SELECT transfer_destination_uuid AS uuid, name, destination_type, destination_number,"
        " is_default::text = 'true' AS is_default, is_enabled::text = 'true' AS enabled"
        " FROM v_voice_transfer_destinations WHERE domain_uuid = %s ORDER BY priority, name",
        (domain.uuid,),
    )
    return [
        _Row(r["uuid"], r["name"] or "", str(r["destination_type"]),
             (r["destination_number"] or "").strip(), bool(r["is_default"]), bool(r["enabled"]))
        for r in rows
    ]  # fmt: skip


def _insert(conn: Connection, values: dict[str, Any]) -> None:
    """One domain-wide row, unless the domain already has that type and number."""
    conn.execute(
        "INSERT INTO v_voice_transfer_destinations (domain_uuid, name, destination_type,"
        " destination_number, is_default, department, description, ring_timeout_seconds,"
        " fallback_action, aliases)"
        " SELECT %(domain_uuid)s, %(name)s, %(destination_type)s, %(destination_number)s,"
        " %(is_default)s, %(department)s, %(description)s, %(ring_timeout_seconds)s,"
        " %(fallback_action)s, to_jsonb(%(aliases)s::text[])"
        " WHERE NOT EXISTS (SELECT 1 FROM v_voice_transfer_destinations"
        "   WHERE domain_uuid = %(domain_uuid)s AND destination_type = %(destination_type)s"
        "   AND destination_number = %(destination_number)s)",
        values,
    )


def _seen_within() -> str:
    minutes = round(DEFAULT_TTL_SECONDS / 60)
    return f"a running callcontrol uses it within {minutes} minutes (or at once after a restart)"


# -- import ---------------------------------------------------------------------------------


@attrs.frozen
class _New:
    found: Proposal
    name: str
    is_default: bool = False


async def _has_default(db: Database, domain: Domain, existing: list[_Row]) -> bool:
    if any(r.is_default and r.enabled for r in existing):
        return True
    chosen = await db.fetch_value(
        "SELECT s.default_destination_uuid FROM callcontrol_secretaries AS s"
        " JOIN v_voice_transfer_destinations AS d"
        "   ON d.transfer_destination_uuid = s.default_destination_uuid"
        " WHERE s.domain_uuid = %s AND s.secretary_uuid IS NULL AND d.is_enabled",
        (domain.uuid,),
    )
    return chosen is not None


@attrs.frozen
class _Plan:
    found: list[Proposal]
    new: list[_New]
    promote: _Row | None  # an existing destination that becomes the default


async def _plan_import(db: Database, domain: Domain) -> _Plan:
    existing = await _existing(db, domain)
    present = {(r.kind, r.number): r for r in existing}
    used = {normalize(r.name) for r in existing}
    found = await proposals(db, domain.uuid)
    new: list[_New] = []
    for proposal in found:
        if (str(proposal.destination_type), proposal.number) in present:
            continue
        name = " ".join(proposal.name.split())
        if normalize(name) in used:  # two extensions named alike: the number tells them apart
            name = f"{name} {proposal.number}"
        used.add(normalize(name))
        new.append(_New(proposal, name))
    if await _has_default(db, domain, existing):
        return _Plan(found, new, None)
    for proposal in found:  # ring groups first, then extensions; queues never
        if proposal.destination_type is DestinationType.QUEUE:
            continue
        key = (str(proposal.destination_type), proposal.number)
        if key in present:
            if present[key].enabled:
                return _Plan(found, new, present[key])
            continue
        index = next(i for i, n in enumerate(new) if n.found is proposal)
        new[index] = attrs.evolve(new[index], is_default=True)
        break
    return _Plan(found, new, None)


def _show_plan(plan: _Plan, domain: Domain) -> None:
    if plan.new:
        skipped = len(plan.found) - len(plan.new)
        print(f"{domain.name}: {len(plan.new)} destination(s) to add"
              + (f" ({skipped} already present)" if skipped else "") + ":")  # fmt: skip
        table = [[n.name, str(n.found.destination_type), n.found.number, _yes(n.is_default),
                  n.found.description or ""] for n in plan.new]  # fmt: skip
        for text in render_table(["NAME", "TYPE", "NUMBER", "DEFAULT", "DESCRIPTION"], table):
            print(f"  {text}".rstrip())
    if plan.promote is not None:
        p = plan.promote
        print(f"{p.name!r} ({_said(p.kind)} {p.number}), already a destination, becomes "
              f"{domain.name}'s default")  # fmt: skip


async def _confirmed(domain: Domain) -> bool:
    if not sys.stdin.isatty():
        print("nothing written -- to write them: "
              f"callcontrol destinations import --domain {domain.name} --yes")  # fmt: skip
        return False
    answer = await trio.to_thread.run_sync(input, f"Write them to {domain.name}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes", "s", "sim"):
        print("nothing written")
        return False
    return True


async def import_destinations(db: Database, domain: Domain, *, yes: bool) -> int:
    plan = await _plan_import(db, domain)
    if not plan.new and plan.promote is None:
        if plan.found:
            print(f"nothing to import: every enabled ring group, queue and extension of "
                  f"{domain.name} is already a destination ({len(plan.found)})")  # fmt: skip
        else:
            print(f"nothing to import: {domain.name} has no enabled ring group, call-center "
                  "queue or extension in FusionPBX")  # fmt: skip
        return 0
    _show_plan(plan, domain)
    if not yes and not await _confirmed(domain):
        return 0

    def write(conn: Connection) -> None:
        for n in plan.new:
            _insert(conn, {"domain_uuid": domain.uuid, "name": n.name,
                           "destination_type": str(n.found.destination_type),
                           "destination_number": n.found.number, "is_default": n.is_default,
                           "department": None, "description": n.found.description,
                           "ring_timeout_seconds": 30,
                           "fallback_action": str(FallbackAction.OFFER_CALLBACK),
                           "aliases": []})  # fmt: skip
        if plan.promote is not None:
            conn.execute(
                "UPDATE v_voice_transfer_destinations SET is_default = true"
                " WHERE transfer_destination_uuid = %s",
                (plan.promote.uuid,),
            )

    await db.transaction(write)
    if plan.new:
        print(f"added {len(plan.new)} destination(s) to {domain.name} -- check them: "
              f"callcontrol destinations list --domain {domain.name}")  # fmt: skip
    else:
        assert plan.promote is not None
        print(f"{plan.promote.name!r} is now {domain.name}'s default")
    print(_seen_within().replace("uses it", "uses them"))
    return 0
