"""The demo is the README's first command: it must keep working, tell the truth, and read as
the story of each call — what a person would want to know, not the Event Socket."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
import trio

from callcontrol.config import load_settings
from callcontrol.demo import Scenario, run_scenarios
from callcontrol.demo_console import DEMO_PASSWORD, DEMO_USER, Hold
from callcontrol.testing.freeswitch import FreeSwitchSim, SimCall
from callcontrol.testing.realtime import AwaitClient, CallerSpeechStarted, GoSilent, Say
from tests.ports import unicast_ports
from tests.test_http_and_serve import _free_port

# The demo's calls bind the default 40000-40999, as a user's demo does; tests on other xdist
# workers (or another demo on this machine) make calls at the same time, and a switch-side port
# already bound means a call without caller audio.
PORTS = {"CALLCONTROL_UNICAST_PORTS": unicast_ports(47800, 47899)}


def beats(section: str) -> list[str]:
    """The story lines of one scenario, without their times."""
    return [re.sub(r"^\s+\d+\.\d\d  ", "", line) for line in section.splitlines()
            if re.match(r"^\s+\d+\.\d\d  ", line)]  # fmt: skip


def in_order(lines: list[str], *wanted: str) -> bool:
    """Each of ``wanted`` starts some line, in this order."""
    it = iter(lines)
    return all(any(line.startswith(w) for line in it) for w in wanted)


# One test per scenario, each running only the call it reads: the scenarios play their audio in
# real time (about 3 to 12 s each), so under xdist they run side by side.
@pytest.mark.parametrize("scenario", ["callback", "busy", "answered", "ai-down"])
async def test_each_call_reads_as_a_story_and_what_was_stored(database_url, scenario):
    out = io.StringIO()
    settings = load_settings({"DATABASE_URL": database_url, **PORTS})
    ok = await run_scenarios(settings, [scenario], out)
    text = out.getvalue()
    # a failure shows the story it read (a flaky order is otherwise hard to see)
    assert ok, text
    assert "!!" not in text and "ESL" not in text and "None" not in text, text
    [section] = text.split("\n== ")[1:]
    assert section.startswith(f"{scenario}: ")
    try:
        STORIES[scenario](section)
    except AssertionError as failed:
        failed.add_note(section)
        raise


def _story_callback(callback: str) -> None:
    assert in_order(
        beats(callback),
        "callcontrol answers the call from Maria Souza (+55 11 98888-7777)",
        "ringing Suporte (ramal 1001)… — the caller hears hold music",
        "Suporte does not answer: USER_BUSY",
        "AI: “O ramal do Suporte está ocupado agora. Quer que o Suporte ligue de volta",
        "caller: “Quero sim, o quanto antes, neste mesmo número.”",
        "callback request stored, before the AI confirms it",
        # the number read back as the tool's output gave it, and confirmed
        "AI: “Retorno anotado para o número onze, nove oito oito oito oito, sete sete sete sete."
        " Está certo?”",
        "caller: “Isso, está certo.”",
        "callcontrol hangs up (NORMAL_CLEARING)",
        "ticket stored: status pending",
        "ramal 1001 fica livre: its phone registers again (FreeSWITCH sofia::register)",
        "the scanner sees ramal 1001 free and notifies Suporte: ticket notified",
        "the helpdesk webhook arrives (callback.notified: Maria Souza, ramal 1001)"
        " — signature verified",
        "the agent sees the ticket in the helpdesk and clicks “ligar”",
        "the agent sees: ringing the agent (ramal 1001)",
        "the agent sees: ringing the customer (+5511988887777)",
        "agent and Maria bridged (uuid_bridge) — em conversa",
        "Maria hangs up",
        "click-to-call: agent and customer were connected",
    )
    stored = [" ".join(line.split()) for line in callback.splitlines() if "stored:" in line]
    assert re.fullmatch(r"stored: ticket [0-9a-f-]{36} status completed", stored[-5])
    assert stored[-4:] == [
        "stored: history — → pending by secretary",
        "stored: history pending → notified by scanner",
        "stored: history notified → in_progress by click-to-call",
        "stored: history in_progress → completed by click-to-call",
    ]


def _story_busy(busy: str) -> None:
    assert in_order(
        beats(busy),
        "callcontrol answers the call from Maria Souza (+55 11 98888-7777)",
        "AI: “Clínica Exemplo, bom dia! Aqui é a Ana. Em que posso ajudar?”",
        "caller: “Queria falar com o suporte sobre o resultado do meu exame.”",
        "the AI asks callcontrol to transfer the caller to “suporte”",
        "ringing Suporte (ramal 1001)… — the caller hears hold music",
        "Suporte does not answer: USER_BUSY",
        "handoff result: busy — the AI is told “O ramal do Suporte está ocupado agora.”",
        "AI: “O ramal do Suporte está ocupado agora. Quer que eles liguem de volta?”",
        "caller: “Quero sim, hoje à tarde, neste mesmo número.”",
        "callback request stored, before the AI confirms it",
        "AI: “Anotado!",
        "AI: “Até logo!”",
        "callcontrol hangs up (NORMAL_CLEARING)",
    )
    stored = [" ".join(line.split()) for line in busy.splitlines() if "stored:" in line]
    assert stored[:4] == [
        "stored: callcontrol_calls.outcome callback_requested",
        "stored: callcontrol_calls.handoff_status busy",
        "stored: callcontrol_calls.handoff_destination Suporte",
        "stored: callcontrol_calls.hangup_cause NORMAL_CLEARING",
    ]
    assert re.fullmatch(r"stored: callcontrol_calls.duration \d+\.\d s", stored[4])
    assert re.fullmatch(r"stored: callcontrol_calls.transcript \d+ lines", stored[5])
    assert stored[6:] == [
        "stored: callcontrol_calls.caller Maria Souza (5511988887777)",
        "stored: callcontrol_calls.secretary/instance the domain’s own secretary / callcontrol",
        # the reason is what the caller said, not invented by the demo
        "stored: callback request: number +5511988887777, preferred time “hoje à tarde”,"
        " reason “resultado do meu exame”, status pending",
    ]


def _story_answered(answered: str) -> None:
    assert in_order(
        beats(answered),
        "callcontrol answers the call from Maria Souza (+55 11 98888-7777)",
        "caller: “Oi, o boleto veio errado, preciso falar com o financeiro.”",
        "ringing Financeiro (ramal 1002)… — the caller hears hold music",
        "Financeiro atendeu — em conversa: they are talking, the AI has left the call",
        "Financeiro hangs up",
        "the caller hears a goodbye tone",
        "callcontrol hangs up (NORMAL_CLEARING)",
    )
    assert "stored: callcontrol_calls.outcome              bridged" in answered
    assert "stored: callcontrol_calls.hangup_cause         NORMAL_CLEARING" in answered


def _story_ai_down(ai_down: str) -> None:
    assert in_order(
        beats(ai_down),
        "callcontrol answers the call from Maria Souza (+55 11 98888-7777)",
        "the caller hears a short prompt at once (the AI cannot be reached)",
        "ringing Atendimento (grupo 9000)… — the caller hears hold music",
        "Atendimento atendeu — em conversa",
        "the caller hangs up",
    )
    assert "stored: callcontrol_calls.handoff_destination  Atendimento" in ai_down
    assert "stored: callcontrol_calls.hangup_cause         NORMAL_CLEARING" in ai_down


STORIES = {"callback": _story_callback, "busy": _story_busy, "answered": _story_answered,
           "ai-down": _story_ai_down}  # fmt: skip


async def _caller_hangs_up_soon(sim: FreeSwitchSim, call: SimCall) -> None:
    await trio.sleep(1.0)
    await call.hangup()


async def test_an_ai_sentence_the_caller_talks_over_fails_the_demo_loudly(database_url):
    # The old script: the caller's speech-start came right after the greeting was *sent*,
    # so the greeting was cut after a few milliseconds.
    cut = Scenario("cut", "the caller talks over the greeting", [
        AwaitClient("response.create"),
        Say("Clínica Exemplo, bom dia! Aqui é a Ana. Em que posso ajudar?", ms=1200),
        CallerSpeechStarted(),
        AwaitClient("conversation.item.truncate"),
        GoSilent(),
    ], {}, act=_caller_hangs_up_soon)  # fmt: skip
    out = io.StringIO()
    settings = load_settings({"DATABASE_URL": database_url, **PORTS})
    assert not await run_scenarios(settings, [], out, scenarios=[cut])
    assert re.search(r"!! the AI was cut off: item_\d+ stopped after \d+ of 1200 ms",
                     out.getvalue())  # fmt: skip


def test_the_demo_command_runs_a_chosen_scenario_and_shows_the_wire_when_verbose(
    database_url, monkeypatch, capsys
):
    from callcontrol.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CALLCONTROL_UNICAST_PORTS", PORTS["CALLCONTROL_UNICAST_PORTS"])
    assert main(["demo", "--scenario", "nonsense"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert main(["demo", "--scenario", "answered", "--verbose", "--once"]) == 0
    out = capsys.readouterr().out
    assert "== answered:" in out and "== busy:" not in out
    assert "ESL ← bgapi originate {origination_uuid=" in out
    assert "}user/1002@pbx.example.com &park()" in out
    assert "ESL ← sendmsg call-command: execute execute-app-name: answer" in out
    assert "ESL → event CHANNEL_BRIDGE" in out
    # the story is still there, between the wire lines
    assert "Financeiro atendeu — em conversa" in out
    assert "!!" not in out and "demo finished\n" in out


async def test_after_its_scenarios_the_demo_keeps_serve_up_with_the_callback_to_act_on(
    database_url,
):
    """Without --once: serve (API, pages, scanner) stays up on what the scenarios stored,
    the busy scenario's ticket waiting, until Ctrl-C (here: ``hold.stop``)."""
    out = io.StringIO()
    settings = load_settings({"DATABASE_URL": database_url, **PORTS,
                              "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{_free_port()}"})  # fmt: skip
    hold = Hold()
    async with trio.open_nursery() as nursery:
        done: list[bool] = []

        async def demo() -> None:
            done.append(await run_scenarios(settings, ["busy"], out, hold=hold))

        nursery.start_soon(demo)
        with trio.fail_after(90):
            await hold.up.wait()
        assert hold.url is not None and hold.app is not None
        domain = await _domain(hold)
        async with httpx.AsyncClient(base_url=hold.url, timeout=10,
                                     headers={"Authorization": f"Bearer {hold.token}"}) as api:
            listed = (await api.get("/api/callbacks", params={"domain_uuid": domain})).json()
            # Suporte's phone is registered and free here, so the scanner's first pass (at
            # serve's start) notifies it: this read sees the ticket before or after that pass
            [(status, *left)] = [(t["status"], t["caller_name"], t["reason"])
                                 for t in listed["items"]]  # fmt: skip
            assert status in ("pending", "notified")
            assert left == ["Maria Souza", "resultado do meu exame"]
            ticket = listed["items"][0]["id"]
            # the admin signs in as the printed user and is Suporte's agent
            async with httpx.AsyncClient(base_url=hold.url, timeout=None) as agent:
                signed = await agent.post("/login", data={"username": DEMO_USER,
                                                          "password": DEMO_PASSWORD})
                assert signed.status_code == 303 and signed.headers["location"] == "/console"
                me = (await agent.get("/api/me")).json()
                assert (me["role"], me["extensions"]) == ("agent", ["1001"])
                assert (await agent.get("/console")).status_code == 200
                # the agent's console stream: what happens to the ticket arrives live
                with trio.fail_after(30):
                    async with agent.stream("GET", "/api/events") as live:
                        lines = live.aiter_lines()
                        assert await anext(lines) == "retry: 3000"
                        snoozed = await api.post(f"/api/callbacks/{ticket}/snooze",
                                                 params={"domain_uuid": domain},
                                                 json={"minutes": 5})  # fmt: skip
                        assert snoozed.status_code == 200
                        data = [line async for line in _until_data(lines)][-1]
                assert json.loads(data.removeprefix("data: "))["id"] == ticket
        user = await hold.app.services.db.fetch_one(
            "SELECT u.password FROM v_users u WHERE u.username = %s", (DEMO_USER,))
        assert user is not None and user["password"].startswith("$2y$10$")
        hold.stop.set()
    assert done == [True]
    text = out.getvalue()
    assert f"the agents' console is up at {hold.url}/console" in text
    assert f"sign in as {DEMO_USER} / {DEMO_PASSWORD}" in text


async def _domain(hold: Hold) -> str:
    assert hold.app is not None
    return str(await hold.app.services.db.fetch_value(
        "SELECT domain_uuid FROM v_domains WHERE domain_name = 'pbx.example.com'"))


async def _until_data(lines):
    """The stream's lines up to and including the first ``data:`` line."""
    async for line in lines:
        yield line
        if line.startswith("data: "):
            return
