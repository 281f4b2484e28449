"""``callcontrol serve --workers N``: real processes sharing FreeSWITCH's socket port.

The calls come from the simulated FreeSWITCH, the AI is ScriptedRealtime, the database the
test PostgreSQL with the stock FusionPBX schema; the tests read what the processes print, what
``/metrics`` says and the exit status, as an admin would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.config import (
    ConfigError,
    HostPort,
    PortRange,
    load_settings,
    parse_host_port,
    parse_workers,
)
from callcontrol.testing.database import add_destination, add_domain, add_secretary
from callcontrol.testing.freeswitch import open_freeswitch_sim
from callcontrol.testing.realtime import AwaitClient, GoSilent, Say, ScriptedRealtime
from callcontrol.workers import WorkerRole, check_workers, split_ports, worker_settings

_KEEP = ("PATH", "HOME", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR")
TOKEN = "s3cret"
DOMAIN = "pbx.example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _taken_next_to_a_free_port() -> tuple[socket.socket, int]:
    """A listening socket on BASE + 1 while BASE itself is free (worker 0 must start)."""
    while True:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        base = taken.getsockname()[1] - 1
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", base))
            except OSError:
                taken.close()
                continue
        taken.listen()
        return taken, base


class Serve:
    """One ``callcontrol serve`` process; its stderr read as JSON lines while it runs."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.args = args
        self.proc: trio.Process | None = None
        self.raw = b""
        self.changed = trio.Event()
        self.closed = trio.Event()

    @property
    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.raw.decode(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))  # a line two workers interleaved fails here
        return found

    def count(self, event: str) -> int:
        return sum(1 for line in self.lines if line.get("event") == event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "callcontrol", "serve", *self.args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        task_status.started()
        assert self.proc.stderr is not None
        try:
            while chunk := await self.proc.stderr.receive_some():
                self.raw += chunk
                self.changed.set()
                self.changed = trio.Event()
        finally:
            self.closed.set()
            if self.proc.returncode is None:
                self.proc.kill()
            with trio.CancelScope(shield=True):
                await self.proc.wait()

    async def until(self, cond: Any, seconds: float = 60) -> None:
        with trio.fail_after(seconds):
            while not cond():
                if self.closed.is_set():
                    raise AssertionError("serve ended:\n" + self.raw.decode()[-3000:])
                await self.changed.wait()

    async def exit_status(self, seconds: float = 60) -> int:
        with trio.fail_after(seconds):
            await self.closed.wait()
            assert self.proc is not None
            return await self.proc.wait()


def _env(db_url: str, model_url: str, **more: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in _KEEP if name in os.environ}
    env |= {name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")}
    return {
        **env,
        "DATABASE_URL": db_url,
        "REALTIME_URL": model_url,
        "OPENAI_API_KEY": "sk-test",
        "VOICE_AI_SERVICE_TOKEN": TOKEN,
        "CALLCONTROL_ESL_LISTEN": f"127.0.0.1:{_free_port()}",
        "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{_free_port()}",
        "CALLCONTROL_UNICAST_PORTS": "127.0.0.1:61000-61999",
        "CALLCONTROL_LOG_FORMAT": "json",
        **more,
    }


async def _office(db) -> dict[str, str]:
    domain = await add_domain(db, DOMAIN)
    secretary = await add_secretary(db, domain)
    await add_destination(db, domain, "Atendimento", "ring_group", "9000",
                          secretary_uuid=secretary, is_default=True)  # fmt: skip
    return {"domain_uuid": str(domain), "domain_name": DOMAIN,
            "voice_secretary_uuid": str(secretary)}  # fmt: skip


def _served_by(serve: Serve) -> dict[str, int]:
    """call UUID → the worker that answered it."""
    return {line["call_uuid"]: line["worker"] for line in serve.lines
            if line.get("event") == "call.secretary" and "worker" in line}  # fmt: skip


async def test_two_workers_share_the_calls_metrics_add_up_and_sigterm_drains_both(
    db, db_url, nursery
):
    variables = await _office(db)
    script = [AwaitClient("response.create"), Say("Olá!", ms=100), GoSilent()]
    async with (
        ScriptedRealtime(script, strict=False) as model_url,
        open_freeswitch_sim(domain=DOMAIN) as sim,
    ):
        env = _env(db_url, model_url)
        serve = Serve(env, "--workers", "2")
        await nursery.start(serve.run)
        await serve.until(lambda: serve.count("workers.ready") == 2)
        port = parse_host_port(env["CALLCONTROL_ESL_LISTEN"]).port
        calls = []
        # the kernel picks the worker of each connection: call until both have answered one
        while len(set(_served_by(serve).values())) < 2:
            assert len(calls) < 40, "every call went to one worker"
            call = await sim.place_call("127.0.0.1", port, variables=variables)
            calls.append(call)
            with trio.fail_after(15):
                await call.wait_for(lambda c=call: c.answer_state == "answered")
            placed = len(calls)
            await serve.until(lambda n=placed: len(_served_by(serve)) == n)
        http = env["CALLCONTROL_HTTP_LISTEN"]
        async with httpx.AsyncClient(base_url=f"http://{http}") as client:
            metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert metrics.status_code == 200
        active = [line for line in metrics.text.splitlines()
                  if line.startswith("voice_calls_active ")]  # fmt: skip
        assert active == [f"voice_calls_active {float(len(calls))}"]  # every worker's calls
        for call in calls:
            await call.hangup()
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGTERM)
        assert await serve.exit_status() == 0
    # each worker drained and stopped, no traceback, and the supervisor said so last
    assert sorted(line["worker"] for line in serve.lines
                  if line.get("event") == "server.stopped") == [0, 1]  # fmt: skip
    assert serve.lines[-1]["event"] == "workers.stopped"
    assert "Traceback" not in serve.raw.decode()
    rows = await db.fetch_all("SELECT call_uuid::text FROM callcontrol_calls")
    assert {r["call_uuid"] for r in rows} == set(_served_by(serve))


async def test_a_worker_that_cannot_start_stops_serve_with_its_reason(db_url, nursery):
    taken, base = _taken_next_to_a_free_port()  # worker 1 listens for mod_audio_stream on base + 1
    try:
        env = _env(db_url, "ws://127.0.0.1:1", CALLCONTROL_MEDIA_TRANSPORT="audio_stream",
                   CALLCONTROL_MEDIA_LISTEN=f"127.0.0.1:{base}")  # fmt: skip
        serve = Serve(env, "--workers", "2")
        await nursery.start(serve.run)
        assert await serve.exit_status() == 1
    finally:
        taken.close()
    text = serve.raw.decode()
    assert f"127.0.0.1:{base + 1}" in text and "CALLCONTROL_MEDIA_LISTEN" in text
    assert [line["worker"] for line in serve.lines
            if line.get("event") == "workers.start_failed"] == [1]  # fmt: skip


async def test_workers_drain_when_their_supervisor_is_killed(db, db_url, nursery):
    variables = await _office(db)
    async with (
        ScriptedRealtime([AwaitClient("response.create"), GoSilent()], strict=False) as url,
        open_freeswitch_sim(domain=DOMAIN) as sim,
    ):
        env = _env(db_url, url)
        serve = Serve(env, "--workers", "2")
        await nursery.start(serve.run)
        await serve.until(lambda: serve.count("workers.ready") == 2)
        call = await sim.place_call(
            "127.0.0.1", parse_host_port(env["CALLCONTROL_ESL_LISTEN"]).port, variables=variables
        )
        with trio.fail_after(15):
            await call.wait_for(lambda: call.answer_state == "answered")
        assert serve.proc is not None
        serve.proc.kill()  # SIGKILL: the supervisor runs no code of its own any more
        # the workers write to our stderr pipe themselves now, and both start draining
        await serve.until(lambda: serve.count("worker.supervisor_gone") == 2, 30)
        await serve.until(lambda: serve.count("server.draining") == 2, 30)
        assert call.answer_state == "answered"  # draining lets the call in progress go on
        await call.hangup()
        await serve.until(lambda: serve.count("server.stopped") == 2, 30)


async def test_a_worker_that_dies_is_started_again(db_url, nursery):
    async with ScriptedRealtime([GoSilent()], strict=False) as url:
        serve = Serve(_env(db_url, url), "--workers", "2")
        await nursery.start(serve.run)
        await serve.until(lambda: serve.count("workers.ready") == 2)
        [first] = [line["pid"] for line in serve.lines
                   if line.get("event") == "workers.ready" and line["worker"] == 1]  # fmt: skip
        os.kill(first, signal.SIGKILL)  # the OOM killer, say
        await serve.until(lambda: serve.count("workers.ready") == 3, 30)
        [restart] = [line for line in serve.lines if line.get("event") == "workers.restarting"]
        assert (restart["worker"], restart["exit_status"]) == (1, -signal.SIGKILL)
        again = [line["pid"] for line in serve.lines
                 if line.get("event") == "workers.ready" and line["worker"] == 1]  # fmt: skip
        assert len(again) == 2 and again[1] != first
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGTERM)
        assert await serve.exit_status() == 0


def test_port_slices_and_settings_of_each_worker():
    settings = load_settings({"CALLCONTROL_UNICAST_PORTS": "127.0.0.1:40000-40999",
                              "CALLCONTROL_MEDIA_LISTEN": "127.0.0.1:8085",
                              "CALLCONTROL_WORKERS": "4"})  # fmt: skip
    assert settings.workers == 4
    second = worker_settings(settings, WorkerRole(1, 4))
    assert second.unicast_ports == PortRange("127.0.0.1", 40250, 40499)
    assert second.media_listen == HostPort("127.0.0.1", 8086)
    assert worker_settings(settings, WorkerRole(0, 1)) is settings


@given(first=st.integers(1024, 60000), pairs=st.integers(1, 500), count=st.integers(1, 64))
def test_each_worker_gets_its_own_whole_port_pairs(first, pairs, count):
    ports = PortRange("127.0.0.1", first, first + 2 * pairs - 1)
    if pairs < count:
        return
    slices = [split_ports(ports, WorkerRole(i, count)) for i in range(count)]
    taken: set[int] = set()
    for part in slices:
        assert len(part) >= 2 and len(part) % 2 == 0
        assert ports.first <= part.first and part.last <= ports.last
        assert (part.first - ports.first) % 2 == 0  # pairs stay FreeSWITCH port, our port
        span = set(range(part.first, part.last + 1))
        assert not span & taken
        taken |= span


def test_worker_count_mistakes_are_named():
    assert parse_workers("auto") == max(1, os.cpu_count() or 1)
    assert parse_workers("3") == 3
    for bad in ("0", "-1", "two", "65"):
        with pytest.raises(ValueError):
            parse_workers(bad)
    with pytest.raises(ConfigError) as found:
        check_workers(load_settings({"CALLCONTROL_UNICAST_PORTS": "127.0.0.1:40000-40003",
                                     "CALLCONTROL_WORKERS": "3"}))  # fmt: skip
    assert "holds 2 port pairs, fewer than the 3 workers" in str(found.value)
    with pytest.raises(ValueError, match="I/N"):
        WorkerRole.parse("2/2")
