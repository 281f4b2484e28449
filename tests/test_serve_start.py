"""``callcontrol serve`` started as an admin starts it: a real process, with the environment
variables pointing at the test database, ports bound by the test or a database port nobody
listens on. The tests read what the process prints and its exit status."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import trio

from callcontrol.config import HostPort
from callcontrol.server import _explain
from callcontrol.startup import listen_failed

# Only what a process needs to run; none of callcontrol's variables leak in from the test run.
_KEEP = ("PATH", "HOME", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**settings: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in _KEEP if name in os.environ}
    # coverage's own variables: the serve process is measured like the tests' own code
    env |= {name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")}
    ports = {
        "CALLCONTROL_ESL_LISTEN": f"127.0.0.1:{_free_port()}",
        "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{_free_port()}",
        # above the kernel's ephemeral range (32768-60999): a free port never falls inside
        "CALLCONTROL_UNICAST_PORTS": "127.0.0.1:61000-61999",
        "CALLCONTROL_LOG_FORMAT": "json",
    }
    return {**env, **ports, **settings}


# No FreeSWITCH runs here: the start's orphaned-leg check and the callbacks' inbound Event Socket
# each warn about that once, as they should; the tests below look at the other warnings.
_NO_FREESWITCH = frozenset({"server.orphans_not_checked", "esl.inbound.disconnected"})


def _events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


async def _serve_until_listening(env: dict[str, str]) -> tuple[str, int]:
    """Start ``callcontrol serve``, SIGTERM it once it listens for calls; its stderr and exit
    status."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "callcontrol", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    out = b""
    try:
        with trio.fail_after(60):
            while b'"server.listening"' not in out:
                chunk = await proc.stderr.receive_some()
                if not chunk:
                    break
                out += chunk
            proc.send_signal(signal.SIGTERM)
            while chunk := await proc.stderr.receive_some():
                out += chunk
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
    return out.decode(), code


async def test_serve_without_a_provider_key_warns_once_and_still_serves(db_url):
    stderr, code = await _serve_until_listening(_env(DATABASE_URL=db_url))
    assert code == 0, stderr
    events = _events(stderr)
    warnings = [e for e in events if e["level"] == "warning" and e["event"] not in _NO_FREESWITCH]
    assert sum(e["event"] == "esl.inbound.disconnected" for e in events
               if e["level"] == "warning") <= 1  # once, not at every retry
    assert warnings == [
        {
            "event": "server.provider_key_missing",
            "level": "warning",
            "problem": "OPENAI_API_KEY is not set (REALTIME_PROVIDER=openai-realtime)",
            "effect": "every call takes the no-AI fallback path: the fallback prompt, then the "
            "default destination",
            "fix": "set OPENAI_API_KEY in the environment file and restart",
            "timestamp": warnings[0]["timestamp"],
        }
    ]
    assert [e["event"] for e in events][-1] == "server.stopped"


async def test_serve_warns_about_a_misspelt_variable_and_what_it_probably_meant(db_url):
    env = _env(DATABASE_URL=db_url, OPENAI_API_KEY="sk-x", CALLCONTROL_HTTP_LISTN="0.0.0.0:80")
    stderr, code = await _serve_until_listening(env)
    assert code == 0, stderr
    warnings = [e for e in _events(stderr) if e["level"] != "info"
                and e["event"] not in _NO_FREESWITCH]
    assert [(e["event"], e["variable"], e["hint"]) for e in warnings] == [
        (
            "config.unknown_variable",
            "CALLCONTROL_HTTP_LISTN",
            "did you mean CALLCONTROL_HTTP_LISTEN?",
        )
    ]
    assert "sk-x" not in stderr


def _serve(env: dict[str, str], *args: str) -> tuple[list[str], int]:
    """Run ``callcontrol serve`` to its end (a failed start); the lines it printed that are not
    log lines (JSON), and the exit status."""
    done = subprocess.run(
        [sys.executable, "-m", "callcontrol", "serve", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    printed = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    return printed, done.returncode


def _unused_port() -> int:
    """A port nothing listens on (bound once and released, so nobody took it since)."""
    return _free_port()


def test_a_database_that_does_not_answer_is_two_lines_and_exit_1():
    port = _unused_port()
    url = f"postgresql://callcontrol@127.0.0.1:{port}/fusionpbx"
    printed, code = _serve(_env(DATABASE_URL=url, OPENAI_API_KEY="k"))
    assert code == 1
    assert printed == [
        "callcontrol serve: cannot connect to the database: Connection refused (DATABASE_URL: "
        f"user=callcontrol dbname=fusionpbx host=127.0.0.1 port={port})",
        "  fix: start PostgreSQL there, or correct DATABASE_URL (host, port, user, password, "
        "database; pg_hba.conf must let this host in); `callcontrol doctor` tests the connection",
    ]


def test_debug_shows_the_traceback():
    url = f"postgresql://callcontrol@127.0.0.1:{_unused_port()}/fusionpbx"
    printed, code = _serve(_env(DATABASE_URL=url, OPENAI_API_KEY="k"), "--debug")
    assert code == 1
    assert any("Traceback (most recent call last):" in line for line in printed)
    assert any("StartupError: cannot connect to the database" in line for line in printed)


def _taken_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, int(sock.getsockname()[1])


def test_the_esl_port_in_use_is_named(db_url):
    sock, port = _taken_port()
    with sock:
        env = _env(
            DATABASE_URL=db_url, OPENAI_API_KEY="k", CALLCONTROL_ESL_LISTEN=f"127.0.0.1:{port}"
        )
        printed, code = _serve(env)
    assert code == 1
    assert printed == [
        "callcontrol serve: cannot listen for FreeSWITCH's socket connections on "
        f"127.0.0.1:{port} (CALLCONTROL_ESL_LISTEN): port {port} is already in use by another "
        "program",
        f"  fix: stop that program (`ss -ltnp 'sport = :{port}'` shows it; another callcontrol "
        "serve?) or set CALLCONTROL_ESL_LISTEN to a free port (and the dialplan's socket "
        "application to the same address)",
    ]


def test_listen_option_in_use_is_named_as_the_option(db_url):
    sock, port = _taken_port()
    with sock:
        printed, code = _serve(
            _env(DATABASE_URL=db_url, OPENAI_API_KEY="k"), "--listen", f"127.0.0.1:{port}"
        )
    assert code == 1
    assert printed[0].startswith(
        f"callcontrol serve: cannot listen for FreeSWITCH's socket connections on 127.0.0.1:{port}"
        f" (--listen): port {port} is already in use"
    )
    assert len(printed) == 2


def test_the_http_port_in_use_is_named(db_url):
    sock, port = _taken_port()
    with sock:
        env = _env(
            DATABASE_URL=db_url, OPENAI_API_KEY="k", CALLCONTROL_HTTP_LISTEN=f"127.0.0.1:{port}"
        )
        printed, code = _serve(env)
    assert code == 1
    assert printed == [
        "callcontrol serve: cannot listen for the HTTP API (/healthz, /readyz, /metrics) on "
        f"127.0.0.1:{port} (CALLCONTROL_HTTP_LISTEN): port {port} is already in use by another "
        "program",
        f"  fix: stop that program (`ss -ltnp 'sport = :{port}'` shows it; another callcontrol "
        "serve?) or set CALLCONTROL_HTTP_LISTEN to a free port",
    ]


def test_the_audio_stream_port_in_use_is_named(db_url):
    sock, port = _taken_port()
    with sock:
        env = _env(
            DATABASE_URL=db_url,
            OPENAI_API_KEY="k",
            CALLCONTROL_MEDIA_TRANSPORT="audio_stream",
            CALLCONTROL_MEDIA_LISTEN=f"127.0.0.1:{port}",
        )
        printed, code = _serve(env)
    assert code == 1
    assert printed[0] == (
        "callcontrol serve: cannot listen for mod_audio_stream's websockets on "
        f"127.0.0.1:{port} (CALLCONTROL_MEDIA_LISTEN): port {port} is already in use by another "
        "program"
    )
    assert len(printed) == 2


def test_an_address_of_another_machine_is_named(db_url):
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine
    env = _env(DATABASE_URL=db_url, OPENAI_API_KEY="k", CALLCONTROL_ESL_LISTEN="192.0.2.7:8022")
    printed, code = _serve(env)
    assert code == 1
    assert printed == [
        "callcontrol serve: cannot listen for FreeSWITCH's socket connections on 192.0.2.7:8022 "
        "(CALLCONTROL_ESL_LISTEN): 192.0.2.7 is not an address of this machine",
        "  fix: set CALLCONTROL_ESL_LISTEN to 127.0.0.1:8022 or an address this machine has "
        "(`ip -brief address`) (and the dialplan's socket application to the same address)",
    ]


def test_bad_configuration_is_one_line_per_mistake_and_the_fix_exit_2():
    printed, code = _serve(_env(ESL_PORT="eighty"))
    assert code == 2
    assert printed == [
        "callcontrol serve: invalid configuration: ESL_PORT='eighty': port must be a whole "
        "number, got 'eighty'",
        "  fix: correct it in the environment (the service's environment file) or the "
        "CALLCONTROL_CONFIG file; docs/configuration.md lists every setting",
    ]
    printed, code = _serve(_env(), "--listen", "8022")
    assert code == 2
    assert printed[0] == (
        "callcontrol serve: invalid configuration: --listen '8022': expected HOST:PORT"
    )


def test_other_listen_failures_and_unexpected_errors_are_explained_too():
    listen = HostPort("127.0.0.1", 80)
    denied = listen_failed(OSError(errno.EACCES, "Permission denied"), listen, "X_LISTEN", "for x")
    assert denied.render() == (
        "callcontrol serve: cannot listen for x on 127.0.0.1:80 (X_LISTEN): permission denied "
        "(ports below 1024 need root)\n  fix: set X_LISTEN to a port above 1024"
    )
    other = listen_failed(OSError(errno.EINVAL, "Invalid argument"), listen, "X_LISTEN", "for x")
    assert other.problem.endswith("(X_LISTEN): Invalid argument")
    group = ExceptionGroup("nursery", [RuntimeError("the pool broke\nmore detail")])
    assert _explain(group) == (
        "callcontrol serve: stopped by an unexpected error: RuntimeError: the pool broke\n"
        "  fix: `callcontrol doctor` checks the setup; `callcontrol serve --debug` shows the "
        "traceback (include it in a bug report)"
    )
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [ValueError(), denied])])
    assert _explain(nested) == denied.render()
