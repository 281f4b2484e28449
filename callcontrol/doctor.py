"""``callcontrol doctor``: is this machine ready to serve calls?

One line per check, ``OK``, ``FAIL`` or ``SKIP``, and for a failure the fix. Checks: the
configuration, the database and its migrations, FreeSWITCH's inbound Event Socket (connect,
``auth/request``, ``auth``, ``api status``), the outbound-socket listen port, the unicast
port range and the realtime provider's key. Exit status 0 when nothing failed, 1 otherwise.
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
import socket
from collections.abc import Mapping
from typing import Literal

import attrs
import psycopg
import trio

from callcontrol.config import (
    ConfigError,
    HostPort,
    Settings,
    describe_unknown,
    load_settings,
    unknown_variables,
)
from callcontrol.db.database import redact_url
from callcontrol.esl import ConnectionClosed, ProtocolError, commands
from callcontrol.esl.connection import EslConnection
from callcontrol.logs import configure_logging

TIMEOUT_SECONDS = 3.0
# FreeSWITCH's default RTP range (switch.conf.xml rtp-start-port / rtp-end-port).
FREESWITCH_RTP = (16384, 32768)

Status = Literal["OK", "FAIL", "SKIP"]


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


# -- inbound Event Socket -------------------------------------------------------------------


async def check_inbound_esl(settings: Settings, timeout: float = TIMEOUT_SECONDS) -> Check:
    """TCP connect, ``auth/request``, ``auth``, ``api status``, each within ``timeout``."""
    where = f"{settings.esl_host}:{settings.esl_port}"
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(settings.esl_host, settings.esl_port)
    except trio.TooSlowError:
        return _esl_timeout(where, timeout, "connect")
    except OSError as exc:
        return _fail(
            _ESL,
            f"cannot connect to {where}: {_reason(exc)}",
            "start FreeSWITCH with mod_event_socket loaded, or correct ESL_HOST/ESL_PORT "
            "(fs-conf/autoload_configs/event_socket.conf.xml)",
        )
    conn = EslConnection(stream, reply_timeout=timeout)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        try:
            return await _esl_conversation(conn, settings.esl_password, where, timeout)
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
                    f"{where} refused the password ({reply.reply_text.strip()})",
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
            f"{where} closed the connection during {step}: {exc}",
            "allow this host in event_socket.conf.xml apply-inbound-acl"
            if rejected
            else "is this port FreeSWITCH's inbound Event Socket? (event_socket.conf.xml)",
        )
    first = status.splitlines()[0] if status else ""
    if not first.startswith("UP"):
        return _fail(
            _ESL,
            f"{where}: `api status` answered {first[:80]!r}",
            "FreeSWITCH is not fully up (fs_cli -x status)",
        )
    return _ok(_ESL, f"{where} accepted the password; {first[:80]}")


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
    checks += await trio.to_thread.run_sync(check_database, settings, timeout)
    checks.append(await check_inbound_esl(settings, timeout))
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
    print(f"{len(failed)} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0
