"""``callcontrol demo``: whole calls through the real server, on embedded defaults.

Everything the server talks to is real or speaks the real wire protocol: PostgreSQL (embedded
unless ``DATABASE_URL`` is set; the demo works in a schema of its own, dropped at the end), a
simulated FreeSWITCH that dials into ``serve`` over TCP with real Event Socket bytes, and a
scripted AI that speaks the OpenAI Realtime websocket protocol. Each scenario prints what the
caller and the AI said and what the server asked FreeSWITCH to do, then what was stored.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import attrs
import trio

from callcontrol.config import HostPort, Settings, load_settings
from callcontrol.db import open_database, resolve_database_url
from callcontrol.db.database import Database
from callcontrol.logs import configure_logging
from callcontrol.metrics import Metrics
from callcontrol.secretary import secretary_flow
from callcontrol.server import App, serve
from callcontrol.services import open_services
from callcontrol.testing.database import (
    add_destination,
    add_domain,
    add_extension,
    add_ring_group,
    isolated_database_url,
    set_secretary,
)
from callcontrol.testing.freeswitch import (
    Answer,
    Busy,
    FreeSwitchSim,
    SimCall,
    open_freeswitch_sim,
)
from callcontrol.testing.realtime import (
    AwaitClient,
    AwaitToolOutput,
    CallerSaid,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallTool,
    GoSilent,
    Say,
    ScriptedRealtime,
    Step,
)

DOMAIN = "pbx.example.com"
CALLER = "5511988887777"
SCENARIO_SECONDS = 60.0


@attrs.frozen
class Scenario:
    name: str
    title: str
    script: Sequence[Step]
    endpoints: dict[str, Any]
    model_down: bool = False
    # what the people on the line do once the call is under way
    act: Callable[[FreeSwitchSim, SimCall], Awaitable[None]] | None = None


def _greet() -> list[Step]:
    return [
        AwaitClient("response.create"),
        Say("Clínica Exemplo, boa tarde! Aqui é a Ana. Em que posso ajudar?", ms=600),
    ]


def _caller(text: str) -> list[Step]:
    return [CallerSpeechStarted(), CallerSpeechStopped(), CallerSaid(text)]


async def _agent_hangs_up_after_a_chat(sim: FreeSwitchSim, call: SimCall) -> None:
    await call.wait_for(lambda: call.bridged_to is not None)
    await trio.sleep(1.0)  # the caller and the agent talk
    assert call.bridged_to is not None
    await sim.leg(call.bridged_to).hangup()


async def _caller_talks_then_hangs_up(sim: FreeSwitchSim, call: SimCall) -> None:
    await call.wait_for(lambda: call.bridged_to is not None)
    await trio.sleep(1.0)
    await call.hangup()


SCENARIOS = (
    Scenario(
        "busy",
        "The caller asks for Suporte; the extension is busy; she leaves a callback request",
        [
            *_greet(),
            *_caller("Quero falar com o suporte, por favor."),
            Say("Claro! Vou transferir você para o Suporte, um momento.", ms=500),
            CallTool("request_handoff", {"destination": "suporte", "reason": "resultado de exame"}),
            AwaitToolOutput(timeout=30),
            Say("O ramal do Suporte está ocupado agora. Quer que eles liguem de volta?", ms=600),
            *_caller("Quero sim, hoje à tarde, no 11 98888-7777."),
            CallTool("schedule_callback", {"name": "Maria Souza", "phone_number": "11 98888-7777",
                                           "preferred_time": "hoje à tarde",
                                           "reason": "resultado de exame"}),
            AwaitToolOutput(),
            Say("Anotado! O Suporte vai retornar hoje à tarde. Obrigada por ligar!", ms=500),
            CallTool("end_call", {"reason": "retorno agendado"}),
            AwaitToolOutput(),
            Say("Até logo!", ms=300),
            GoSilent(),
        ],
        {"user/1001@pbx.example.com": Busy()},
    ),
    Scenario(
        "answered",
        "The caller asks for Financeiro; the agent answers on hold music; later hangs up first",
        [
            *_greet(),
            *_caller("Preciso falar com o financeiro."),
            Say("Certo, vou chamar o Financeiro. Aguarde na linha.", ms=500),
            CallTool("request_handoff", {"destination": "financeiro", "reason": "boleto"}),
            GoSilent(),
        ],
        {"user/1002@pbx.example.com": Answer(after=1.5)},
        act=_agent_hangs_up_after_a_chat,
    ),
    Scenario(
        "ai-down",
        "The AI service is down: a short prompt at once, then the default destination",
        [],
        {"loopback/9000/pbx.example.com": Answer(after=1.0)},
        model_down=True,
        act=_caller_talks_then_hangs_up,
    ),
)


async def _seed(db: Database) -> dict[str, Any]:
    # A stock FusionPBX: the domain's secretary in callcontrol's own table, destinations for
    # every secretary of the domain, and the shipped dialplan's nil secretary UUID.
    domain = await add_domain(db, DOMAIN)
    await set_secretary(db, domain, company_name="Clínica Exemplo")
    for number, name in (("1001", "Suporte"), ("1002", "Financeiro")):
        await add_extension(db, domain, number, name=name)
    await add_ring_group(db, domain, "9000", "Atendimento")
    await add_destination(db, domain, "Suporte", "extension", "1001",
                          aliases=["suporte técnico", "TI"], department="Suporte",
                          ring_timeout_seconds=15)  # fmt: skip
    await add_destination(db, domain, "Financeiro", "extension", "1002",
                          department="Financeiro", ring_timeout_seconds=15)  # fmt: skip
    await add_destination(db, domain, "Atendimento", "ring_group", "9000", is_default=True,
                          ring_timeout_seconds=15)  # fmt: skip
    return {"domain_uuid": str(domain), "domain_name": DOMAIN,
            "voice_secretary_uuid": "00000000-0000-0000-0000-000000000000"}  # fmt: skip


def _interesting(command: Any) -> str | None:
    """A FreeSWITCH command worth showing, in words."""
    headers = dict(command.headers)
    line: str = command.line
    if line == "sendmsg":
        kind = headers.get("call-command")
        if kind == "execute":
            app, arg = headers.get("execute-app-name"), headers.get("execute-app-arg", "")
            return f"execute {app} {arg}".strip()
        if kind == "hangup":
            return f"hangup {headers.get('hangup-cause', '')}"
        if kind == "unicast":
            return f"unicast audio ↔ 127.0.0.1:{headers.get('remote-port')}"
        return None
    for prefix in ("bgapi originate", "api uuid_bridge", "api uuid_kill", "api uuid_transfer",
                   "api uuid_break", "filter Unique-ID", "resume", "exit"):  # fmt: skip
        if line.startswith(prefix):
            return line
    return None


async def _run(scenario: Scenario, settings: Settings, db: Database, variables: dict[str, Any],
               out: TextIO) -> bool:  # fmt: skip
    script = ScriptedRealtime(scenario.script, reject_status=503 if scenario.model_down else None,
                              strict=False)  # fmt: skip
    async with script as model_url, open_freeswitch_sim(domain=DOMAIN) as sim:
        sim.endpoints.update(scenario.endpoints)
        run_settings = attrs.evolve(settings, realtime_url=model_url, openai_api_key="demo-key",
                                    realtime_model="gpt-realtime")  # fmt: skip
        async with trio.open_nursery() as nursery:
            async with open_services(run_settings, db, nursery, metrics=Metrics()) as services:
                services.media_lost_after = 60.0
                app = App(settings=run_settings, flow=secretary_flow, services=services)
                async with trio.open_nursery() as calls:
                    listeners = await calls.start(serve, app, HostPort("127.0.0.1", 0))
                    port = listeners[0].socket.getsockname()[1]
                    call = await sim.place_call(
                        "127.0.0.1", port, caller_number=CALLER, caller_name="Maria Souza",
                        destination_number="4000", variables=variables,
                    )  # fmt: skip
                    ok = True
                    with trio.move_on_after(SCENARIO_SECONDS) as scope:
                        if scenario.act is not None:
                            calls.start_soon(scenario.act, sim, call)
                        await call.wait_gone()
                        await call.wait_closed()
                    if scope.cancelled_caught:
                        print("  !! the call did not end in time", file=out)
                        ok = False
                    app.shutting_down.set()
            nursery.cancel_scope.cancel()
        await _report(call, db, out)
    return ok


async def _report(call: SimCall, db: Database, out: TextIO) -> None:
    start = call.commands[0].at if call.commands else 0.0
    lines: list[tuple[float, str]] = []
    for command in call.commands:
        text = _interesting(command)
        if text is not None:
            lines.append((command.at - start, f"callcontrol → FreeSWITCH  {text}"))
    row = await db.fetch_one(
        "SELECT outcome, handoff_status, handoff_destination, transcript"
        " FROM callcontrol_calls WHERE call_uuid = %s", (call.uuid,))  # fmt: skip
    if row is not None:
        for entry in row["transcript"]:
            who = {"caller": "caller      ", "assistant": "AI          "}.get(entry["role"])
            if who is not None:
                lines.append((float(entry["t"]), f"{who}  “{entry['text']}”"))
            elif entry["role"] == "tool":
                lines.append((float(entry["t"]), f"AI tool       {entry['text'][:110]}"))
    for t, text in sorted(lines, key=lambda item: item[0]):
        print(f"  {t:6.2f}s  {text}", file=out)
    print(f"  call ended: {call.hangup_cause or 'socket closed'}", file=out)
    if row is not None:
        print(f"  stored: outcome={row['outcome']} handoff={row['handoff_status']} "
              f"destination={row['handoff_destination']}", file=out)  # fmt: skip
    for request in await db.fetch_all(
        "SELECT kind, caller_name, phone_number, preferred_time, reason, status"
        " FROM callcontrol_callback_requests WHERE call_uuid = %s", (call.uuid,)):  # fmt: skip
        print(f"  callback request: {json.dumps(request, ensure_ascii=False)}", file=out)


async def run_scenarios(settings: Settings, names: Sequence[str], out: TextIO) -> bool:
    server_url = await resolve_database_url(settings.database_url)
    where = "DATABASE_URL" if settings.database_url else "embedded PostgreSQL"
    print(f"database: {where} (a schema of its own, dropped at the end)", file=out)
    with isolated_database_url(server_url) as url:
        async with open_database(url) as db:
            variables = await _seed(db)
            ok = True
            for scenario in SCENARIOS:
                if names and scenario.name not in names:
                    continue
                print(f"\n== {scenario.name}: {scenario.title}", file=out)
                ok = await _run(scenario, settings, db, variables, out) and ok
    return ok


def run_demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    # The ai-down scenario logs an error on purpose; show logs only when asked.
    configure_logging(settings.log_format,
                      level=logging.DEBUG if args.verbose else logging.CRITICAL)  # fmt: skip
    names = [] if args.scenario == "all" else args.scenario.split(",")
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        print(f"callcontrol demo: unknown scenario {sorted(unknown)}; "
              f"choose from {[s.name for s in SCENARIOS]}", file=sys.stderr)  # fmt: skip
        return 2
    print("callcontrol demo: calls through the real server, against a simulated FreeSWITCH "
          "(Event Socket over TCP) and a scripted AI (OpenAI Realtime protocol)")  # fmt: skip
    ok = trio.run(run_scenarios, settings, names, sys.stdout)
    print("\ndemo finished" + ("" if ok else " with problems (see above)"))
    return 0 if ok else 1
