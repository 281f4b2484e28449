"""``callcontrol demo``: whole calls through the real server, on embedded defaults.

Everything the server talks to is real or speaks the real wire protocol: PostgreSQL (embedded
unless ``DATABASE_URL`` is set; the demo works in a schema of its own, dropped at the end), a
simulated FreeSWITCH that dials into ``serve`` over TCP with real Event Socket bytes, and a
scripted AI that speaks the OpenAI Realtime websocket protocol. Each scenario prints what the
caller and the AI said and what the server asked FreeSWITCH to do, then what was stored.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import trio

from callcontrol.callbacks.phone import PhoneNumber, normalise
from callcontrol.config import HostPort, Settings, load_settings
from callcontrol.db import open_database, resolve_database_url
from callcontrol.db.database import Database
from callcontrol.demo_timeline import (
    Beat,
    Legend,
    call_story,
    cut_off_problems,
    empty_columns,
    invented_reasons,
    received_frames,
    render,
    stored_lines,
)
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
    Hear,
    Say,
    ScriptedRealtime,
    Step,
)

if TYPE_CHECKING:
    from callcontrol.demo_console import Hold

DOMAIN = "pbx.example.com"
CALLER = "5511988887777"
CALLER_NAME = "Maria Souza"
SCENARIO_SECONDS = 60.0
# How the story names the destinations the demo seeds.
DESTINATIONS = {
    "user/1001@pbx.example.com": "Suporte (ramal 1001)",
    "user/1002@pbx.example.com": "Financeiro (ramal 1002)",
    "loopback/9000/pbx.example.com": "Atendimento (grupo 9000)",
}
# A caller starts talking only after the AI's sentence has been played out to her, plus this.
LISTEN_MS = 300


@attrs.frozen
class Scenario:
    name: str
    title: str
    script: Sequence[Step]
    endpoints: dict[str, Any]
    model_down: bool = False
    # after the call: the extension frees, the agent is told, click-to-call (demo_cycle)
    cycle: bool = False
    # what the people on the line do once the call is under way
    act: Callable[[FreeSwitchSim, SimCall], Awaitable[None]] | None = None


def _ai(text: str, ms: int) -> list[Step]:
    """The AI says ``text`` (``ms`` of audio, sent at once as the real model does)."""
    return [Say(text, ms=ms)]


def _caller(text: str, *, after_ai_ms: int, speaks_ms: int = 900) -> list[Step]:
    """The caller listens to the AI's last ``after_ai_ms`` of audio to the end, then talks.

    ``Hear`` counts the caller's real audio frames arriving at the model, 20 ms each, on the
    real clock: the AI's audio, sent at once, is played out by then, so nothing is cut off."""
    return [Hear(ms=after_ai_ms + LISTEN_MS), CallerSpeechStarted(), Hear(ms=speaks_ms),
            CallerSpeechStopped(), CallerSaid(text)]  # fmt: skip


def _greet() -> list[Step]:
    return [AwaitClient("response.create"),
            *_ai("Clínica Exemplo, bom dia! Aqui é a Ana. Em que posso ajudar?", 1200)]


async def _agent_hangs_up_after_a_chat(sim: FreeSwitchSim, call: SimCall) -> None:
    await call.wait_for(lambda: call.bridged_to is not None)
    await trio.sleep(1.0)  # the caller and the agent talk
    assert call.bridged_to is not None
    await sim.leg(call.bridged_to).hangup()


async def _caller_talks_then_hangs_up(sim: FreeSwitchSim, call: SimCall) -> None:
    await call.wait_for(lambda: call.bridged_to is not None)
    await trio.sleep(1.0)
    await call.hangup()


EXAME = "resultado do meu exame"
BOLETO = "o boleto veio errado"

_NUMBER = normalise("11 98888-7777")
assert isinstance(_NUMBER, PhoneNumber)
# What the tool's output asks the AI to read back (callbacks/capture.py: confirmation).
READBACK = _NUMBER.readback("pt-BR")

SCENARIOS = (
    Scenario(
        "callback",
        "Suporte is busy; Maria accepts a callback; when Suporte is free it calls her back",
        [
            *_greet(),
            *_caller(f"Queria falar com o suporte sobre o {EXAME}.", after_ai_ms=1200),
            *_ai("Claro! Vou transferir você para o Suporte, um momento.", 900),
            CallTool("request_handoff", {"destination": "suporte", "reason": EXAME}),
            AwaitToolOutput(timeout=30),
            *_ai("O ramal do Suporte está ocupado agora. Quer que o Suporte ligue de volta "
                 "assim que estiver livre?", 1300),
            *_caller("Quero sim, o quanto antes, neste mesmo número.", after_ai_ms=1300),
            CallTool("schedule_callback", {"name": CALLER_NAME, "phone_number": "11 98888-7777",
                                           "preferred_time": "o quanto antes", "reason": EXAME}),
            AwaitToolOutput(),
            *_ai(f"Retorno anotado para o número {READBACK}. Está certo?", 1500),
            *_caller("Isso, está certo.", after_ai_ms=1500, speaks_ms=600),
            *_ai("Perfeito! O Suporte liga para você assim que estiver livre. Até logo!", 1000),
            CallTool("end_call", {"reason": "retorno agendado"}),
            AwaitToolOutput(),
            GoSilent(),
        ],
        {"user/1001@pbx.example.com": Busy()},
        cycle=True,
    ),
    Scenario(
        "busy",
        "Maria asks for Suporte; the extension is busy; she leaves a callback request",
        [
            *_greet(),
            *_caller(f"Queria falar com o suporte sobre o {EXAME}.", after_ai_ms=1200),
            *_ai("Claro! Vou transferir você para o Suporte, um momento.", 900),
            CallTool("request_handoff", {"destination": "suporte", "reason": EXAME}),
            AwaitToolOutput(timeout=30),
            *_ai("O ramal do Suporte está ocupado agora. Quer que eles liguem de volta?", 1100),
            *_caller("Quero sim, hoje à tarde, neste mesmo número.", after_ai_ms=1100),
            CallTool("schedule_callback", {"name": CALLER_NAME, "phone_number": "11 98888-7777",
                                           "preferred_time": "hoje à tarde", "reason": EXAME}),
            AwaitToolOutput(),
            *_ai("Anotado! O Suporte vai retornar hoje à tarde. Obrigada por ligar!", 1000),
            CallTool("end_call", {"reason": "retorno agendado"}),
            AwaitToolOutput(),
            *_ai("Até logo!", 400),
            GoSilent(),
        ],
        {"user/1001@pbx.example.com": Busy()},
    ),
    Scenario(
        "answered",
        "Maria asks for Financeiro; the agent answers on hold music, they talk, he hangs up",
        [
            *_greet(),
            *_caller(f"Oi, {BOLETO}, preciso falar com o financeiro.", after_ai_ms=1200),
            *_ai("Certo, vou chamar o Financeiro. Aguarde na linha, por favor.", 900),
            CallTool("request_handoff", {"destination": "financeiro", "reason": BOLETO}),
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


def _legend(settings: Settings) -> Legend:
    return Legend(CALLER_NAME, CALLER, DESTINATIONS, music_on_hold=settings.transfer_music_on_hold,
                  prompts={settings.fallback_prompt:
                           "a short prompt at once (the AI cannot be reached)",
                           settings.goodbye_prompt: "a goodbye tone"})  # fmt: skip


async def _run(scenario: Scenario, settings: Settings, db: Database, variables: dict[str, Any],
               out: TextIO, verbose: bool) -> bool:  # fmt: skip
    script = ScriptedRealtime(scenario.script, reject_status=503 if scenario.model_down else None,
                              strict=False)  # fmt: skip
    # media_peers: the caller's side streams real audio frames (silence) over unicast, so the
    # scripted AI can wait until what it said has been played out before the caller talks.
    async with script as model_url, open_freeswitch_sim(domain=DOMAIN, media_peers=True) as sim:
        sim.endpoints.update(scenario.endpoints)
        run_settings = attrs.evolve(settings, realtime_url=model_url, openai_api_key="demo-key",
                                    realtime_model="gpt-realtime")  # fmt: skip
        async with trio.open_nursery() as nursery:
            async with open_services(run_settings, db, nursery, metrics=Metrics()) as services:
                app = App(settings=run_settings, flow=secretary_flow, services=services)
                async with trio.open_nursery() as calls:
                    listeners = await calls.start(serve, app, HostPort("127.0.0.1", 0))
                    port = listeners[0].socket.getsockname()[1]
                    call = await sim.place_call(
                        "127.0.0.1", port, caller_number=CALLER, caller_name=CALLER_NAME,
                        destination_number="4000", variables=variables,
                    )  # fmt: skip
                    problems: list[str] = []
                    with trio.move_on_after(SCENARIO_SECONDS) as scope:
                        if scenario.act is not None:
                            calls.start_soon(scenario.act, sim, call)
                        await call.wait_gone()
                        await call.wait_closed()
                    if scope.cancelled_caught:
                        problems.append("  !! the call did not end in time")
                    app.shutting_down.set()
            nursery.cancel_scope.cancel()
    for session in script.sessions:
        problems += cut_off_problems(session.truncates, session.items)
        problems += [f"  !! the scripted AI {failure}" for failure in session.failures]
    ai_audio_ms = [ms for session in script.sessions for ms in session.items.values()]
    problems += await _report(call, db, _legend(settings), ai_audio_ms, out, verbose)
    for problem in problems:
        print(problem, file=out)
    return not problems


async def _report(call: SimCall, db: Database, legend: Legend, ai_audio_ms: list[float],
                  out: TextIO, verbose: bool, after: Sequence[Beat] = ()) -> list[str]:  # fmt: skip
    """Print the call's story (with ``after``: what followed it) and what was stored; return
    what went wrong."""
    row = await db.fetch_one(
        "SELECT outcome, handoff_status, handoff_destination, hangup_cause, caller_number,"
        " caller_name, secretary_uuid::text, instance, started_at, ended_at, transcript"
        " FROM callcontrol_calls WHERE call_uuid = %s", (call.uuid,))  # fmt: skip
    requests = await db.fetch_all(
        "SELECT kind, phone_number, preferred_time, reason, status"
        " FROM callcontrol_callback_requests WHERE call_uuid = %s", (call.uuid,))  # fmt: skip
    transcript = row["transcript"] if row is not None else []
    beats = call_story(call.commands, received_frames(call.sent), transcript, legend, call.uuid,
                       ai_audio_ms)  # fmt: skip
    beats = sorted([*beats, *after], key=lambda b: b.t)
    for line in render(beats, verbose=verbose):
        print(line, file=out)
    for line in stored_lines(row, requests):
        print(line, file=out)
    return [*(f"  !! stored {column} is empty" for column in empty_columns(row)),
            *invented_reasons(requests, transcript)]


async def run_scenarios(settings: Settings, names: Sequence[str], out: TextIO,
                        verbose: bool = False, scenarios: Sequence[Scenario] = (),
                        hold: Hold | None = None) -> bool:  # fmt: skip
    """Run the named scenarios (all when ``names`` is empty) of ``scenarios`` (the demo's);
    with ``hold``, then keep ``serve`` up with the console on what they stored until
    ``hold.stop`` (``demo_console``)."""
    server_url = await resolve_database_url(settings.database_url)
    where = "DATABASE_URL" if settings.database_url else "embedded PostgreSQL"
    print(f"database: {where} (a schema of its own, dropped at the end)", file=out)
    if verbose:
        print("ESL ← is a command FreeSWITCH received from callcontrol, "
              "ESL → what FreeSWITCH sent back", file=out)  # fmt: skip
    with isolated_database_url(server_url) as url:
        async with open_database(url) as db:
            variables = await _seed(db)
            ok = True
            for scenario in scenarios or SCENARIOS:
                if names and scenario.name not in names:
                    continue
                print(f"\n== {scenario.name}: {scenario.title}", file=out)
                if scenario.cycle:
                    from callcontrol.demo_cycle import run_cycle  # noqa: PLC0415 (it uses ours)

                    run = run_cycle(scenario, attrs.evolve(settings, database_url=url), db,
                                    variables, out, verbose)  # fmt: skip
                else:
                    run = _run(scenario, settings, db, variables, out, verbose)
                ok = await run and ok
            if hold is not None:
                from callcontrol.demo_console import keep_console_up  # noqa: PLC0415

                await keep_console_up(attrs.evolve(settings, database_url=url), db, hold, out)
    return ok


def _hold() -> Hold | None:
    """The console stays up after the scenarios, unless nobody could press Ctrl-C: a script or
    CI with stdin not a terminal gets the scenarios alone, as with ``--once``."""
    from callcontrol.demo_console import Hold  # noqa: PLC0415

    if not sys.stdin.isatty():
        print("stdin is not a terminal: the demo ends after its scenarios (as with --once); "
              "run it from a terminal to keep the console up")  # fmt: skip
        return None
    return Hold()


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
    hold = None if args.once else _hold()
    ok = trio.run(run_scenarios, settings, names, sys.stdout, args.verbose, (), hold)
    print("\ndemo finished" + ("" if ok else " with problems (the !! lines above)"))
    return 0 if ok else 1
