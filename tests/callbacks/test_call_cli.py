"""``callcontrol callback call TICKET``: the admin's command, end to end — real PostgreSQL, the
simulated FreeSWITCH's inbound Event Socket over TCP (run in a thread of its own, as a real
switch would be a process of its own), the real clock with sub-second rings."""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import trio

from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.cli import main
from callcontrol.db import open_database
from callcontrol.testing.database import add_destination, add_domain, add_extension
from callcontrol.testing.freeswitch import Answer, Busy, open_freeswitch_sim

DOMAIN = "clinica.example.com"
NUMBER = "+5511988887777"


def _seed(db_url: str) -> str:
    async def seed() -> str:
        async with open_database(db_url) as db:
            domain = await add_domain(db, DOMAIN)
            await add_extension(db, domain, "1001")
            suporte = await add_destination(db, domain, "Suporte", "extension", "1001")
            saved = await save_request(db, CallbackRequest(
                "callback", NUMBER, caller_name="Maria", reason="resultado do exame",
                domain_uuid=str(domain), destination_uuid=str(suporte),
                destination_name="Suporte"))  # fmt: skip
            return saved.request_uuid

    return trio.run(seed)


def _status(db_url: str, ticket: str) -> tuple[str, int]:
    async def read() -> tuple[str, int]:
        async with open_database(db_url) as db:
            row = await db.fetch_one("SELECT status, attempts FROM callcontrol_callback_requests"
                                     " WHERE request_uuid = %s", (ticket,))  # fmt: skip
            assert row is not None
            return row["status"], row["attempts"]

    return trio.run(read)


class SwitchThread:
    """A simulated FreeSWITCH in its own thread; the agent hangs up 1 s after the bridge."""

    def __init__(self, agent: Any, *, registered: bool = True) -> None:
        self.agent = agent
        self.registered = registered
        self.sim: Any = None
        self.port: queue.Queue[int] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=trio.run, args=(self._run,), daemon=True)

    async def _run(self) -> None:
        async with open_freeswitch_sim(domain=DOMAIN) as sim:
            sim.endpoints[f"user/1001@{DOMAIN}"] = self.agent
            sim.endpoints[f"loopback/{NUMBER}/{DOMAIN}"] = Answer(after=0.1)
            self.sim = sim
            if self.registered:
                sim.register("1001", DOMAIN)
            listeners = await sim.serve_inbound()
            self.port.put(listeners[0].socket.getsockname()[1])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._hang_up_after_the_bridge, sim)
                await trio.to_thread.run_sync(self.stop.wait)
                nursery.cancel_scope.cancel()

    async def _hang_up_after_the_bridge(self, sim: Any) -> None:
        customer = await sim.wait_for_leg("loopback/")
        await sim.wait_for(lambda: customer.bridged_to is not None)
        await trio.sleep(1.0)
        await customer.hangup()


@pytest.fixture
def switch_thread() -> Iterator[Any]:
    started: list[SwitchThread] = []

    def start(agent: Any, registered: bool = True) -> int:
        switch = SwitchThread(agent, registered=registered)
        switch.thread.start()
        started.append(switch)
        return switch.port.get(timeout=10)

    start.started = started  # type: ignore[attr-defined]
    yield start
    for switch in started:
        switch.stop.set()
        switch.thread.join(timeout=10)


def _cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["callback", "call", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_admin_calls_a_ticket_back_and_sees_each_step(db_url, monkeypatch, capsys,
                                                          switch_thread):  # fmt: skip
    ticket = _seed(db_url)
    port = switch_thread(Answer(after=0.1))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESL_PORT", str(port))
    code, out, err = _cli(capsys, ticket)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"calling Maria ({NUMBER}) back for Suporte (ramal 1001) at {DOMAIN}, agent-first",
        "  ringing the agent (ramal 1001)...",
        "  the agent (ramal 1001) answered",
        f"  ringing the customer ({NUMBER})...",
        f"  the customer ({NUMBER}) answered",
        "  connected: agent and customer are talking",
        "  attempt 1 of 3: agent and customer were connected; they talked for 1 s",
        f"ticket {ticket}: completed",
    ]
    assert _status(db_url, ticket) == ("completed", 1)
    # its legs are not serve's: a serve restarting meanwhile leaves them ringing
    with psycopg.connect(db_url) as conn:
        [(instance,)] = conn.execute("SELECT instance FROM callcontrol_callback_attempts"
                                     " WHERE request_uuid = %s", (ticket,)).fetchall()  # fmt: skip
    assert instance == f"callcontrol-cli-{os.getpid()}"


def test_once_leaves_the_retry_to_the_scanner(db_url, monkeypatch, capsys, switch_thread):
    ticket = _seed(db_url)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESL_PORT", str(switch_thread(Busy())))
    code, out, _ = _cli(capsys, ticket, "--once")
    assert code == 1
    assert "  attempt 1 of 3: the agent's extension 1001 was busy -- due again in 60 s" in out
    assert out.splitlines()[-1].startswith(f"ticket {ticket}: pending, due again")
    assert _status(db_url, ticket) == ("pending", 1)


def test_what_cannot_be_called_is_said_in_one_line(db_url, monkeypatch, capsys):
    ticket = _seed(db_url)
    monkeypatch.setenv("DATABASE_URL", db_url)
    code, _, err = _cli(capsys, "not-a-ticket")
    assert code == 1 and "'not-a-ticket' is not a ticket id" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("ESL_PORT", str(closed_port))
    code, _, err = _cli(capsys, ticket)
    assert code == 1 and len(err.splitlines()) == 1
    assert f"cannot reach FreeSWITCH's Event Socket at 127.0.0.1:{closed_port}" in err
    assert err.rstrip().endswith("fix: check ESL_HOST, ESL_PORT and ESL_PASSWORD (callcontrol "
                                 "doctor)")  # fmt: skip
    assert _status(db_url, ticket) == ("pending", 0)  # nothing was tried
    code, _, err = _cli(capsys, "00000000-0000-4000-8000-000000000000")
    assert code == 1 and "there is no callback ticket 00000000-" in err
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:1/x")
    code, _, err = _cli(capsys, ticket)
    assert code == 1 and "hunter2" not in err and "cannot connect to PostgreSQL" in err


def test_with_two_boxes_the_call_goes_through_the_agents_box(db_url, monkeypatch, capsys,
                                                             switch_thread):  # fmt: skip
    ticket = _seed(db_url)
    box1 = switch_thread(Answer(after=0.1), registered=False)
    box2 = switch_thread(Answer(after=0.1))  # 1001 is registered here
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESL_HOST", f"127.0.0.1:{box1},127.0.0.1:{box2}")
    code, out, err = _cli(capsys, ticket)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (f"the agent's extension 1001 is registered on "
                                   f"127.0.0.1:{box2}: calling through it")  # fmt: skip
    assert out.splitlines()[-1] == f"ticket {ticket}: completed"
    first, second = (s.sim for s in switch_thread.started)
    assert [line.split("}", 1)[1] for line in second.inbound_commands("bgapi originate")] == [
        f"user/1001@{DOMAIN} &park()", f"loopback/{NUMBER}/{DOMAIN} &park()"]
    assert first.inbound_commands("bgapi") == []


def test_with_two_boxes_an_agent_registered_on_none_is_not_rung(db_url, monkeypatch, capsys,
                                                                switch_thread):  # fmt: skip
    ticket = _seed(db_url)
    box1 = switch_thread(Answer(after=0.1), registered=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESL_HOST", f"127.0.0.1:{box1},127.0.0.1:{down}")
    code, _, err = _cli(capsys, ticket)
    assert code == 1
    assert err.strip() == (f"callcontrol callback call: ticket {ticket}: the agent's extension "
                           "1001 cannot be rung: a FreeSWITCH box it could be on cannot be "
                           "asked")  # fmt: skip
    assert _status(db_url, ticket) == ("pending", 0)
    assert switch_thread.started[0].sim.inbound_commands("bgapi") == []
