"""``callcontrol doctor``: is this machine ready to serve calls?

One line per check, ``OK``, ``WARN``, ``FAIL`` or ``SKIP``, and for a warning or a failure the
fix. Checks: the configuration, the database and its migrations, the FusionPBX side (its tables
and which release's shape they have, per domain its destinations and default, the dialplan
entry that hands calls to ``CALLCONTROL_ESL_LISTEN``, rows pointing at the nil UUID or a domain
that does not exist, voicemail boxes of destinations that fall back to voicemail),
FreeSWITCH's inbound Event Socket (connect, ``auth/request``, ``auth``, ``api status``) and
over it what FreeSWITCH runs (its version, the module the media transport needs,
mod_local_stream, the stream the hold music plays), the outbound-socket listen port, the
unicast port range and the realtime provider's key. Exit status 0 when nothing failed
(warnings included), 1 otherwise.
Secrets are never printed: a DSN is shown without its password, a key only as "set".

Every network step has a short deadline (``TIMEOUT_SECONDS``), so a firewall that drops
packets makes a check fail in seconds instead of hanging the command.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import ipaddress
import logging
import re
import socket
from collections.abc import Mapping
from typing import Any, Literal

import attrs
import psycopg
import trio
from psycopg.rows import dict_row

from callcontrol.config import (
    ConfigError,
    EslBox,
    HostPort,
    Settings,
    describe_unknown,
    load_settings,
    unknown_variables,
)
from callcontrol.db.database import redact_url
from callcontrol.esl import CommandArgumentError, ConnectionClosed, ProtocolError, commands
from callcontrol.esl.connection import EslConnection
from callcontrol.logs import configure_logging

TIMEOUT_SECONDS = 3.0
# FreeSWITCH's default RTP range (switch.conf.xml rtp-start-port / rtp-end-port).
FREESWITCH_RTP = (16384, 32768)

Status = Literal["OK", "WARN", "FAIL", "SKIP"]


@attrs.frozen
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    extra: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def render(self) -> str:
        line = f"{self.status:<4}  {self.name}: {self.detail}"
        if self.fix:
            line += f" -- fix: {self.fix}"
        return "\n".join([line, *(f"        - {item}" for item in self.extra)])


def _ok(name: str, detail: str) -> Check:
    return Check(name, "OK", detail)


def _fail(name: str, detail: str, fix: str, extra: tuple[str, ...] = ()) -> Check:
    return Check(name, "FAIL", detail, fix, extra)


def _warn(name: str, detail: str, fix: str, extra: tuple[str, ...] = ()) -> Check:
    return Check(name, "WARN", detail, fix, extra)


# -- configuration --------------------------------------------------------------------------


def check_configuration(env: Mapping[str, str]) -> tuple[Check, Settings | None]:
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        check = _fail(
            "configuration",
            f"{len(exc.problems)} problem(s)",
            "correct these variables (or the CALLCONTROL_CONFIG file), see docs/configuration.md",
            tuple(exc.problems),
        )
        return check, None
    source = env.get("CALLCONTROL_CONFIG")
    where = f"environment and {source}" if source else "environment"
    unknown = tuple(describe_unknown(name, meant) for name, meant in unknown_variables(env))
    detail = f"valid (from the {where})"
    if unknown:
        detail += f"; {len(unknown)} variable(s) ignored, check their spelling"
    return Check("configuration", "OK", detail, extra=unknown), settings


# -- database -------------------------------------------------------------------------------


def check_database(settings: Settings, timeout: float = TIMEOUT_SECONDS) -> list[Check]:
    """Reachable, and every migration in sql/ recorded in callcontrol_schema_migrations."""
    from callcontrol.db.migrations import MigrationError, load_migrations  # noqa: PLC0415

    url = settings.database_url
    if not url:
        if importlib.util.find_spec("pgserver") is None:
            return [
                _fail(
                    "database",
                    "DATABASE_URL is unset and the embedded PostgreSQL (pgserver) is not installed",
                    "set DATABASE_URL to the FusionPBX database, or pip install pgserver",
                )
            ]
        from callcontrol.db.embedded import default_data_dir  # noqa: PLC0415

        return [
            _ok(
                "database",
                f"DATABASE_URL is unset: the embedded PostgreSQL in {default_data_dir()} "
                "will be used (production: point DATABASE_URL at the FusionPBX database)",
            ),
            Check(
                "migrations",
                "SKIP",
                "not checked on the embedded database (callcontrol migrate applies them)",
            ),
        ]
    shown = redact_url(url)
    try:
        expected = load_migrations()
    except MigrationError as exc:
        return [_fail("migrations", str(exc), "reinstall callcontrol (sql/ is missing)")]
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
            table = conn.execute(
                "SELECT to_regclass('callcontrol_schema_migrations') IS NOT NULL"
            ).fetchone()
            applied: set[int] = set()
            if table and table[0]:
                rows = conn.execute("SELECT version FROM callcontrol_schema_migrations")
                applied = {int(row[0]) for row in rows}
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [
            _fail(
                "database",
                f"cannot connect to {shown}: {reason}",
                "check DATABASE_URL (host, port, user, password, database) and that PostgreSQL "
                "accepts this host (pg_hba.conf)",
            )
        ]
    checks = [_ok("database", f"connected to {shown}")]
    missing = [m for m in expected if m.version not in applied]
    if missing:
        names = ", ".join(f"{m.version:03d}_{m.name}" for m in missing)
        checks.append(
            _fail(
                "migrations",
                f"{len(missing)} of {len(expected)} not applied: {names}",
                "run `callcontrol migrate` with the same DATABASE_URL",
            )
        )
    else:
        checks.append(_ok("migrations", f"all {len(expected)} applied"))
    return checks


# -- FusionPBX ------------------------------------------------------------------------------

# The FusionPBX tables callcontrol reads (destinations, the dialplan check, voicemail).
FUSIONPBX_TABLES = ("v_domains", "v_extensions", "v_ring_groups", "v_call_center_queues",
                    "v_voicemails", "v_dialplans", "v_dialplan_details")  # fmt: skip
# Flags whose type tells the release: text 'true'/'false' up to 5.4, boolean from 5.5.
_FLAGS = (("v_extensions", "enabled"), ("v_ring_groups", "ring_group_enabled"),
          ("v_dialplans", "dialplan_enabled"))  # fmt: skip
_NIL = "00000000-0000-0000-0000-000000000000"
_SOCKET_IN_XML = re.compile(r"""application\s*=\s*["']socket["']\s+data\s*=\s*["']([^"']*)""")
_WILDCARD = ("", "0.0.0.0", "::", "*")
_LOCAL = ("127.0.0.1", "localhost", "::1")


def check_fusionpbx(settings: Settings, timeout: float = TIMEOUT_SECONDS) -> list[Check]:
    """The FusionPBX side of the database (run only once check_database could connect)."""
    url = settings.database_url
    if not url:
        return [Check("fusionpbx", "SKIP", "not checked on the embedded database")]
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)),
                             row_factory=dict_row) as conn:  # fmt: skip
            tables = _fusionpbx_tables(conn)
            if tables.failed:
                return [tables]
            checks = [tables]
            ours = conn.execute(
                "SELECT to_regclass('v_voice_transfer_destinations') IS NOT NULL AS d,"
                " to_regclass('callcontrol_secretaries') IS NOT NULL AS s"
            ).fetchone()
            migrated = bool(ours and ours["d"] and ours["s"])
            if migrated:
                checks += _domain_checks(conn)
            checks.append(_dialplan_check(conn, settings.esl_listen))
            if migrated:
                checks.append(_placeholder_check(conn))
                checks.append(_voicemail_check(conn))
            return checks
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [_fail("fusionpbx", f"cannot read FusionPBX's tables: {reason}",
                      "check that DATABASE_URL's user may read them (FusionPBX's own user "
                      "can)")]  # fmt: skip


def _fusionpbx_tables(conn: psycopg.Connection[Any]) -> Check:
    name = "fusionpbx tables"
    present = conn.execute(
        "SELECT t AS table, to_regclass(t) IS NOT NULL AS present FROM unnest(%s::text[]) AS t",
        (list(FUSIONPBX_TABLES),),
    ).fetchall()
    missing = [r["table"] for r in present if not r["present"]]
    if missing:
        return _fail(
            name,
            f"missing {', '.join(missing)}: this is not a FusionPBX database",
            "set DATABASE_URL to the FusionPBX database (its password is database.0.password "
            "in /etc/fusionpbx/config.conf)",
        )
    kinds = {}
    for table, column in _FLAGS:
        kinds[f"{table}.{column}"] = conn.execute(
            "SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
            (table, column),
        ).fetchone()
    types = {k: (v["type"] if v else "absent") for k, v in kinds.items()}
    if set(types.values()) == {"boolean"}:
        shape = "FusionPBX 5.5 shape (boolean flags)"
    elif set(types.values()) == {"text"}:
        shape = "FusionPBX 5.4 shape (text flags 'true'/'false')"
    else:
        mixed = ", ".join(f"{k} {v}" for k, v in types.items())
        shape = f"mixed flag types ({mixed}: a FusionPBX schema upgrade half done; read alike)"
    app = conn.execute("SELECT to_regclass('v_voice_secretaries') IS NOT NULL AS a").fetchone()
    also = "; the voice-secretary app's v_voice_secretaries too" if app and app["a"] else ""
    return _ok(name, f"{len(FUSIONPBX_TABLES)} present, {shape}{also}")


_DOMAINS = """
SELECT v.domain_uuid, v.domain_name,
       count(d.*) FILTER (WHERE d.is_enabled) AS enabled,
       (SELECT s.default_destination_uuid FROM callcontrol_secretaries AS s
        JOIN v_voice_transfer_destinations AS c
          ON c.transfer_destination_uuid = s.default_destination_uuid AND c.is_enabled
        WHERE s.domain_uuid = v.domain_uuid AND s.secretary_uuid IS NULL) AS chosen
FROM v_domains AS v
LEFT JOIN v_voice_transfer_destinations AS d ON d.domain_uuid = v.domain_uuid
WHERE v.domain_enabled::text IS DISTINCT FROM 'false'
GROUP BY v.domain_uuid, v.domain_name
ORDER BY v.domain_name
"""

_DOMAIN_DESTINATIONS = """
SELECT transfer_destination_uuid AS uuid, name, destination_type, destination_number, is_default
FROM v_voice_transfer_destinations
WHERE domain_uuid = %s AND is_enabled
ORDER BY priority, name
"""


def _domain_checks(conn: psycopg.Connection[Any]) -> list[Check]:
    from callcontrol.destinations.fusionpbx import NUMBER_STATE_SQL  # noqa: PLC0415
    from callcontrol.destinations.model import DestinationType  # noqa: PLC0415

    domains = conn.execute(_DOMAINS).fetchall()
    if not domains:
        return [_warn("domains", "FusionPBX has no enabled domain (v_domains)",
                      "create the domain in FusionPBX (Advanced > Domains)")]  # fmt: skip
    checks = []
    for domain in domains:
        name = f"domain {domain['domain_name']}"
        fix_import = f"callcontrol destinations import --domain {domain['domain_name']}"
        if not domain["enabled"]:
            checks.append(_warn(
                name,
                "0 enabled destinations: the AI can transfer only to the domain's first ring "
                "group (else extension)",
                fix_import,
            ))  # fmt: skip
            continue
        rows = conn.execute(_DOMAIN_DESTINATIONS, (domain["domain_uuid"],)).fetchall()
        stale = []
        for row in rows:
            try:
                kind = DestinationType(row["destination_type"])
            except ValueError:
                stale.append(f"{row['name']}: unknown type {row['destination_type']!r}")
                continue
            query = NUMBER_STATE_SQL.get(kind)
            if query is None:
                continue
            found = conn.execute(query, {"domain": domain["domain_uuid"],
                                         "number": row["destination_number"]}).fetchone()
            if found is None or not found["enabled"]:
                what = "not in FusionPBX" if found is None else "disabled in FusionPBX"
                stale.append(f"{row['name']} ({kind} {row['destination_number']}): {what}, "
                             "never rung")  # fmt: skip
        chosen = domain["chosen"]
        defaults = [r for r in rows if (r["uuid"] == chosen if chosen else r["is_default"])]
        count = f"{domain['enabled']} enabled destination(s)"
        if not defaults:
            checks.append(_warn(
                name,
                f"{count}, 0 default destination: 'anyone' and the no-AI path go to the first "
                "ring group (else extension)",
                f"{fix_import} (makes the first ring group the default), or "
                f"callcontrol destinations add --domain {domain['domain_name']} ... --default",
                tuple(stale),
            ))  # fmt: skip
            continue
        first = defaults[0]
        detail = (f"{count}, default {first['name']} ({first['destination_type']} "
                  f"{first['destination_number']})")  # fmt: skip
        if stale:
            checks.append(_warn(name, f"{detail}; {len(stale)} point at nothing",
                                "enable the number in FusionPBX, or disable the destination "
                                "(is_enabled = false)", tuple(stale)))  # fmt: skip
        else:
            checks.append(_ok(name, detail))
    return checks


_SOCKET_DETAILS = """
SELECT p.dialplan_uuid, p.dialplan_name, p.dialplan_context, p.dialplan_number,
       (p.dialplan_enabled::text IS DISTINCT FROM 'false'
        AND d.dialplan_detail_enabled::text IS DISTINCT FROM 'false') AS enabled,
       d.dialplan_detail_data AS data
FROM v_dialplan_details AS d
JOIN v_dialplans AS p ON p.dialplan_uuid = d.dialplan_uuid
WHERE d.dialplan_detail_type = 'socket' AND d.dialplan_detail_tag IN ('action', 'anti-action')
ORDER BY p.dialplan_context, p.dialplan_order, p.dialplan_name
"""
_SOCKET_XML = """
SELECT dialplan_uuid, dialplan_name, dialplan_context, dialplan_number,
       dialplan_enabled::text IS DISTINCT FROM 'false' AS enabled, dialplan_xml
FROM v_dialplans WHERE strpos(dialplan_xml, 'socket') > 0
ORDER BY dialplan_context, dialplan_order, dialplan_name
"""


@attrs.frozen
class _Socket:
    where: str
    data: str
    enabled: bool


def _dialplan_check(conn: psycopg.Connection[Any], listen: HostPort) -> Check:
    name = "dialplan"
    found: dict[tuple[Any, str], _Socket] = {}
    for row in conn.execute(_SOCKET_DETAILS).fetchall():
        data = " ".join((row["data"] or "").split())
        found[(row["dialplan_uuid"], data)] = _Socket(_where(row), data, bool(row["enabled"]))
    for row in conn.execute(_SOCKET_XML).fetchall():
        for data in _SOCKET_IN_XML.findall(row["dialplan_xml"] or ""):
            key = (row["dialplan_uuid"], " ".join(data.split()))
            found.setdefault(key, _Socket(_where(row), key[1], bool(row["enabled"])))
    wanted = f"{listen} async full"
    install = ("`callcontrol fusionpbx install-dialplan --domain NAME` adds it to a domain "
               "(or add dialplan/fusionpbx/ai_secretary.dialplan-manager.xml by hand in "
               "Dialplan > Dialplan Manager; docs/dialplan.md)")  # fmt: skip
    ours = [s for s in found.values() if _points_at(s.data, listen)]
    if not ours:
        if found:
            elsewhere = tuple(f"{s.where}: socket {s.data}" for s in found.values())
            return _fail(name, f"no socket entry points at CALLCONTROL_ESL_LISTEN {listen}",
                         f"set the socket data to '{wanted}', or CALLCONTROL_ESL_LISTEN to the "
                         "address the dialplan uses", elsewhere)  # fmt: skip
        return _warn(name, f"no dialplan entry hands calls to {listen} (no `socket` action in "
                     "v_dialplan_details or v_dialplans): no call reaches callcontrol",
                     install)  # fmt: skip
    enabled = [s for s in ours if s.enabled]
    if not enabled:
        return _warn(name, f"{ours[0].where} hands calls to {listen} but is disabled",
                     "enable it in Dialplan > Dialplan Manager")  # fmt: skip
    lacking = [s for s in enabled if not {"async", "full"} <= set(s.data.split()[1:])]
    if lacking:
        return _fail(name, f"{lacking[0].where}: socket {lacking[0].data!r} lacks 'async full' "
                     "(without full FreeSWITCH refuses api, bgapi and events: no transfer works)",
                     f"set the socket data to '{wanted}'")  # fmt: skip
    more = tuple(f"also {s.where}" for s in enabled[1:])
    return Check(name, "OK", f"{enabled[0].where}: socket {enabled[0].data}", extra=more)


def _where(row: Mapping[str, Any]) -> str:
    number = f", number {row['dialplan_number']}" if row["dialplan_number"] else ""
    return (f"dialplan {row['dialplan_name'] or '(unnamed)'!r} (context "
            f"{row['dialplan_context'] or '?'}{number})")  # fmt: skip


def _points_at(data: str, listen: HostPort) -> bool:
    first = data.split(maxsplit=1)[0] if data.strip() else ""
    host, _, port = first.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or int(port) != listen.port:
        return False
    if listen.host in _WILDCARD or host == listen.host:
        return True
    return host in _LOCAL and listen.host in _LOCAL


_PLACEHOLDERS = """
SELECT 'destination' AS kind, d.name AS label, d.domain_uuid::text AS domain,
       (d.domain_uuid = %(nil)s::uuid) AS nil, d.secretary_uuid = %(nil)s::uuid AS nil_secretary,
       v.domain_uuid IS NULL AS unknown
FROM v_voice_transfer_destinations AS d
LEFT JOIN v_domains AS v ON v.domain_uuid = d.domain_uuid
WHERE d.domain_uuid = %(nil)s::uuid OR v.domain_uuid IS NULL OR d.secretary_uuid = %(nil)s::uuid
UNION ALL
SELECT 'secretary settings', coalesce(s.secretary_uuid::text, 'the domain''s row'),
       s.domain_uuid::text, s.domain_uuid = %(nil)s::uuid, false, v.domain_uuid IS NULL
FROM callcontrol_secretaries AS s
LEFT JOIN v_domains AS v ON v.domain_uuid = s.domain_uuid
WHERE s.domain_uuid = %(nil)s::uuid OR v.domain_uuid IS NULL
ORDER BY 1, 2
"""


def _placeholder_check(conn: psycopg.Connection[Any]) -> Check:
    name = "placeholder uuids"
    rows = conn.execute(_PLACEHOLDERS, {"nil": _NIL}).fetchall()
    if not rows:
        return _ok(name, "every destination and secretary row names an existing domain")
    extra = []
    for r in rows:
        if r["nil"]:
            why = "domain_uuid is the nil UUID"
        elif r["unknown"]:
            why = f"domain_uuid {r['domain']} is not in v_domains"
        else:
            why = "secretary_uuid is the nil UUID (no secretary has it: NULL means every one)"
        extra.append(f"{r['kind']} {r['label']}: {why}")
    return _warn(
        name,
        f"{len(rows)} row(s) no call can use",
        "set domain_uuid to the domain's v_domains.domain_uuid (or delete the row: `callcontrol "
        "destinations import --domain X` adds the domain's own), and secretary_uuid to NULL or "
        "a real secretary",
        tuple(extra),
    )


_VOICEMAIL = """
SELECT d.name, d.destination_number, v.domain_name,
       m.voicemail_uuid IS NOT NULL AS exists,
       coalesce(m.voicemail_enabled::text = 'true', false) AS enabled
FROM v_voice_transfer_destinations AS d
JOIN v_domains AS v ON v.domain_uuid = d.domain_uuid
LEFT JOIN LATERAL (
    SELECT voicemail_uuid, voicemail_enabled FROM v_voicemails AS b
    WHERE b.domain_uuid = d.domain_uuid AND b.voicemail_id = d.destination_number
    ORDER BY (b.voicemail_enabled::text = 'true') DESC LIMIT 1
) AS m ON true
WHERE d.is_enabled AND d.destination_type = 'extension' AND d.fallback_action = 'voicemail'
ORDER BY v.domain_name, d.name
"""


def _voicemail_check(conn: psycopg.Connection[Any]) -> Check:
    name = "voicemail boxes"
    rows = conn.execute(_VOICEMAIL).fetchall()
    if not rows:
        return _ok(name, "no extension destination falls back to voicemail")
    bad = [r for r in rows if not r["enabled"]]
    if not bad:
        return _ok(name, f"all {len(rows)} extension destination(s) falling back to voicemail "
                   "have an enabled box")  # fmt: skip
    extra = tuple(
        f"{r['name']} (extension {r['destination_number']} of {r['domain_name']}): "
        + ("the box is disabled" if r["exists"] else "no box in v_voicemails")
        for r in bad
    )
    return _warn(
        name,
        f"{len(bad)} of {len(rows)} extension destination(s) falling back to voicemail have no "
        "enabled box: their callers cannot leave a message",
        "create or enable the box in FusionPBX (Accounts > Voicemail), or change the "
        "destination's fallback_action",
        extra,
    )


# -- inbound Event Socket -------------------------------------------------------------------


async def check_inbound_esl(settings: Settings, timeout: float = TIMEOUT_SECONDS) -> list[Check]:
    """TCP connect, ``auth/request``, ``auth``, ``api status``, each within ``timeout``; then,
    once FreeSWITCH is up, what it must have loaded (``check_loaded``). With several boxes in
    ``ESL_HOST``, every box at once, each check's name ending with the box's (``host:port``),
    in ``ESL_HOST``'s order."""
    boxes = settings.esl_boxes
    found: dict[EslBox, list[Check]] = {}

    async def one(box: EslBox) -> None:
        found[box] = await _check_box(settings, box, timeout)

    async with trio.open_nursery() as nursery:
        for box in boxes:
            nursery.start_soon(one, box)
    if len(boxes) == 1:
        return found[boxes[0]]
    return [attrs.evolve(check, name=f"{check.name} ({box.name})")
            for box in boxes for check in found[box]]  # fmt: skip


async def _check_box(settings: Settings, box: EslBox, timeout: float) -> list[Check]:
    where = box.name
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(box.host, box.port)
    except trio.TooSlowError:
        return [_esl_timeout(where, timeout, "connect")]
    except OSError as exc:
        return [_fail(
            _ESL,
            f"cannot connect to {where}: {_reason(exc)}",
            "start FreeSWITCH with mod_event_socket loaded, or correct ESL_HOST/ESL_PORT "
            "(fs-conf/autoload_configs/event_socket.conf.xml)",
        )]  # fmt: skip
    conn = EslConnection(stream, reply_timeout=timeout)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        try:
            up = await _esl_conversation(conn, settings.esl_password, where, timeout)
            if up.failed:
                return [up]
            return [up, *await check_loaded(_Switch(conn, where, timeout), settings)]
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()
            nursery.cancel_scope.cancel()
    raise AssertionError("unreachable")  # pragma: no cover


_ESL = "freeswitch event socket"


def _esl_timeout(where: str, timeout: float, step: str) -> Check:
    return _fail(
        _ESL,
        f"{where}: no answer within {timeout:g} s ({step})",
        "check ESL_HOST/ESL_PORT and any firewall between this host and FreeSWITCH",
    )


def _shown(text: str, limit: int = 80) -> str:
    """FreeSWITCH's words, safe to print: one line of printable characters, at most ``limit``
    (a reply is the switch's text, not ours: a control character or a page of it stays out)."""
    flat = "".join(c if c.isprintable() else " " for c in text.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


async def _esl_conversation(
    conn: EslConnection, password: str, where: str, timeout: float
) -> Check:
    step = "greeting"
    try:
        with trio.fail_after(timeout):
            await conn.wait_greeting()
            step = "auth"
            reply = await conn.send(commands.auth(password))
            if not reply.ok:
                return _fail(
                    _ESL,
                    f"{where} refused the password ({_shown(reply.reply_text)})",
                    "set ESL_PASSWORD to the password in event_socket.conf.xml",
                )
            step = "api status"
            status = (await conn.api("status")).strip()
    except trio.TooSlowError:
        return _esl_timeout(where, timeout, step)
    except (ConnectionClosed, ProtocolError) as exc:
        rejected = "ACL" in str(exc)
        return _fail(
            _ESL,
            f"{where} closed the connection during {step}: {_shown(str(exc))}",
            "allow this host in event_socket.conf.xml apply-inbound-acl"
            if rejected
            else "is this port FreeSWITCH's inbound Event Socket? (event_socket.conf.xml)",
        )
    first = _shown(status.splitlines()[0]) if status else ""
    if not first.startswith("UP"):
        return _fail(
            _ESL,
            f"{where}: `api status` answered {first!r}",
            "FreeSWITCH is not fully up (fs_cli -x status)",
        )
    return _ok(_ESL, f"{where} accepted the password; {first}")


# -- what FreeSWITCH has loaded -------------------------------------------------------------

# callcontrol is developed against FreeSWITCH 1.10 (the recordings: 1.10.12).
OLDEST_FREESWITCH = (1, 10)
_VERSION = re.compile(r"FreeSWITCH Version (\d+)\.(\d+)")
LOCAL_STREAM = "local_stream://"
# mod_local_stream looks a stream up at the caller's channel rate (PCMU/PCMA 8 kHz, G.722
# 16 kHz, Opus 48 kHz on a FusionPBX): a name may exist at one rate and not at another.
HOLD_RATES = (8000, 16000, 48000)
_LISTED = 10  # streams named in a hold-music failure


@attrs.define
class _Switch:
    """``api`` over the authenticated socket, each within ``timeout``; ``step`` names the one
    under way, for the line that says where FreeSWITCH stopped answering."""

    conn: EslConnection
    where: str
    timeout: float
    step: str = ""

    async def api(self, command: str, *args: str) -> str:
        self.step = " ".join(("api", command, *args))
        with trio.fail_after(self.timeout):
            return await self.conn.api(command, *args)


async def check_loaded(switch: _Switch, settings: Settings) -> list[Check]:
    """The version, the module the media transport needs, mod_local_stream, the hold music."""
    checks: list[Check] = []
    music = settings.transfer_music_on_hold
    try:
        checks.append(_version_check(await switch.api("version")))
        checks.append(await _transport_check(switch, settings.media_transport))
        local = await _local_stream_check(switch, music)
        checks.append(local)
        checks.append(await _hold_music_check(switch, music, loaded=local.status == "OK"))
    except (trio.TooSlowError, ConnectionClosed, ProtocolError) as exc:
        slow = isinstance(exc, trio.TooSlowError)
        why = f"no answer within {switch.timeout:g} s" if slow else _shown(str(exc))
        checks.append(_fail(
            _ESL,
            f"{switch.where} stopped answering at `{switch.step}`: {why}",
            "is FreeSWITCH overloaded or restarting? (fs_cli -x status)",
        ))  # fmt: skip
    return checks


def _version_check(reply: str) -> Check:
    name = "freeswitch version"
    found = _VERSION.match(reply.strip())
    if found is None:
        return _warn(name, f"`api version` answered {_shown(reply)!r}, not a version",
                     "look at it by hand: fs_cli -x version")  # fmt: skip
    shown = _shown(reply.strip().removeprefix("FreeSWITCH Version "), 120)
    if (int(found[1]), int(found[2])) < OLDEST_FREESWITCH:
        oldest = ".".join(map(str, OLDEST_FREESWITCH))
        return _warn(name, f"FreeSWITCH {shown}: older than {oldest}, the release callcontrol "
                     "is developed and tested against", f"upgrade FreeSWITCH to {oldest} or "
                     "newer")  # fmt: skip
    return _ok(name, f"FreeSWITCH {shown}")


def _module_check(name: str, module: str, reply: str, missing: str, fix: str) -> Check:
    """``api module_exists <module>`` answers ``true`` or ``false`` (mod_commands)."""
    if reply == "true":
        return _ok(name, f"{module} is loaded")
    if reply == "false":
        return _fail(name, f"{module} is not loaded: {missing}", fix)
    return _fail(name, f"`api module_exists {module}` answered {_shown(reply)!r}",
                 f"look at it by hand: fs_cli -x 'module_exists {module}'")  # fmt: skip


async def _transport_check(switch: _Switch, transport: str) -> Check:
    name = "media transport"
    if transport != "audio_stream":
        return _ok(name, f"{transport}: built into FreeSWITCH's core (sendmsg unicast), "
                   "no module to load")  # fmt: skip
    reply = await switch.api("module_exists", "mod_audio_stream")
    check = _module_check(
        name, "mod_audio_stream", reply,
        "CALLCONTROL_MEDIA_TRANSPORT=audio_stream needs it, without it no caller reaches the AI",
        "install mod_audio_stream and load it (fs_cli -x 'load mod_audio_stream', and add it "
        "to modules.conf.xml), or set CALLCONTROL_MEDIA_TRANSPORT=unicast (no module needed)",
    )  # fmt: skip
    return attrs.evolve(check, detail=f"audio_stream: {check.detail}")


async def _local_stream_check(switch: _Switch, music: str) -> Check:
    name = "mod_local_stream"
    if not music.startswith(LOCAL_STREAM):
        return Check(name, "SKIP", "not needed: TRANSFER_MUSIC_ON_HOLD is not a local_stream://")
    reply = await switch.api("module_exists", "mod_local_stream")
    return _module_check(
        name, "mod_local_stream", reply,
        f"no hold music ({LOCAL_STREAM}...) while an agent is rung",
        "load it (fs_cli -x 'load mod_local_stream', and enable it in modules.conf.xml or "
        "FusionPBX's Advanced > Modules)",
    )  # fmt: skip


async def _hold_music_check(switch: _Switch, music: str, *, loaded: bool) -> Check:
    """Which stream ``local_stream://NAME`` plays at each of ``HOLD_RATES``: NAME, else
    FreeSWITCH's fallback ``default`` (a warning), else none (a failure)."""
    name = "hold music"
    if not music.startswith(LOCAL_STREAM):
        return Check(name, "SKIP", f"TRANSFER_MUSIC_ON_HOLD={_shown(music)!r}: not a "
                     "local_stream, not checked")  # fmt: skip
    if not loaded:
        return Check(name, "SKIP", f"{_shown(music)}: not checked, mod_local_stream is not "
                     "loaded")  # fmt: skip
    stream = music.removeprefix(LOCAL_STREAM)
    try:
        commands.check_token(stream, "local stream")
    except CommandArgumentError:
        return _fail(name, f"TRANSFER_MUSIC_ON_HOLD={_shown(music)!r}: not a stream name",
                     "set TRANSFER_MUSIC_ON_HOLD=local_stream://NAME, NAME as fs_cli -x "
                     "'local_stream show' lists it")  # fmt: skip
    located: dict[str, bool] = {}

    async def runs(candidate: str) -> bool:
        # `local_stream show NAME` prints NAME and its fields, or -ERR Cannot locate... for a
        # name that is not a running stream: the same lookup as a playback (get_source)
        if candidate not in located:
            reply = await switch.api("local_stream", "show", candidate)
            located[candidate] = reply.startswith(f"{candidate}\n")
        return located[candidate]

    plays: dict[int, str | None] = {}
    for rate in HOLD_RATES:
        plays[rate] = None
        for candidate in _lookup_order(stream, rate):
            if await runs(candidate):
                plays[rate] = candidate
                break
    own = {stream, *(f"{stream}/{rate}" for rate in HOLD_RATES)}
    silent = [rate for rate, played in plays.items() if played is None]
    if silent:
        listing = await switch.api("local_stream", "show")
        return _fail(
            name,
            f"{music}: no stream plays at {_khz(silent)} (tried "
            f"{', '.join(_lookup_order(stream, silent[0]))}): callers on hold hear no music",
            f"add a stream named {stream} (FusionPBX: Music on Hold; or callcontrol fs-conf's "
            "autoload_configs/local_stream.conf.xml), or set TRANSFER_MUSIC_ON_HOLD to "
            "local_stream:// and one of the streams listed",
            _stream_names(listing),
        )
    found = {rate: played for rate, played in plays.items() if played is not None}
    fallback = {rate: played for rate, played in found.items() if played not in own}
    if fallback:
        return _warn(
            name,
            f"{music}: no {stream!r} stream at {_khz(list(fallback))}, FreeSWITCH plays "
            f"{_plays(fallback)} instead",
            f"set TRANSFER_MUSIC_ON_HOLD=local_stream://default to name what plays, or add a "
            f"{stream!r} stream (fs_cli -x 'local_stream show' lists the names FreeSWITCH has)",
        )
    return _ok(name, f"{music} plays {_plays(found)}")


def _lookup_order(stream: str, rate: int) -> list[str]:
    # mod_local_stream's local_stream_file_open: NAME/RATE, NAME, then, unless the name says
    # "default" (any case), default/RATE and default.
    order = [f"{stream}/{rate}", stream]
    if "default" not in stream.lower():
        order += [f"default/{rate}", "default"]
    return order


def _khz(rates: list[int]) -> str:
    return "/".join(f"{rate // 1000}" for rate in rates) + " kHz"


def _plays(plays: Mapping[int, str]) -> str:
    rates: dict[str, list[int]] = {}
    for rate, stream in plays.items():
        rates.setdefault(stream, []).append(rate)
    return ", ".join(f"{stream} at {_khz(at)}" for stream, at in rates.items())


def _stream_names(listing: str) -> tuple[str, ...]:
    """The names in ``local_stream show``'s ``NAME,LOCATION`` lines (``-ERR no reply``: none)."""
    names = [_shown(line.split(",", 1)[0], 60) for line in listing.splitlines()
             if "," in line and not line.startswith("-")]  # fmt: skip
    if not names:
        return ("FreeSWITCH has no local stream at all",)
    shown = [f"stream {n}" for n in names[:_LISTED]]
    if len(names) > _LISTED:
        shown.append(f"and {len(names) - _LISTED} more (fs_cli -x 'local_stream show')")
    return tuple(shown)


def _reason(exc: OSError) -> str:
    """The OS's words ("Connection refused"), also from under trio's "all attempts failed"."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return exc.strerror or str(exc)


# -- the outbound-socket listen port --------------------------------------------------------


async def check_listen_port(listen: HostPort, timeout: float = TIMEOUT_SECONDS) -> Check:
    """Free (we can bind it), or held by a running callcontrol (it greets with ``connect``)."""
    name = "esl listen port"
    try:
        infos = socket.getaddrinfo(listen.host or None, listen.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return _fail(name, f"cannot resolve {listen.host!r}: {exc}", "fix CALLCONTROL_ESL_LISTEN")
    family, _, _, _, address = infos[0]
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            if await _greets_like_callcontrol(listen, timeout):
                return _ok(name, f"{listen} is in use by a running callcontrol serve")
            return _fail(
                name,
                f"{listen} is in use by another program",
                "stop it, or choose another CALLCONTROL_ESL_LISTEN (and the dialplan's socket)",
            )
        return _fail(
            name,
            f"cannot listen on {listen}: {exc.strerror or exc}",
            "use an address of this machine in CALLCONTROL_ESL_LISTEN",
        )
    finally:
        probe.close()
    return _ok(name, f"{listen} is free for callcontrol serve")


async def _greets_like_callcontrol(listen: HostPort, timeout: float) -> bool:
    # In outbound mode the server speaks first: it sends "connect" as soon as FreeSWITCH (or
    # we) connect. The server then logs a failed handshake for this probe; nothing else.
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "") else listen.host
    host = "::1" if host == "::" else host
    data = b""
    with trio.move_on_after(timeout):
        stream = await trio.open_tcp_stream(host, listen.port)
        async with stream:
            while not data.endswith(b"\n\n") and len(data) < 64:
                chunk = await stream.receive_some(64)
                if not chunk:
                    break
                data += chunk
    return data.startswith(b"connect")


# -- unicast ports --------------------------------------------------------------------------


def check_unicast_ports(settings: Settings) -> Check:
    name = "unicast ports"
    if settings.media_transport != "unicast":
        transport = settings.media_transport
        return Check(name, "SKIP", f"not used (CALLCONTROL_MEDIA_TRANSPORT={transport})")
    rng = settings.unicast_ports
    shown = f"{rng.host}:{rng.first}-{rng.last}"
    fix = "set CALLCONTROL_UNICAST_PORTS to a free range, e.g. 127.0.0.1:40000-40999"
    try:
        ipaddress.ip_address(rng.host)
    except ValueError:
        return _fail(name, f"{shown}: the host must be an IP address", fix)
    if rng.first < 1024:
        return _fail(name, f"{shown} includes privileged ports (< 1024)", fix)
    if rng.first <= FREESWITCH_RTP[1] and FREESWITCH_RTP[0] <= rng.last:
        return _fail(
            name,
            f"{shown} overlaps FreeSWITCH's default RTP ports "
            f"{FREESWITCH_RTP[0]}-{FREESWITCH_RTP[1]}",
            fix,
        )
    ours = {
        "CALLCONTROL_ESL_LISTEN": settings.esl_listen,
        "CALLCONTROL_MEDIA_LISTEN": settings.media_listen,
        "CALLCONTROL_HTTP_LISTEN": settings.http_listen,
    }
    for variable, listen in ours.items():
        if rng.first <= listen.port <= rng.last:
            return _fail(name, f"{shown} contains {variable}'s port {listen.port}", fix)
    return _ok(name, f"{shown}: {len(rng)} ports, room for {len(rng) // 2} calls at once")


# -- AI provider ----------------------------------------------------------------------------


def check_realtime_key(settings: Settings) -> Check:
    name = "realtime provider"
    what = f"{settings.realtime_provider} model {settings.realtime_model}"
    if not settings.openai_api_key:
        return _fail(
            name,
            f"{what}: OPENAI_API_KEY is not set, the AI cannot answer calls "
            "(every call takes the no-AI fallback path)",
            "put OPENAI_API_KEY in the environment file (never in the dialplan), then "
            "restart callcontrol",
        )
    return _ok(name, f"{what}: OPENAI_API_KEY is set")


# -- running it -----------------------------------------------------------------------------


async def run_checks(
    env: Mapping[str, str], *, timeout: float = TIMEOUT_SECONDS
) -> list[Check]:
    config, settings = check_configuration(env)
    if settings is None:
        return [config]
    checks = [config]
    database = await trio.to_thread.run_sync(check_database, settings, timeout)
    checks += database
    if not any(c.failed and c.name == "database" for c in database):
        checks += await trio.to_thread.run_sync(check_fusionpbx, settings, timeout)
    checks += await check_inbound_esl(settings, timeout)
    checks.append(await check_listen_port(settings.esl_listen, timeout))
    checks.append(check_unicast_ports(settings))
    checks.append(check_realtime_key(settings))
    return checks


def run_doctor(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    import os  # noqa: PLC0415

    # The report is the output; the libraries' own log lines would only repeat it.
    configure_logging(level=logging.CRITICAL)
    checks = trio.run(run_checks, os.environ if env is None else env)
    for check in checks:
        print(check.render())
    failed = [c for c in checks if c.failed]
    if len(checks) == 1 and failed:
        print("      (the other checks need a valid configuration)")
    warned = sum(1 for c in checks if c.status == "WARN")
    warnings = f", {warned} warning(s)" if warned else ""
    print(f"{len(failed)} check(s) failed{warnings}" if failed else f"all checks passed{warnings}")
    return 1 if failed else 0
