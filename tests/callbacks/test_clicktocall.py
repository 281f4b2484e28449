"""Click-to-call (issue 8): a ticket becomes a real call, agent first by default. Real
PostgreSQL with the stock FusionPBX schema, the simulated FreeSWITCH's inbound Event Socket
(real ESL bytes over an in-memory stream) and MockClock: what is asserted is what FreeSWITCH
was sent, what became of its legs and what the ticket's rows say."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest
import structlog
import trio
import trio.testing

from callcontrol.callbacks.clicktocall import (
    ClickToCall,
    NotCallable,
    Refused,
    Result,
    session,
)
from callcontrol.callbacks.domain_settings import store
from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.tickets import history
from callcontrol.config import load_settings
from callcontrol.testing.database import add_destination, add_domain, add_extension
from callcontrol.testing.freeswitch import Answer, Busy, Manual, NoAnswer, open_freeswitch_sim
from callcontrol.testing.freeswitch._listener import Listener

DOMAIN = "clinica.example.com"
NUMBER = "+5511988887777"
AGENT = f"user/1001@{DOMAIN}"
CUSTOMER = f"loopback/{NUMBER}/{DOMAIN}"
SETTINGS = load_settings({})  # agent-first, 30 s ring, 2 retries 60 s apart, no gateway


@pytest.fixture
async def ticket(db) -> str:
    domain = await add_domain(db, DOMAIN)
    await add_extension(db, domain, "1001")
    suporte = await add_destination(db, domain, "Suporte", "extension", "1001")
    saved = await save_request(db, CallbackRequest(
        "callback", NUMBER, caller_name="Maria", reason="resultado do exame",
        domain_uuid=str(domain), destination_uuid=str(suporte), destination_name="Suporte"))
    return saved.request_uuid


@attrs.define
class Line:
    """The switch, our connection to it, and what it was sent."""

    sim: object
    conn: object
    listener: Listener

    def sent(self) -> list[str]:
        """The api/bgapi commands FreeSWITCH received, in order."""
        return [c.line for c in self.listener.commands if c.verb in ("api", "bgapi")]

    def originates(self) -> list[str]:
        return [line.removeprefix("bgapi originate ") for line in self.sent()
                if line.startswith("bgapi originate ")]


@asynccontextmanager
async def switch(**endpoints) -> AsyncIterator[tuple[object, Line]]:
    # a leg left behind would hang a wait: on MockClock the deadline comes at once instead
    with trio.fail_after(3600):
        async with _switch(**endpoints) as pair:
            yield pair


@asynccontextmanager
async def _switch(dials=None, **roles) -> AsyncIterator[tuple[object, Line]]:
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        for role, outcome in roles.items():
            sim.endpoints[{"agent": AGENT, "customer": CUSTOMER}[role]] = outcome
        for dial, outcome in (dials or {}).items():
            sim.endpoints[dial] = outcome
        sim.register("1001", DOMAIN)
        ours, theirs = trio.testing.memory_stream_pair()
        sim.nursery.start_soon(sim.attach_inbound, theirs)
        async with session(ours, "ClueCon") as conn:
            listener = next(lst for lst in sim.listeners if not lst.outbound)
            yield sim, Line(sim, conn, listener)


async def _row(db, ticket):
    return await db.fetch_one(
        "SELECT status, attempts, completed_at, scheduled_at, scheduled_at - now() AS wait"
        " FROM callcontrol_callback_requests WHERE request_uuid = %s", (ticket,))


async def _attempts(db, ticket):
    return await db.fetch_all(
        "SELECT attempt, call_order, agent_endpoint, customer_endpoint, agent_uuid::text,"
        " customer_uuid::text, outcome, hangup_cause, bridged_at IS NOT NULL AS bridged,"
        " ended_at IS NOT NULL AS ended, duration_seconds"
        " FROM callcontrol_callback_attempts WHERE request_uuid = %s ORDER BY attempt",
        (ticket,))


async def _moves(db, ticket):
    return [(h["from_status"], h["to_status"], h["changed_by"]) for h in await history(db, ticket)]


async def test_agent_then_customer_answer_one_bridge_and_the_ticket_is_completed(
    db, ticket, autojump_clock
):
    async with switch(agent=Answer(after=3), customer=Answer(after=5)) as (sim, line):
        reports = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _collect(reports, ClickToCall(db, line.conn, SETTINGS),
                                                ticket))
            customer = await sim.wait_for_leg("loopback/")
            await sim.wait_for(lambda: customer.bridged_to is not None)
            assert (await _row(db, ticket))["status"] == "in_progress"  # while they talk
            await trio.sleep(125)
            await customer.hangup()
        (report,) = reports[0]
        agent_uuid, customer_uuid = report.plan.agent.uuid, report.plan.customer.uuid
        assert customer.uuid == customer_uuid and sim.leg(agent_uuid).bridged_to is None
        assert line.originates() == [
            f"{{origination_uuid={agent_uuid},originate_timeout=30,ignore_early_media=true,"
            f"origination_caller_id_number={NUMBER},callcontrol_ticket={ticket},"
            "callcontrol_leg=agent,callcontrol_instance=callcontrol,"
            f"origination_caller_id_name='Retorno - resultado do exame'}}{AGENT} &park()",
            f"{{origination_uuid={customer_uuid},originate_timeout=30,ignore_early_media=true,"
            f"callcontrol_ticket={ticket},callcontrol_leg=customer,"
            f"callcontrol_instance=callcontrol}}{CUSTOMER} &park()",
        ]
        bridges = [c for c in line.sent() if c.startswith("api uuid_bridge")]
        assert bridges == [f"api uuid_bridge {agent_uuid} {customer_uuid}"]
        # the agent's phone showed the customer's number
        assert sim.leg(agent_uuid).variables["origination_caller_id_number"] == NUMBER
        assert not sim.channels  # nothing left behind
    assert report.result is Result.BRIDGED
    row = await _row(db, ticket)
    assert (row["status"], row["attempts"]) == ("completed", 1) and row["completed_at"]
    (attempt,) = await _attempts(db, ticket)
    assert attempt["outcome"] == "bridged" and attempt["bridged"] and attempt["ended"]
    assert attempt["call_order"] == "agent-first" and attempt["agent_endpoint"] == AGENT
    assert attempt["customer_endpoint"] == CUSTOMER and attempt["agent_uuid"] == agent_uuid
    assert 125 <= attempt["duration_seconds"] <= 126
    assert await _moves(db, ticket) == [
        (None, "pending", "secretary"),
        ("pending", "in_progress", "click-to-call"),
        ("in_progress", "completed", "click-to-call"),
    ]
    assert "they talked for 2 min 5 s" in report.words


@pytest.mark.parametrize(("stored", "env", "shown"), [
    # the agent's own outbound caller ID, as if they had dialled the customer themselves
    (("551130001000", "Clinica Exemplo"), {}, ("551130001000", "'Clinica Exemplo'")),
    # the administrator's number wins over the extension's
    (("551130001000", None), {"CALLBACK_CALLER_ID_NUMBER": "+551140004000",
                              "CALLBACK_CALLER_ID_NAME": "Central"}, ("+551140004000", "Central")),
    # what FusionPBX's table holds is not trusted into a dial string: a number that could
    # not be dialled safely is left out, a name is cut to its safe letters; the call goes on
    (("1000,origination_uuid=x}", "x'}"), {}, (None, "x")),
], ids=["extension", "configured", "hostile-in-table"])
async def test_the_customer_sees_the_company_s_number(db, ticket, autojump_clock, stored, env,
                                                      shown):  # fmt: skip
    number, name = stored
    await db.execute("UPDATE v_extensions SET outbound_caller_id_number = %s,"
                     " outbound_caller_id_name = %s WHERE extension = '1001'", (number, name))
    async with switch(agent=Answer(), customer=Busy()) as (_sim, line):
        report = await ClickToCall(db, line.conn, load_settings(env)).attempt(ticket)
        [_, customer_originate] = line.originates()
        if shown[0] is None:
            assert "origination_caller_id_number" not in customer_originate
        else:
            assert f",origination_caller_id_number={shown[0]}," in customer_originate
        assert f",origination_caller_id_name={shown[1]}}}" in customer_originate
    assert report.result is Result.CUSTOMER_BUSY


async def _collect(reports, c2c, ticket):
    reports.append(await c2c.call(ticket))


async def test_a_busy_agent_gets_no_customer_leg_and_a_retry_is_scheduled(
    db, ticket, autojump_clock
):
    async with switch(agent=Busy()) as (sim, line):
        with structlog.testing.capture_logs() as logs:
            report = await ClickToCall(db, line.conn, SETTINGS).attempt(ticket)
        assert len(line.originates()) == 1 and line.originates()[0].endswith(f"{AGENT} &park()")
        assert not sim.legs("loopback/")
        assert not any(c.startswith("api uuid_bridge") for c in line.sent())
    assert report.result is Result.AGENT_BUSY and report.decision.retry_in == 60
    row = await _row(db, ticket)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert 55 <= row["wait"].total_seconds() <= 60  # retried a minute later
    (attempt,) = await _attempts(db, ticket)
    assert (attempt["outcome"], attempt["hangup_cause"]) == ("agent_busy", "USER_BUSY")
    last = (await history(db, ticket))[-1]
    assert last["changed_by"] == "click-to-call"
    assert "busy (attempt 1 of 3); trying again in 60 s" in last["reason"]
    done = next(e for e in logs if e["event"] == "callbacks.c2c_attempt_done")
    assert done["outcome"] == "agent_busy" and done["status"] == "pending"


async def test_an_agent_busy_every_time_is_retried_after_the_delay_then_failed(
    db, ticket, autojump_clock
):
    async with switch(agent=Busy()) as (_sim, line):
        started = trio.current_time()
        reports = await ClickToCall(db, line.conn, SETTINGS).call(ticket)
        took = trio.current_time() - started
        assert len(line.originates()) == 3
    assert [r.result for r in reports] == [Result.AGENT_BUSY] * 3
    assert 120 <= took < 125  # two waits of CALLBACK_RETRY_DELAY_SECONDS
    row = await _row(db, ticket)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert [a["attempt"] for a in await _attempts(db, ticket)] == [1, 2, 3]
    assert (await history(db, ticket))[-1]["reason"].endswith("(attempt 3 of 3); no attempt left")


async def test_the_domain_s_retry_delay_and_the_ticket_s_own_attempts_apply(
    db, ticket, autojump_clock
):
    # the domain waits 5 minutes between two tries; the ticket was promised 2 attempts in all
    # when it was taken, whatever CALLBACK_RETRY_ATTEMPTS says now (3 here)
    domain = await db.fetch_value("SELECT domain_uuid::text FROM callcontrol_callback_requests")
    await store(db, domain, "CALLBACK_RETRY_DELAY_SECONDS", 300)
    await db.execute("UPDATE callcontrol_callback_requests SET max_attempts = 2")
    settings = load_settings({"CALLBACK_RETRY_ATTEMPTS": "3"})
    async with switch(agent=Busy()) as (_sim, line):
        started = trio.current_time()
        reports = await ClickToCall(db, line.conn, settings).call(ticket)
        took = trio.current_time() - started
        assert len(line.originates()) == 2
    assert [r.decision.retry_in for r in reports] == [300, None]
    assert 300 <= took < 305
    assert (await _row(db, ticket))["status"] == "failed"
    assert (await history(db, ticket))[-1]["reason"].endswith("(attempt 2 of 2); no attempt left")


async def test_a_customer_who_does_not_answer_ends_the_agent_leg_too(db, ticket, autojump_clock):
    async with switch(agent=Answer(after=2), customer=NoAnswer()) as (sim, line):
        report = await ClickToCall(db, line.conn, SETTINGS).attempt(ticket)
        agent = sim.leg(report.plan.agent.uuid)
        await agent.wait_gone()
        assert agent.hangup_cause == "NORMAL_CLEARING"  # our uuid_kill, not left parked
        assert f"api uuid_kill {agent.uuid} NORMAL_CLEARING" in line.sent()
        assert sim.leg(report.plan.customer.uuid).hangup_cause == "NO_ANSWER"
        assert not sim.channels
    assert report.result is Result.CUSTOMER_NO_ANSWER
    row = await _row(db, ticket)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    (attempt,) = await _attempts(db, ticket)
    assert (attempt["outcome"], attempt["hangup_cause"]) == ("customer_no_answer", "NO_ANSWER")


async def test_a_customer_who_never_answers_goes_to_review_at_the_last_attempt(
    db, ticket, autojump_clock
):
    await db.execute("UPDATE callcontrol_callback_requests SET attempts = 2")
    async with switch(agent=Answer(), customer=Busy()) as (_sim, line):
        report = await ClickToCall(db, line.conn, SETTINGS).attempt(ticket)
    assert report.result is Result.CUSTOMER_BUSY and report.decision.retry_in is None
    row = await _row(db, ticket)
    assert (row["status"], row["attempts"]) == ("needs_review", 3)


async def test_customer_first_rings_the_customer_then_the_agent(db, ticket, autojump_clock):
    settings = load_settings({"CALLBACK_CALL_ORDER": "customer-first",
                              "CALLBACK_GATEWAY": "vivo-sip",
                              "CALLBACK_RING_TIMEOUT_SECONDS": "20"})  # fmt: skip
    gateway = f"sofia/gateway/vivo-sip/{NUMBER}"
    with trio.fail_after(3600):
        await _customer_first(db, ticket, settings, gateway)


async def _customer_first(db, ticket, settings, gateway):
    async with _switch(dials={AGENT: Answer(after=4), gateway: Answer(after=1)}) as (sim, line):
        async with trio.open_nursery() as nursery:
            reports = []
            nursery.start_soon(_collect, reports, ClickToCall(db, line.conn, settings), ticket)
            agent = await sim.wait_for_leg("sofia/internal/1001@")
            await sim.wait_for(lambda: agent.bridged_to is not None)
            await agent.hangup()
        (report,) = reports[0]
    first, second = line.originates()
    assert first.endswith(f"{gateway} &park()") and "originate_timeout=20" in first
    assert second.endswith(f"{AGENT} &park()")
    bridge = next(c for c in line.sent() if c.startswith("api uuid_bridge"))
    assert bridge == f"api uuid_bridge {report.plan.agent.uuid} {report.plan.customer.uuid}"
    assert (await _row(db, ticket))["status"] == "completed"
    (attempt,) = await _attempts(db, ticket)
    assert attempt["call_order"] == "customer-first" and attempt["customer_endpoint"] == gateway


async def test_an_agent_who_is_not_free_now_is_not_rung(db, ticket, autojump_clock):
    async with switch() as (sim, line):
        sim.unregister("1001", DOMAIN)
        report = await ClickToCall(db, line.conn, SETTINGS).attempt(ticket)
        assert line.originates() == []
    assert report.result is Result.AGENT_UNAVAILABLE
    assert "was not free (offline)" in report.words
    assert (await _row(db, ticket))["status"] == "pending"


@pytest.mark.parametrize(("column", "value"), [
    ("phone_number", "+5511988887777,origination_caller_id_number=0800}user/9999"),
    ("phone_number", "5511988887777 &bridge(sofia/gateway/x/0900)"),
    ("extension", "1001@evil.example.com"),
    ("extension", "1001'${system(reboot)}"),
])  # fmt: skip
async def test_a_hostile_number_or_extension_is_refused_before_any_esl_command(
    db, ticket, autojump_clock, column, value
):
    await db.execute(f"UPDATE callcontrol_callback_requests SET {column} = %s", (value,))
    async with switch() as (_sim, line):
        with pytest.raises(Refused) as refused:
            await ClickToCall(db, line.conn, SETTINGS).attempt(ticket)
        assert line.sent() == []  # not even the availability check
    assert refused.value.error.field
    assert (await _row(db, ticket))["status"] == "needs_review"
    last = (await history(db, ticket))[-1]
    assert last["changed_by"] == "click-to-call" and "cannot be dialled safely" in last["reason"]
    assert await _attempts(db, ticket) == []


async def test_stopping_while_the_customer_rings_kills_both_legs(db, ticket, autojump_clock):
    async with switch(agent=Answer(), customer=Manual()) as (sim, line):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ClickToCall(db, line.conn, SETTINGS).attempt, ticket)
            customer = await sim.wait_for_leg("loopback/")
            nursery.cancel_scope.cancel()  # Ctrl-C, SIGTERM
        await sim.wait_for(lambda: not sim.channels)
        assert customer.hangup_cause == "ORIGINATOR_CANCEL"
        kills = [c for c in line.sent() if c.startswith("api uuid_kill")]
        assert len(kills) == 2
    row = await _row(db, ticket)
    assert (row["status"], row["attempts"]) == ("pending", 0)  # not counted
    (attempt,) = await _attempts(db, ticket)
    assert attempt["outcome"] == "cancelled" and attempt["ended"]


async def test_the_agent_hanging_up_while_the_customer_rings_cuts_the_customer_leg(
    db, ticket, autojump_clock
):
    async with switch(agent=Answer(), customer=Manual()) as (sim, line):
        async with trio.open_nursery() as nursery:
            reports = []

            async def attempt():
                reports.append(await ClickToCall(db, line.conn, SETTINGS).attempt(ticket))

            nursery.start_soon(attempt)
            customer = await sim.wait_for_leg("loopback/")
            await sim.leg(next(iter(sim.legs("sofia/internal/1001@"))).uuid).hangup()
        await customer.wait_gone()
        assert customer.hangup_cause == "ORIGINATOR_CANCEL"
    assert reports[0].result is Result.AGENT_HUNG_UP
    assert (await _row(db, ticket))["status"] == "pending"


async def test_a_closed_ticket_is_not_called(db, ticket, autojump_clock):
    await db.execute("UPDATE callcontrol_callback_requests SET status = 'completed'")
    async with switch() as (_sim, line):
        with pytest.raises(NotCallable, match="it is completed"):
            await ClickToCall(db, line.conn, SETTINGS).attempt(ticket)
        assert line.sent() == []
