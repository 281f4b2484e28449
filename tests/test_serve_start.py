"""``callcontrol serve`` started as an admin starts it: a real process, with the environment
variables pointing at the test database, ports bound by the test or a database port nobody
listens on. The tests read what the process prints and its exit status."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import trio

# Only what a process needs to run; none of callcontrol's variables leak in from the test run.
_KEEP = ("PATH", "HOME", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**settings: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in _KEEP if name in os.environ}
    ports = {
        "CALLCONTROL_ESL_LISTEN": f"127.0.0.1:{_free_port()}",
        "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{_free_port()}",
        # above the kernel's ephemeral range (32768-60999): a free port never falls inside
        "CALLCONTROL_UNICAST_PORTS": "127.0.0.1:61000-61999",
        "CALLCONTROL_LOG_FORMAT": "json",
    }
    return {**env, **ports, **settings}


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
    warnings = [e for e in events if e["level"] == "warning"]
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
    warnings = [e for e in _events(stderr) if e["level"] != "info"]
    assert [(e["event"], e["variable"], e["hint"]) for e in warnings] == [
        (
            "config.unknown_variable",
            "CALLCONTROL_HTTP_LISTN",
            "did you mean CALLCONTROL_HTTP_LISTEN?",
        )
    ]
    assert "sk-x" not in stderr
