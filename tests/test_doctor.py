"""``callcontrol doctor``: each check against the real thing it checks (PostgreSQL from the
test fixture, a small Event Socket server speaking FreeSWITCH's bytes over real TCP)."""

from __future__ import annotations

import argparse
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from callcontrol.config import HostPort, load_settings
from callcontrol.db import PoolOptions, open_database
from callcontrol.doctor import (
    Check,
    check_configuration,
    check_database,
    check_inbound_esl,
    check_listen_port,
    check_realtime_key,
    check_unicast_ports,
    run_doctor,
)
from callcontrol.esl import serialize
from callcontrol.testing.database import (
    add_destination,
    add_dialplan,
    add_domain,
    add_ring_group,
    isolated_database_url,
)
from callcontrol.testing.freeswitch import FreeSwitchSim, LocalStream, open_freeswitch_sim

PASSWORD = "s3cret-esl-pw"
STATUS = "UP 0 years, 0 days, 1 hour, 2 minutes, 3 seconds\nFreeSWITCH (Version 1.10.12) is ready\n"
VERSION = ("FreeSWITCH Version 1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit "
           "(git a88d069 2024-08-02 21:02:27Z 64bit)\n")  # fmt: skip
# a stock FusionPBX: Music on Hold's category "default" at each rate, no "moh"
STREAMS = ("default/8000", "default/16000", "default/32000", "default/48000")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a tiny inbound Event Socket: greeting, auth, api status, version, module_exists, ------
# -- local_stream show ----------------------------------------------------------------------


def _answer(command: bytes, password: str) -> tuple[bytes, bool]:
    """FreeSWITCH's reply to one command, and whether it closes the connection after it."""
    line = command.decode().strip()
    if line.startswith("auth "):
        if line == f"auth {password}":
            return serialize.command_reply("+OK accepted"), False
        return serialize.command_reply("-ERR invalid") + serialize.disconnect_notice(), True
    if line == "api status":
        return serialize.api_response(STATUS), False
    if line == "api version":
        return serialize.api_response(VERSION), False
    if line.startswith("api module_exists "):
        loaded = line.split()[-1] == "mod_local_stream"
        return serialize.api_response("true" if loaded else "false"), False
    if line.startswith("api local_stream show "):
        name = line.split()[-1]
        if name in STREAMS:
            where = f"/usr/share/freeswitch/sounds/music/{name}"
            return serialize.api_response(f"{name}\n  location: {where}\n"), False
        return serialize.api_response(f"-ERR Cannot locate local_stream {name}!\n"), False
    return serialize.command_reply("-ERR command not found"), False


async def _trio_esl(stream: trio.SocketStream, password: str) -> None:
    async with stream:
        await stream.send_all(serialize.auth_request())
        buf = b""
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            buf += data
            while b"\n\n" in buf:
                command, buf = buf.split(b"\n\n", 1)
                reply, close = _answer(command, password)
                await stream.send_all(reply)
                if close:
                    return


async def _serve(nursery: trio.Nursery, handler: Any) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


def _settings(**env: str) -> Any:
    return load_settings(env)


# -- configuration --------------------------------------------------------------------------


def test_configuration_lists_every_problem_and_hides_secrets(capsys: Any) -> None:
    env = {"ESL_PORT": "99999", "CALLCONTROL_TIMEZONE": "Mars/Base", "OPENAI_API_KEY": "sk-x1"}
    check, settings = check_configuration(env)
    assert settings is None and check.failed
    assert len(check.extra) == 2
    assert any("ESL_PORT" in p for p in check.extra)
    assert any("CALLCONTROL_TIMEZONE" in p for p in check.extra)

    assert run_doctor(argparse.Namespace(), env) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  configuration: 2 problem(s)")
    assert "ESL_PORT='99999'" in out
    assert "sk-x1" not in out


def test_configuration_from_a_toml_file(tmp_path: Any) -> None:
    path = tmp_path / "cc.toml"
    path.write_text('esl_port = 8031\nunknown_key = 1\n')
    check, _ = check_configuration({"CALLCONTROL_CONFIG": str(path)})
    assert check.failed
    assert any("unknown key 'unknown_key'" in p for p in check.extra)
    path.write_text("esl_port = 8031\n")
    check, settings = check_configuration({"CALLCONTROL_CONFIG": str(path)})
    assert check.status == "OK" and str(path) in check.detail
    assert settings is not None and settings.esl_port == 8031


# -- database -------------------------------------------------------------------------------


def test_database_reachable_and_migrated(db_url: str) -> None:
    database, migrations = check_database(_settings(DATABASE_URL=db_url))
    assert database.status == "OK", database.render()
    assert migrations.status == "OK", migrations.render()
    assert "all 2 applied" in migrations.detail or "applied" in migrations.detail


def test_database_without_migrations_says_run_migrate(database_url: str) -> None:
    with isolated_database_url(database_url, migrated=False) as url:
        database, migrations = check_database(_settings(DATABASE_URL=url))
    assert database.status == "OK"
    assert migrations.failed
    assert "001_voice_transfer_destinations" in migrations.detail
    assert "callcontrol migrate" in migrations.fix


def test_database_down_fails_fast_without_the_password() -> None:
    url = f"postgresql://fusionpbx:hunter2@127.0.0.1:{_free_port()}/fusionpbx"
    [database] = check_database(_settings(DATABASE_URL=url))
    assert database.failed
    assert "cannot connect" in database.detail
    assert "hunter2" not in database.render()


def test_database_unset_means_embedded() -> None:
    database, migrations = check_database(_settings())
    assert database.status == "OK" and "embedded PostgreSQL" in database.detail
    assert migrations.status == "SKIP"


# -- inbound Event Socket -------------------------------------------------------------------


async def test_inbound_esl_accepted() -> None:
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, lambda s: _trio_esl(s, PASSWORD))
        check, *_ = await check_inbound_esl(_settings(ESL_PORT=str(port),
                                                      ESL_PASSWORD=PASSWORD))  # fmt: skip
        nursery.cancel_scope.cancel()
    assert check.status == "OK", check.render()
    assert "UP 0 years" in check.detail
    assert PASSWORD not in check.render()


async def test_inbound_esl_wrong_password() -> None:
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, lambda s: _trio_esl(s, PASSWORD))
        [check] = await check_inbound_esl(_settings(ESL_PORT=str(port), ESL_PASSWORD="ClueCon"))
        nursery.cancel_scope.cancel()
    assert check.failed
    assert "refused the password" in check.detail and "-ERR invalid" in check.detail
    assert "ESL_PASSWORD" in check.fix
    assert "ClueCon" not in check.render()


async def test_inbound_esl_nothing_listening() -> None:
    [check] = await check_inbound_esl(_settings(ESL_PORT=str(_free_port())))
    assert check.failed and "cannot connect" in check.detail


async def test_inbound_esl_acl_rejection() -> None:
    async def rude(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(serialize.rude_rejection())

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, rude)
        [check] = await check_inbound_esl(_settings(ESL_PORT=str(port)))
        nursery.cancel_scope.cancel()
    assert check.failed and "apply-inbound-acl" in check.fix


async def test_inbound_esl_silent_peer_times_out(autojump_clock: trio.testing.MockClock) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, silent)
        [check] = await check_inbound_esl(_settings(ESL_PORT=str(port)))
        nursery.cancel_scope.cancel()
    assert check.failed and "no answer within 3 s (greeting)" in check.detail


# -- what FreeSWITCH runs: the simulated FreeSWITCH 1.10 over real TCP --------------------


@asynccontextmanager
async def _switch(**options: Any) -> AsyncIterator[tuple[FreeSwitchSim, int]]:
    async with open_freeswitch_sim(**options) as sim:
        listeners = await sim.serve_inbound("127.0.0.1", 0, password=PASSWORD)
        yield sim, int(listeners[0].socket.getsockname()[1])


async def _freeswitch_checks(
    change: Callable[[FreeSwitchSim], None] = lambda sim: None, **env: str
) -> tuple[dict[str, Check], list[str]]:
    """doctor's FreeSWITCH lines by name, and the api commands FreeSWITCH received."""
    async with _switch() as (sim, port):
        change(sim)
        checks = await check_inbound_esl(_settings(ESL_PORT=str(port), ESL_PASSWORD=PASSWORD,
                                                   **env))  # fmt: skip
        sent = [c.line for listener in sim.inbound for c in listener.commands
                if c.verb == "api"]  # fmt: skip
    return {c.name: c for c in checks}, sent


async def test_freeswitch_of_a_stock_fusionpbx() -> None:
    checks, sent = await _freeswitch_checks()
    assert [(c.name, c.status) for c in checks.values()] == [
        ("freeswitch event socket", "OK"), ("freeswitch version", "OK"),
        ("media transport", "OK"), ("mod_local_stream", "OK"), ("hold music", "WARN"),
    ]  # fmt: skip
    assert checks["freeswitch version"].render() == (
        "OK    freeswitch version: FreeSWITCH 1.10.12-release+git~20240802T210227Z~a88d069d6f"
        "~64bit (git a88d069 2024-08-02 21:02:27Z 64bit)")
    assert checks["media transport"].render() == (
        "OK    media transport: unicast: built into FreeSWITCH's core (sendmsg unicast), no "
        "module to load")
    assert checks["mod_local_stream"].render() == (
        "OK    mod_local_stream: mod_local_stream is loaded")
    # FusionPBX has no "moh": FreeSWITCH falls back to its "default" streams
    assert checks["hold music"].render() == (
        "WARN  hold music: local_stream://moh: no 'moh' stream at 8/16/48 kHz, FreeSWITCH "
        "plays default/8000 at 8 kHz, default/16000 at 16 kHz, default/48000 at 48 kHz "
        "instead -- fix: set TRANSFER_MUSIC_ON_HOLD=local_stream://default to name what "
        "plays, or add a 'moh' stream (fs_cli -x 'local_stream show' lists the names "
        "FreeSWITCH has)")
    # no module check for unicast; each stream name asked once, in mod_local_stream's order
    assert sent == [
        "api status", "api version", "api module_exists mod_local_stream",
        "api local_stream show moh/8000", "api local_stream show moh",
        "api local_stream show default/8000", "api local_stream show moh/16000",
        "api local_stream show default/16000", "api local_stream show moh/48000",
        "api local_stream show default/48000",
    ]  # fmt: skip


async def test_hold_music_named_default_plays_what_it_says() -> None:
    checks, _ = await _freeswitch_checks(TRANSFER_MUSIC_ON_HOLD="local_stream://default")
    assert checks["hold music"].render() == (
        "OK    hold music: local_stream://default plays default/8000 at 8 kHz, default/16000 "
        "at 16 kHz, default/48000 at 48 kHz")


def _streams(*names: str, stopped: tuple[str, ...] = ()) -> Callable[[FreeSwitchSim], None]:
    def change(sim: FreeSwitchSim) -> None:
        sim.local_streams = {n: LocalStream(f"/music/{n}", stopped=n in stopped) for n in names}
    return change


async def test_hold_music_found_at_every_rate() -> None:
    checks, _ = await _freeswitch_checks(_streams("moh", "default/8000"))
    assert checks["hold music"].render() == "OK    hold music: local_stream://moh plays moh " \
                                            "at 8/16/48 kHz"
    checks, _ = await _freeswitch_checks(_streams("moh/8000", "moh/16000", "moh/48000"))
    assert checks["hold music"].detail == ("local_stream://moh plays moh/8000 at 8 kHz, "
                                           "moh/16000 at 16 kHz, moh/48000 at 48 kHz")


async def test_hold_music_falls_back_at_some_rates_or_from_a_stopped_stream() -> None:
    checks, _ = await _freeswitch_checks(_streams("moh/8000", "default"))
    hold = checks["hold music"]
    assert hold.status == "WARN"
    assert hold.detail == ("local_stream://moh: no 'moh' stream at 16/48 kHz, FreeSWITCH plays "
                           "default at 16/48 kHz instead")
    checks, _ = await _freeswitch_checks(_streams("moh", "default/8000", "default/16000",
                                                  "default/48000", stopped=("moh",)))
    assert checks["hold music"].status == "WARN"
    assert "plays default/8000 at 8 kHz" in checks["hold music"].detail


async def test_hold_music_that_nothing_plays_fails_and_lists_the_streams() -> None:
    change = _streams("ringback/8000", "jazz/16000", "default/8000", stopped=("default/8000",))
    checks, _ = await _freeswitch_checks(change)
    hold = checks["hold music"]
    assert hold.render().splitlines() == [
        "FAIL  hold music: local_stream://moh: no stream plays at 8/16/48 kHz (tried moh/8000, "
        "moh, default/8000, default): callers on hold hear no music -- fix: add a stream named "
        "moh (FusionPBX: Music on Hold; or callcontrol fs-conf's autoload_configs/"
        "local_stream.conf.xml), or set TRANSFER_MUSIC_ON_HOLD to local_stream:// and one of "
        "the streams listed",
        "        - stream ringback/8000", "        - stream jazz/16000",
        "        - stream default/8000",
    ]  # fmt: skip
    # a name with "default" in it gets no fallback (mod_local_stream's rule)
    checks, _ = await _freeswitch_checks(_streams("default/8000"),
                                         TRANSFER_MUSIC_ON_HOLD="local_stream://mydefault")
    assert checks["hold music"].failed
    assert "(tried mydefault/8000, mydefault)" in checks["hold music"].detail
    checks, _ = await _freeswitch_checks(_streams())
    assert checks["hold music"].extra == ("FreeSWITCH has no local stream at all",)


async def test_hold_music_stream_names_from_freeswitch_are_sanitised_and_bounded() -> None:
    many = [f"x{i}" for i in range(14)]
    checks, _ = await _freeswitch_checks(_streams("\x1b[2Jevil" + "a" * 200, *many))
    extra = checks["hold music"].extra
    assert extra[0] == "stream  [2Jevil" + "a" * 49 + "..."  # 60 characters at most
    assert len(extra) == 11 and extra[-1] == "and 5 more (fs_cli -x 'local_stream show')"


async def test_hold_music_that_is_not_a_stream_name_is_never_sent() -> None:
    checks, sent = await _freeswitch_checks(TRANSFER_MUSIC_ON_HOLD="local_stream://moh x")
    assert checks["hold music"].failed and "not a stream name" in checks["hold music"].detail
    assert not [line for line in sent if line.startswith("api local_stream")]
    checks, sent = await _freeswitch_checks(TRANSFER_MUSIC_ON_HOLD="/usr/share/moh.wav")
    assert checks["mod_local_stream"].status == "SKIP"
    assert checks["hold music"].render() == ("SKIP  hold music: TRANSFER_MUSIC_ON_HOLD="
                                             "'/usr/share/moh.wav': not a local_stream, not "
                                             "checked")  # fmt: skip
    assert "api module_exists mod_local_stream" not in sent


async def test_without_mod_local_stream_hold_music_fails() -> None:
    checks, _ = await _freeswitch_checks(lambda sim: sim.modules.discard("mod_local_stream"))
    assert checks["mod_local_stream"].render() == (
        "FAIL  mod_local_stream: mod_local_stream is not loaded: no hold music (local_stream://"
        "...) while an agent is rung -- fix: load it (fs_cli -x 'load mod_local_stream', and "
        "enable it in modules.conf.xml or FusionPBX's Advanced > Modules)")
    assert checks["hold music"].render() == (
        "SKIP  hold music: local_stream://moh: not checked, mod_local_stream is not loaded")


async def test_audio_stream_transport_needs_mod_audio_stream() -> None:
    checks, sent = await _freeswitch_checks(CALLCONTROL_MEDIA_TRANSPORT="audio_stream")
    media = checks["media transport"]
    assert media.failed
    assert media.detail == ("audio_stream: mod_audio_stream is not loaded: "
                            "CALLCONTROL_MEDIA_TRANSPORT=audio_stream needs it, without it no "
                            "caller reaches the AI")  # fmt: skip
    assert "install mod_audio_stream" in media.fix
    assert "CALLCONTROL_MEDIA_TRANSPORT=unicast" in media.fix
    assert "api module_exists mod_audio_stream" in sent
    checks, _ = await _freeswitch_checks(lambda sim: sim.modules.add("mod_audio_stream"),
                                         CALLCONTROL_MEDIA_TRANSPORT="audio_stream")
    assert checks["media transport"].render() == (
        "OK    media transport: audio_stream: mod_audio_stream is loaded")


def _version(text: str) -> Callable[[FreeSwitchSim], None]:
    def change(sim: FreeSwitchSim) -> None:
        sim.version = text
    return change


async def test_freeswitch_older_than_1_10_is_a_warning() -> None:
    old = _version("1.8.7-release+git~20190702T200609Z~6047ebddfc~64bit")
    checks, _ = await _freeswitch_checks(old)
    version = checks["freeswitch version"]
    assert version.status == "WARN"
    assert version.detail.startswith("FreeSWITCH 1.8.7-release+git~20190702T200609Z")
    assert "older than 1.10" in version.detail and version.fix == (
        "upgrade FreeSWITCH to 1.10 or newer")
    checks, _ = await _freeswitch_checks(_version("1.11.0-release+git~x~64bit"))
    assert checks["freeswitch version"].status == "OK"


async def test_a_version_reply_is_never_printed_raw() -> None:
    checks, _ = await _freeswitch_checks(_version("\x1b]0;owned\x07" + "9" * 300))
    version = checks["freeswitch version"]
    assert version.status == "WARN" and "\x1b" not in version.render()
    assert "\x07" not in version.render() and len(version.detail) < 200


async def test_a_switch_that_stops_answering_is_reported_at_the_step() -> None:
    async def mute_after_status(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(serialize.auth_request())
            buf = b""
            while data := await stream.receive_some(4096):
                buf += data
                while b"\n\n" in buf:
                    command, buf = buf.split(b"\n\n", 1)
                    if command.startswith(b"api version"):
                        await trio.sleep_forever()
                    await stream.send_all(_answer(command, PASSWORD)[0])

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, mute_after_status)
        checks = await check_inbound_esl(_settings(ESL_PORT=str(port), ESL_PASSWORD=PASSWORD),
                                         timeout=0.3)  # fmt: skip
        nursery.cancel_scope.cancel()
    assert [c.status for c in checks] == ["OK", "FAIL"]
    assert checks[1].detail == (f"127.0.0.1:{port} stopped answering at `api version`: no "
                                "answer within 0.3 s")  # fmt: skip


# -- the outbound listen port ---------------------------------------------------------------


async def test_listen_port_free() -> None:
    check = await check_listen_port(HostPort("127.0.0.1", _free_port()))
    assert check.status == "OK" and "free" in check.detail


async def test_listen_port_held_by_callcontrol() -> None:
    async def server(stream: trio.SocketStream) -> None:  # what serve does first
        async with stream:
            await stream.send_all(b"connect\n\n")
            await stream.receive_some(10)

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, server)
        check = await check_listen_port(HostPort("127.0.0.1", port))
        nursery.cancel_scope.cancel()
    assert check.status == "OK" and "running callcontrol" in check.detail


async def test_listen_port_held_by_someone_else() -> None:
    async def other(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n")

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, other)
        check = await check_listen_port(HostPort("127.0.0.1", port))
        nursery.cancel_scope.cancel()
    assert check.failed and "another program" in check.detail


# -- unicast range and AI key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status", "words"),
    [
        ("127.0.0.1:40000-40999", "OK", "room for 500 calls"),
        ("127.0.0.1:20000-20100", "FAIL", "FreeSWITCH's default RTP"),
        ("127.0.0.1:500-600", "FAIL", "privileged"),
        ("127.0.0.1:8000-8100", "FAIL", "CALLCONTROL_ESL_LISTEN"),
        ("localhost:40000-40999", "FAIL", "IP address"),
    ],
)
def test_unicast_ports(value: str, status: str, words: str) -> None:
    check = check_unicast_ports(_settings(CALLCONTROL_UNICAST_PORTS=value))
    assert check.status == status and words in check.detail, check.render()


def test_unicast_ports_unused_with_audio_stream() -> None:
    check = check_unicast_ports(_settings(CALLCONTROL_MEDIA_TRANSPORT="audio_stream"))
    assert check.status == "SKIP"


def test_configuration_lists_misspelt_variables() -> None:
    check, settings = check_configuration({"ESL_PASWORD": "x", "CALLCONTROL_FOO": "1"})
    assert settings is not None
    assert check.render() == (
        "OK    configuration: valid (from the environment); 2 variable(s) ignored, check their "
        "spelling\n"
        "        - CALLCONTROL_FOO is not a callcontrol setting and is ignored\n"
        "        - ESL_PASWORD is not a callcontrol setting and is ignored; "
        "did you mean ESL_PASSWORD?"
    )


def test_realtime_key() -> None:
    missing = check_realtime_key(_settings())
    assert missing.render() == (
        "FAIL  realtime provider: openai-realtime model gpt-realtime: OPENAI_API_KEY is not set, "
        "the AI cannot answer calls (every call takes the no-AI fallback path) -- fix: put "
        "OPENAI_API_KEY in the environment file (never in the dialplan), then restart callcontrol"
    )
    check = check_realtime_key(_settings(OPENAI_API_KEY="sk-very-secret"))
    assert check.status == "OK" and "sk-very-secret" not in check.render()


# -- the whole command ----------------------------------------------------------------------


class _ThreadedEsl(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _EslHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(serialize.auth_request())
        buf = b""
        while data := self.request.recv(4096):
            buf += data
            while b"\n\n" in buf:
                command, buf = buf.split(b"\n\n", 1)
                reply, close = _answer(command, PASSWORD)
                self.request.sendall(reply)
                if close:
                    return


@pytest.fixture
def esl_port() -> Iterator[int]:
    server = _ThreadedEsl(("127.0.0.1", 0), _EslHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_doctor_all_pass(db_url: str, esl_port: int, capsys: Any) -> None:
    listen = f"127.0.0.1:{_free_port()}"

    async def pbx() -> None:  # a domain set up as docs/install.md says
        async with open_database(db_url, PoolOptions(min_size=1, max_size=1)) as db:
            domain = await add_domain(db, "empresa.com.br")
            await add_ring_group(db, domain, "9000", "Recepção")
            await add_destination(db, domain, "Recepção", "ring_group", "9000", is_default=True)
            await add_dialplan(db, domain, "callcontrol_ai_secretary", "8000",
                               f"{listen} async full")  # fmt: skip

    trio.run(pbx)
    capsys.readouterr()
    env = {
        "DATABASE_URL": db_url,
        "ESL_PORT": str(esl_port),
        "ESL_PASSWORD": PASSWORD,
        "CALLCONTROL_ESL_LISTEN": listen,
        # above the kernel's ephemeral range (32768-60999): the free port can never fall inside
        "CALLCONTROL_UNICAST_PORTS": "127.0.0.1:61000-61999",
        "OPENAI_API_KEY": "sk-do-not-print",
        "TRANSFER_MUSIC_ON_HOLD": "local_stream://default",  # FusionPBX's Music on Hold
    }
    code = run_doctor(argparse.Namespace(), env)
    out = capsys.readouterr().out
    assert code == 0, out  # the failing check's line says which and why
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["OK"] * 16
    names = [line.split(":")[0].split(None, 1)[1] for line in lines[:-1]]
    assert names == [
        "configuration", "database", "migrations", "fusionpbx tables", "domain empresa.com.br",
        "dialplan", "placeholder uuids", "voicemail boxes", "freeswitch event socket",
        "freeswitch version", "media transport", "mod_local_stream", "hold music",
        "esl listen port", "unicast ports", "realtime provider",
    ]  # fmt: skip
    assert lines[-1] == "all checks passed"
    for secret in (PASSWORD, "sk-do-not-print"):
        assert secret not in out


def test_doctor_failure_exit_status(capsys: Any) -> None:
    env = {"ESL_PORT": str(_free_port()), "OPENAI_API_KEY": "sk-x"}
    assert run_doctor(argparse.Namespace(), env) == 1
    out = capsys.readouterr().out
    assert "FAIL  freeswitch event socket" in out and "-- fix:" in out
    assert out.splitlines()[-1] == "1 check(s) failed"


async def test_two_boxes_each_reported_by_name_in_esl_host_order() -> None:
    down = _free_port()
    async with _switch() as (sim, port):
        hosts = f"127.0.0.1:{port}, 127.0.0.1:{down}"
        checks = await check_inbound_esl(_settings(ESL_HOST=hosts, ESL_PASSWORD=PASSWORD,
                                                   TRANSFER_MUSIC_ON_HOLD="local_stream://"
                                                   "default"))  # fmt: skip
        asked = [c.line for c in sim.inbound[0].commands if c.verb == "api"]
    up, gone = f"127.0.0.1:{port}", f"127.0.0.1:{down}"
    assert [(c.name, c.status) for c in checks] == [
        (f"freeswitch event socket ({up})", "OK"), (f"freeswitch version ({up})", "OK"),
        (f"media transport ({up})", "OK"), (f"mod_local_stream ({up})", "OK"),
        (f"hold music ({up})", "OK"), (f"freeswitch event socket ({gone})", "FAIL"),
    ]  # fmt: skip
    assert f"cannot connect to {gone}" in checks[-1].detail
    assert asked[0] == "api status" and len(sim.inbound) == 1  # each box asked once
