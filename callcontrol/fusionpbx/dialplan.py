"""``callcontrol fusionpbx install-dialplan | uninstall-dialplan``: callcontrol's entry in
FusionPBX's own dialplan, stored the way its Dialplan Manager stores one.

FusionPBX keeps the dialplan in PostgreSQL (facts from FusionPBX 5.4.4 and 5.5.7,
``app/dialplans/``):

* one ``v_dialplans`` row per entry. FreeSWITCH is served its ``dialplan_xml``: FusionPBX's
  xml_handler selects the XML of the enabled rows of the call's context (a domain's context is
  its name), with the global ones, by ``dialplan_order``;
* its ``v_dialplan_details`` rows are the form the Dialplan Manager edits (tag, type, data,
  group, order). When an admin saves the entry there, FusionPBX renders ``dialplan_xml`` again
  from these rows, so :func:`render_xml` writes exactly what that rendering gives (tab-indented,
  the ``uuid`` attribute, values as stored): saving in the web page changes nothing;
* ``dialplan_enabled``, ``dialplan_continue`` and ``dialplan_destination`` are ``boolean`` from
  5.5 and ``text`` ('true'/'false') before; ``dialplan_detail_enabled`` is boolean in both. The
  column's real type decides what is bound (:func:`_flag_types`);
* ``dialplan_destination`` true lists the entry in the pickers of Dialplan > Destinations and of
  IVR menus ("Dialplans: callcontrol_ai_secretary"), which then ``transfer <number> XML
  <domain>`` to it;
* FusionPBX caches each context's dialplan (key ``dialplan:<context>``: the file
  ``<cache location>/dialplan.<context>``, or memcache) and its own pages clear that key after
  a write. This command cannot reach that cache, so it says what to run (:func:`reload_steps`).

The entry is found by callcontrol's own ``app_uuid`` (:data:`APP_UUID`) and the domain, so
install is idempotent (the same install again changes nothing and says so; different settings
update the same row) and uninstall removes exactly those rows. Every value that goes into the
XML comes from the configuration or the database and is checked first: a domain name that is
not a host name, a number that is not digits, a transfer target that is not one plain word are
refused, never escaped into a dialplan that FusionPBX would render differently.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID
from xml.sax.saxutils import escape

import attrs
import psycopg
import trio

from callcontrol.config import Settings, load_settings
from callcontrol.db import DatabaseUnavailable, PoolOptions, open_database
from callcontrol.db.database import Connection
from callcontrol.fsconf import socket_address
from callcontrol.logs import configure_logging

# callcontrol's app_uuid in v_dialplans: which rows install wrote (FusionPBX gives each of its
# apps one; the Dialplan Manager's own is 742714e5-8cdf-32fd-462c-cbe7e3d655db).
APP_UUID = UUID("08d31ec4-2861-4bcc-88ba-3aac17c19484")
DIALPLAN_NAME = "callcontrol_ai_secretary"
# After 010-035 (user_exists, call_direction set the variables), before 890 local_extension;
# the same as dialplan/fusionpbx/ai_secretary.dialplan-manager.xml.
DIALPLAN_ORDER = 300
DESCRIPTION = "AI voice secretary (callcontrol)"
HANGUP_CAUSE = "NORMAL_TEMPORARY_FAILURE"
DEFAULT_CACHE_LOCATION = "/var/cache/fusionpbx"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_NUMBER = re.compile(r"^[0-9]{1,20}$")
_TARGET = re.compile(r"^[0-9A-Za-z*#+_.-]{1,40}$")  # one word of transfer's data, no XML
_HOST = re.compile(r"^[0-9A-Za-z._:-]{1,253}$")
_PATH = re.compile(r"^/[0-9A-Za-z._/-]*$")
_FLAGS = ("dialplan_enabled", "dialplan_continue", "dialplan_destination")


class DialplanError(Exception):
    """What the admin must change, in one line (printed after the command's name)."""


@attrs.frozen
class Detail:
    """One ``v_dialplan_details`` row, as the Dialplan Manager shows it."""

    tag: str  # condition | action
    type: str  # the condition's field, or the application
    data: str
    group: int = 0
    order: int = 0


@attrs.frozen
class Fallback:
    number: str
    what: str  # for the admin: "ring group 9000 'Recepção'"


@attrs.frozen
class Entry:
    """What install writes for one domain (all values already checked)."""

    domain_uuid: UUID
    domain: str
    number: str
    socket: str  # host:port
    fallback: Fallback
    secretary: UUID | None = None

    def details(self) -> list[Detail]:
        rows = [("condition", "destination_number", f"^{self.number}$")]
        if self.secretary is not None:
            rows.append(("action", "set", f"voice_secretary_uuid={self.secretary}"))
        rows += [
            ("action", "socket", f"{self.socket} async full"),
            ("action", "transfer", f"{self.fallback.number} XML {self.domain}"),
            ("action", "hangup", HANGUP_CAUSE),
        ]
        return [Detail(tag, kind, data, 0, 10 * (i + 1)) for i, (tag, kind, data) in
                enumerate(rows)]  # fmt: skip

    def row(self, dialplan_uuid: UUID) -> dict[str, Any]:
        """The ``v_dialplans`` columns (flags as Python bools; see :func:`_bind_flags`)."""
        return {
            "domain_uuid": self.domain_uuid, "dialplan_uuid": dialplan_uuid,
            "app_uuid": APP_UUID, "hostname": None, "dialplan_context": self.domain,
            "dialplan_name": DIALPLAN_NAME, "dialplan_number": self.number,
            "dialplan_destination": True, "dialplan_continue": False,
            "dialplan_xml": render_xml(dialplan_uuid, self.details()),
            "dialplan_order": DIALPLAN_ORDER, "dialplan_enabled": True,
            "dialplan_description": DESCRIPTION,
        }  # fmt: skip


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def render_xml(dialplan_uuid: UUID, details: Sequence[Detail]) -> str:
    """``dialplan_xml`` as FusionPBX renders it from the details rows (one condition per
    group, its actions inside)."""
    lines = [f'<extension name="{DIALPLAN_NAME}" continue="false" uuid="{dialplan_uuid}">']
    open_condition = False
    for detail in details:
        if detail.tag == "condition":
            if open_condition:
                lines.append("\t</condition>")
            lines.append(f'\t<condition field="{_attr(detail.type)}" '
                         f'expression="{_attr(detail.data)}">')  # fmt: skip
            open_condition = True
        else:
            lines.append(f'\t\t<{detail.tag} application="{_attr(detail.type)}" '
                         f'data="{_attr(detail.data)}"/>')  # fmt: skip
    if open_condition:
        lines.append("\t</condition>")
    lines.append("</extension>")
    return "\n".join(lines) + "\n"


# -- the database -----------------------------------------------------------------------------


@attrs.frozen
class Domain:
    uuid: UUID
    name: str


def _check_tables(conn: Connection) -> None:
    row = conn.execute(
        "SELECT to_regclass('v_domains') IS NOT NULL AND to_regclass('v_dialplans') IS NOT NULL"
        " AND to_regclass('v_dialplan_details') IS NOT NULL AS pbx"
    ).fetchone()
    if not (row and row["pbx"]):
        raise DialplanError(
            "this database has no FusionPBX dialplan tables (v_domains, v_dialplans, "
            "v_dialplan_details) -- fix: set DATABASE_URL to the FusionPBX database "
            "(/etc/fusionpbx/config.conf)"
        )


def _domain(conn: Connection, name: str) -> Domain:
    row = conn.execute(
        "SELECT domain_uuid, domain_name FROM v_domains WHERE lower(domain_name) = lower(%s)"
        " ORDER BY domain_name LIMIT 1",
        (name.strip(),),
    ).fetchone()
    if row is None:
        found = conn.execute("SELECT domain_name FROM v_domains ORDER BY domain_name LIMIT 11")
        known = [r["domain_name"] for r in found.fetchall()]
        listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        raise DialplanError(f"no domain {name!r} in FusionPBX (v_domains)"
                            + (f"; its domains: {listed}" if known else "; it has no domain yet"))
    shown = str(row["domain_name"])
    if not _DOMAIN.match(shown):
        raise DialplanError(
            f"the domain name {shown!r} is not a host name, so it cannot name a dialplan "
            "context safely -- fix: rename the domain in FusionPBX (Advanced > Domains)"
        )
    return Domain(row["domain_uuid"], shown)


def _lock(conn: Connection, domain: Domain) -> None:
    # Two installs at once would both see no entry and both insert one.
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 (f"callcontrol-dialplan:{domain.uuid}",))  # fmt: skip


_FIRST_TARGET = """
SELECT kind, number, name FROM (
    SELECT 'ring group' AS kind, ring_group_extension AS number, ring_group_name AS name,
           1 AS rank
    FROM v_ring_groups
    WHERE domain_uuid = %(domain)s AND nullif(ring_group_extension, '') IS NOT NULL
      AND ring_group_enabled::text IS DISTINCT FROM 'false'
    UNION ALL
    SELECT 'extension', extension,
           coalesce(nullif(trim(effective_caller_id_name), ''), nullif(description, '')), 2
    FROM v_extensions
    WHERE domain_uuid = %(domain)s AND nullif(extension, '') IS NOT NULL
      AND enabled::text IS DISTINCT FROM 'false'
) AS found
WHERE %(number)s::text IS NULL OR number = %(number)s
ORDER BY rank, length(number), number
LIMIT 1
"""


def _describe(kind: str, number: str, name: str | None) -> str:
    return f"{kind} {number}" + (f" {name.strip()!r}" if name and name.strip() else "")


def _fallback(conn: Connection, domain: Domain, chosen: str | None) -> Fallback:
    """The domain's first enabled ring group, else its first enabled extension (the same
    order as ``destinations import``), or the admin's ``--fallback``."""
    if chosen is not None:
        number = chosen.strip()
        if not _TARGET.match(number):
            raise DialplanError(f"--fallback {chosen!r}: one word of digits, letters and * # + "
                                "_ . - (an extension, a ring group, *99<mailbox>)")  # fmt: skip
        row = conn.execute(_FIRST_TARGET, {"domain": domain.uuid, "number": number}).fetchone()
        what = _describe(row["kind"], number, row["name"]) if row else number
        return Fallback(number, what)
    row = conn.execute(_FIRST_TARGET, {"domain": domain.uuid, "number": None}).fetchone()
    if row is None:
        raise DialplanError(
            f"{domain.name} has no enabled ring group or extension for calls to fall back to "
            "when callcontrol is not there -- fix: create one in FusionPBX, or name it with "
            "--fallback NUMBER"
        )
    number = str(row["number"]).strip()
    what = _describe(row["kind"], number, row["name"])
    if not _TARGET.match(number):
        raise DialplanError(f"{what} of {domain.name} has a number a dialplan cannot transfer "
                            "to -- fix: correct it in FusionPBX, or choose another with "
                            "--fallback NUMBER")  # fmt: skip
    return Fallback(number, what)


def _check_secretary(conn: Connection, domain: Domain, secretary: UUID) -> None:
    """A secretary of the domain: callcontrol's row, or the voice-secretary app's (where that
    separately installed app exists). A UUID nobody configured would quietly get the domain's
    own secretary on every call."""
    if secretary == UUID(int=0):
        raise DialplanError("--secretary: the nil UUID means the domain's own secretary -- "
                            "leave --secretary out for that")  # fmt: skip
    found = conn.execute(
        "SELECT (to_regclass('callcontrol_secretaries') IS NOT NULL) AS own,"
        " (to_regclass('v_voice_secretaries') IS NOT NULL) AS app"
    ).fetchone()
    sources = []
    if found and found["own"]:
        sources.append("SELECT 1 FROM callcontrol_secretaries"
                       " WHERE domain_uuid = %(domain)s AND secretary_uuid = %(secretary)s")
    if found and found["app"]:
        sources.append("SELECT 1 FROM v_voice_secretaries"
                       " WHERE domain_uuid = %(domain)s AND voice_secretary_uuid = %(secretary)s")
    params = {"domain": domain.uuid, "secretary": secretary}
    for query in sources:
        if conn.execute(query, params).fetchone() is not None:
            return
    raise DialplanError(
        f"--secretary {secretary}: {domain.name} has no such secretary (callcontrol_secretaries"
        ", or the voice-secretary app's v_voice_secretaries) -- fix: leave --secretary out for "
        "the domain's own secretary, or give the UUID of one of its secretaries"
    )


def _flag_types(conn: Connection) -> dict[str, bool]:
    """Which of v_dialplans' flags are ``boolean`` (5.5) rather than ``text`` (5.4)."""
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = to_regclass('v_dialplans') AND attname = ANY(%s)"
        " AND NOT attisdropped",
        (list(_FLAGS),),
    ).fetchall()
    return {r["attname"]: r["type"] == "boolean" for r in rows}


def _bind_flags(row: dict[str, Any], boolean: dict[str, bool]) -> dict[str, Any]:
    bound = dict(row)
    for name in _FLAGS:
        if not boolean.get(name, True):
            bound[name] = "true" if row[name] else "false"
    return bound


def _ours(conn: Connection, domain: Domain) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT dialplan_uuid, dialplan_context, dialplan_name, dialplan_number, dialplan_order,"
        " hostname, dialplan_xml, dialplan_description,"
        " dialplan_enabled::text = 'true' AS dialplan_enabled,"
        " dialplan_continue::text = 'true' AS dialplan_continue,"
        " dialplan_destination::text = 'true' AS dialplan_destination"
        " FROM v_dialplans WHERE app_uuid = %s AND domain_uuid = %s"
        " ORDER BY insert_date NULLS LAST, dialplan_uuid",
        (APP_UUID, domain.uuid),
    ).fetchall()


def _details_of(conn: Connection, dialplan_uuids: Sequence[UUID]) -> list[Detail]:
    rows = conn.execute(
        "SELECT dialplan_detail_tag AS tag, dialplan_detail_type AS type,"
        " dialplan_detail_data AS data, dialplan_detail_group AS grp,"
        " dialplan_detail_order AS ord"
        " FROM v_dialplan_details WHERE dialplan_uuid = ANY(%s)"
        " ORDER BY dialplan_detail_group, dialplan_detail_order",
        (list(dialplan_uuids),),
    ).fetchall()
    return [Detail(r["tag"] or "", r["type"] or "", r["data"] or "", int(r["grp"] or 0),
                   int(r["ord"] or 0)) for r in rows]  # fmt: skip


def _manual_entry(conn: Connection, domain: Domain) -> dict[str, Any] | None:
    """An entry of that name the admin added by hand (docs/dialplan.md's manual way)."""
    return conn.execute(
        "SELECT dialplan_uuid, dialplan_number FROM v_dialplans"
        " WHERE lower(dialplan_context) = lower(%s) AND dialplan_name = %s"
        " AND app_uuid IS DISTINCT FROM %s LIMIT 1",
        (domain.name, DIALPLAN_NAME, APP_UUID),
    ).fetchone()


def _same_number(conn: Connection, domain: Domain, number: str) -> list[str]:
    """Other enabled entries of the context (or global) that match the same number."""
    rows = conn.execute(
        "SELECT dialplan_name, dialplan_order FROM v_dialplans"
        " WHERE (lower(dialplan_context) = lower(%s) OR dialplan_context = 'global')"
        " AND dialplan_number = %s AND app_uuid IS DISTINCT FROM %s"
        " AND dialplan_enabled::text IS DISTINCT FROM 'false'"
        " ORDER BY dialplan_order",
        (domain.name, number, APP_UUID),
    ).fetchall()
    return [f"{r['dialplan_name'] or '(unnamed)'!r} (order {r['dialplan_order']})" for r in rows]


_WRITTEN = ("dialplan_context", "dialplan_name", "dialplan_number", "dialplan_order", "hostname",
            "dialplan_enabled", "dialplan_continue", "dialplan_destination",
            "dialplan_description", "dialplan_xml")  # fmt: skip


def _differences(old: dict[str, Any], new: dict[str, Any], old_details: list[Detail],
                 new_details: list[Detail]) -> list[str]:  # fmt: skip
    changed = []
    for column in _WRITTEN:
        before, after = old[column], new[column]
        if column == "dialplan_order" and before is not None:
            before = int(before)
        if before != after:
            shown = column in ("dialplan_xml", "dialplan_description")
            changed.append(column if shown else f"{column} {before!r} -> {after!r}")
    if old_details != new_details:
        changed.append("v_dialplan_details")
    return changed


def _insert_details(conn: Connection, domain: Domain, dialplan_uuid: UUID,
                    details: Sequence[Detail]) -> None:  # fmt: skip
    for detail in details:
        conn.execute(
            "INSERT INTO v_dialplan_details (domain_uuid, dialplan_uuid, dialplan_detail_uuid,"
            " dialplan_detail_tag, dialplan_detail_type, dialplan_detail_data,"
            " dialplan_detail_group, dialplan_detail_order, dialplan_detail_enabled, insert_date)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, now())",
            (domain.uuid, dialplan_uuid, uuid.uuid4(), detail.tag, detail.type, detail.data,
             detail.group, detail.order),
        )  # fmt: skip


def _delete(conn: Connection, dialplan_uuids: Sequence[UUID]) -> None:
    ids = list(dialplan_uuids)
    conn.execute("DELETE FROM v_dialplan_details WHERE dialplan_uuid = ANY(%s)", (ids,))
    conn.execute("DELETE FROM v_dialplans WHERE dialplan_uuid = ANY(%s) AND app_uuid = %s",
                 (ids, APP_UUID))  # fmt: skip


@attrs.frozen
class Cache:
    method: str  # file | memcache
    location: str


def _cache(conn: Connection) -> Cache:
    """FusionPBX's cache settings (Default Settings: cache > method, location)."""
    method, location = "file", DEFAULT_CACHE_LOCATION
    table = conn.execute("SELECT to_regclass('v_default_settings') IS NOT NULL AS t").fetchone()
    if table and table["t"]:
        for r in conn.execute(
            "SELECT default_setting_subcategory AS name, trim(default_setting_value) AS value"
            " FROM v_default_settings WHERE default_setting_category = 'cache'"
            " AND default_setting_subcategory IN ('method', 'location')"
            " AND default_setting_enabled::text IS DISTINCT FROM 'false'"
            " ORDER BY default_setting_order NULLS FIRST"
        ).fetchall():
            if r["name"] == "method" and r["value"] in ("file", "memcache"):
                method = r["value"]
            elif r["name"] == "location" and _PATH.match(r["value"] or ""):
                location = r["value"].rstrip("/") or "/"
    return Cache(method, location)


def reload_steps(domain: str, cache: Cache) -> list[str]:
    """What the admin runs so that FreeSWITCH uses the changed entry at once."""
    if cache.method == "memcache":
        clear = f"fs_cli -x 'memcache delete dialplan:{domain}'"
    else:
        clear = f"rm -f {cache.location}/dialplan.{domain}"
    return [
        f"FusionPBX serves {domain}'s dialplan from its cache until that is cleared; to use "
        "the change now, on the PBX (as root):",
        f"  {clear}",
        "  fs_cli -x reloadxml",
        "  (or in FusionPBX: Status > SIP Status > Flush Cache, then Reload XML)",
    ]


# -- install / uninstall ----------------------------------------------------------------------


@attrs.frozen
class Request:
    domain: str
    number: str
    socket: str
    fallback: str | None = None
    secretary: UUID | None = None
    dry_run: bool = False


def install(conn: Connection, request: Request) -> list[str]:
    """Write (or, with ``dry_run``, describe) the domain's entry in one transaction; returns
    what to print."""
    if not _NUMBER.match(request.number):
        raise DialplanError(f"--number {request.number!r}: digits only (the number callers "
                            "dial, or an inbound route sends to)")  # fmt: skip
    host = request.socket.rpartition(":")[0]
    if not _HOST.match(host):
        raise DialplanError(f"CALLCONTROL_ESL_LISTEN: the host {host!r} cannot go into the "
                            "dialplan's socket action -- fix: an IP address or a plain host "
                            "name")  # fmt: skip
    _check_tables(conn)
    domain = _domain(conn, request.domain)
    _lock(conn, domain)
    manual = _manual_entry(conn, domain)
    if manual is not None:
        raise DialplanError(
            f"{domain.name} already has a {DIALPLAN_NAME!r} entry added by hand (number "
            f"{manual['dialplan_number']}) -- fix: delete it in Dialplan > Dialplan Manager, "
            "then run this again (or keep yours and skip this command)"
        )
    if request.secretary is not None:
        _check_secretary(conn, domain, request.secretary)
    entry = Entry(domain.uuid, domain.name, request.number, request.socket,
                  _fallback(conn, domain, request.fallback), request.secretary)  # fmt: skip
    existing = _ours(conn, domain)
    dialplan_uuid = existing[0]["dialplan_uuid"] if existing else uuid.uuid4()
    row = entry.row(dialplan_uuid)
    details = entry.details()
    summary = (f"calls to {entry.number} go to callcontrol at {entry.socket}; when it is not "
               f"there, to {entry.fallback.what}")  # fmt: skip
    changes: list[str] = []
    if existing:
        old_details = _details_of(conn, [dialplan_uuid])
        changes = _differences(existing[0], row, old_details, details)
        if len(existing) > 1:
            changes.append(f"{len(existing) - 1} duplicate entr(ies) removed")
        if not changes:
            return [f"{domain.name}: callcontrol's dialplan entry is already installed "
                    f"({summary}); nothing changed"]  # fmt: skip
    clash = _same_number(conn, domain, entry.number)
    notes = [f"note: {domain.name} has other dialplan entries for {entry.number}: "
             f"{', '.join(clash)}; the lowest order answers first"] if clash else []  # fmt: skip
    bound = _bind_flags(row, _flag_types(conn))
    if request.dry_run:
        return [*_dry_run(bound, details, changes, domain), *notes]
    if existing:
        _delete(conn, [r["dialplan_uuid"] for r in existing[1:]])
        conn.execute("DELETE FROM v_dialplan_details WHERE dialplan_uuid = %s", (dialplan_uuid,))
        conn.execute(
            "UPDATE v_dialplans SET dialplan_context = %(dialplan_context)s,"
            " dialplan_name = %(dialplan_name)s, dialplan_number = %(dialplan_number)s,"
            " hostname = %(hostname)s, dialplan_destination = %(dialplan_destination)s,"
            " dialplan_continue = %(dialplan_continue)s, dialplan_xml = %(dialplan_xml)s,"
            " dialplan_order = %(dialplan_order)s, dialplan_enabled = %(dialplan_enabled)s,"
            " dialplan_description = %(dialplan_description)s, update_date = now()"
            " WHERE dialplan_uuid = %(dialplan_uuid)s",
            bound,
        )
        verb = "updated"
    else:
        conn.execute(
            "INSERT INTO v_dialplans (domain_uuid, dialplan_uuid, app_uuid, hostname,"
            " dialplan_context, dialplan_name, dialplan_number, dialplan_destination,"
            " dialplan_continue, dialplan_xml, dialplan_order, dialplan_enabled,"
            " dialplan_description, insert_date)"
            " VALUES (%(domain_uuid)s, %(dialplan_uuid)s, %(app_uuid)s, %(hostname)s,"
            " %(dialplan_context)s, %(dialplan_name)s, %(dialplan_number)s,"
            " %(dialplan_destination)s, %(dialplan_continue)s, %(dialplan_xml)s,"
            " %(dialplan_order)s, %(dialplan_enabled)s, %(dialplan_description)s, now())",
            bound,
        )
        verb = "installed"
    _insert_details(conn, domain, dialplan_uuid, details)
    lines = [f"{verb} callcontrol's dialplan entry in {domain.name}: {summary}"]
    if changes:
        lines.append(f"  changed: {', '.join(changes)}")
    lines.append(f"  Dialplan > Dialplan Manager shows it as {DIALPLAN_NAME} (context "
                 f"{domain.name}, order {DIALPLAN_ORDER}); Dialplan > Destinations can send an "
                 "inbound number to it")  # fmt: skip
    return [*lines, *notes, *reload_steps(domain.name, _cache(conn))]


def _shown(column: str, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return f"{str(value).lower()} (boolean)"
    if column in _FLAGS:
        return f"{value!r} (text)"
    return str(value)


def _dry_run(row: dict[str, Any], details: list[Detail], changes: list[str],
             domain: Domain) -> list[str]:  # fmt: skip
    verb = "update" if changes else "add"
    lines = [f"dry run, nothing written: would {verb} callcontrol's dialplan entry in "
             f"{domain.name}"]  # fmt: skip
    if changes:
        lines.append(f"  changed: {', '.join(changes)}")
    lines.append("v_dialplans:")
    lines += [f"  {k} = {_shown(k, v)}" for k, v in row.items() if k != "dialplan_xml"]
    lines.append("v_dialplan_details (tag, type, data, group, order):")
    lines += [f"  {d.tag}  {d.type}  {d.data}  {d.group}  {d.order}" for d in details]
    lines.append("dialplan_xml:")
    lines += [f"  {line}" for line in row["dialplan_xml"].splitlines()]
    return lines


def uninstall(conn: Connection, domain_name: str, *, dry_run: bool = False) -> list[str]:
    _check_tables(conn)
    domain = _domain(conn, domain_name)
    _lock(conn, domain)
    existing = _ours(conn, domain)
    if not existing:
        return [f"{domain.name}: no dialplan entry installed by callcontrol; nothing removed"]
    ids = [r["dialplan_uuid"] for r in existing]
    count = len(_details_of(conn, ids))
    what = (f"{len(ids)} v_dialplans row(s) ({DIALPLAN_NAME}, number "
            f"{existing[0]['dialplan_number']}) and {count} v_dialplan_details row(s)")  # fmt: skip
    if dry_run:
        return [f"dry run, nothing removed: would remove {what} from {domain.name}"]
    _delete(conn, ids)
    return [f"removed callcontrol's dialplan entry from {domain.name}: {what}",
            *reload_steps(domain.name, _cache(conn))]  # fmt: skip


# -- the command ------------------------------------------------------------------------------


def _request(args: argparse.Namespace, settings: Settings) -> tuple[Request, list[str]]:
    address, notes = socket_address(settings)
    secretary = None
    if args.secretary:
        try:
            secretary = UUID(args.secretary.strip())
        except ValueError:
            raise DialplanError(f"--secretary {args.secretary!r} is not a UUID "
                                "(v_voice_secretaries.voice_secretary_uuid)") from None  # fmt: skip
    request = Request(args.domain, args.number.strip(), address, args.fallback, secretary,
                      args.dry_run)  # fmt: skip
    return request, [f"note: {n}" for n in notes]


def run_fusionpbx(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_format, level=logging.CRITICAL)
    prog = f"callcontrol fusionpbx {args.fusionpbx_command}"
    try:
        lines = trio.run(_run, settings, args)
    except DialplanError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"{prog}: {exc.for_the_admin()}", file=sys.stderr)
        return 1
    except psycopg.errors.InsufficientPrivilege as exc:
        reason = str(exc).strip().splitlines()[0]
        print(f"{prog}: DATABASE_URL's user may not change FusionPBX's dialplan ({reason}); "
              "nothing was written -- fix: run it with FusionPBX's own database user "
              "(/etc/fusionpbx/config.conf), or grant SELECT, INSERT, UPDATE, DELETE on "
              "v_dialplans and v_dialplan_details", file=sys.stderr)  # fmt: skip
        return 1
    for line in lines:
        print(line)
    return 0


async def _run(settings: Settings, args: argparse.Namespace) -> list[str]:
    notes: list[str] = []
    if args.fusionpbx_command == "install-dialplan":
        request, notes = _request(args, settings)
    async with open_database(settings.database_url, PoolOptions(min_size=1, max_size=1)) as db:
        if args.fusionpbx_command == "install-dialplan":
            lines = await db.transaction(lambda conn: install(conn, request))
        else:
            lines = await db.transaction(
                lambda conn: uninstall(conn, args.domain, dry_run=args.dry_run))
    return [*lines, *notes]
