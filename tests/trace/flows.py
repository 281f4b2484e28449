"""The call flows recorded into ``tests/data/traces/replay/``: ``serve --record``'s recorder on
the real secretary flow, against the simulated FreeSWITCH and ``ScriptedRealtime``, on MockClock
(the model's websocket is in memory, the database runs inline).

The office's rows come from a seeded UUID source, so the recording and every replay of it find
the same domain, secretary and destinations. Regenerate the recordings (a fresh schema on the
test server, as the suite uses) with::

    PYTHONPATH=$PWD .venv/bin/python -m tests.trace.flows [FLOW ...]
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from callcontrol import generated
from callcontrol.ai.factory import open_provider
from callcontrol.ai.openai_live import ResolvedCall
from callcontrol.config import Settings, load_settings
from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.destinations.directory import Directory
from callcontrol.handoff.service import HandoffService
from callcontrol.media.unicast import UnicastPorts
from callcontrol.metrics import Metrics
from callcontrol.secretary import secretary_flow
from callcontrol.server import App, handle_call
from callcontrol.services import Services
from callcontrol.testing.database import (
    NIL_SECRETARY,
    STOCK,
    add_destination,
    add_domain,
    add_extension,
    add_voicemail,
    isolated_database_url,
    server_url_for_tests,
    set_secretary,
)
from callcontrol.testing.freeswitch import (
    Answer,
    Busy,
    FreeSwitchSim,
    Manual,
    NoAnswer,
    SimCall,
    Unregistered,
    open_freeswitch_sim,
)
from callcontrol.testing.realtime import (
    AwaitClient,
    AwaitToolOutput,
    CallerSaid,
    CallTool,
    Close,
    GoSilent,
    Say,
    ScriptedLive,
    ScriptedRealtime,
)
from callcontrol.trace.recorder import recording_wrapper
from tests.ports import unicast_ports

RECORDINGS = Path(__file__).parent.parent / "data" / "traces" / "replay"
OFFICE_SEED = 12
DOMAIN = "pbx.example.com"
SUPORTE = "user/1001@pbx.example.com"
# what the recordings' settings hold in place of a key; a test checks it is in no trace
API_KEY = "sk-test-never-in-a-trace"
CALLER = {"caller_number": "5511988887777", "caller_name": "Maria Souza"}

GREETING = [AwaitClient("response.create"), Say("Clínica Exemplo, bom dia!", ms=120)]
HANDOFF = CallTool("request_handoff", {"destination": "Suporte", "reason": "exame"})


def settings(**env: str) -> Settings:
    return load_settings({
        "REALTIME_URL": "ws://model.test/v1/realtime",
        "OPENAI_API_KEY": API_KEY,
        "VOICE_AI_SERVICE_TOKEN": "service-token-never-in-a-trace",
        "ESL_PASSWORD": "esl-password-never-in-a-trace",
        # a range no other test uses: replay binds the recorded ports again
        "CALLCONTROL_UNICAST_PORTS": unicast_ports(47700, 47799),
        **env,
    })  # fmt: skip


async def build_office(db: Database) -> Any:
    """The clinic's rows (tests/secretary/conftest.py's office, stock FusionPBX), the same
    UUIDs every time. Returns the domain's UUID."""
    with generated.using(generated.SeededSource(OFFICE_SEED)):
        domain_uuid = await add_domain(db, DOMAIN)
        await set_secretary(db, domain_uuid, company_name="Clínica Exemplo")
        await add_extension(db, domain_uuid, "1001")
        await add_voicemail(db, domain_uuid, "1001")
        await add_destination(db, domain_uuid, "Suporte", "extension", "1001",
                              department="Suporte técnico", ring_timeout_seconds=3)
        await add_destination(db, domain_uuid, "Atendimento", "ring_group", "9000",
                              is_default=True, ring_timeout_seconds=3)  # fmt: skip
    return domain_uuid


def services(config: Settings, db: Database, **overrides: Any) -> Services:
    directory = Directory(db)
    metrics = Metrics()
    fields: dict[str, Any] = {
        "settings": config,
        "db": db,
        "directory": directory,
        "handoff": HandoffService(directory, db, config, metrics),
        "metrics": metrics,
        "unicast_ports": UnicastPorts(config.unicast_ports),
        # the simulator keeps unicast state but sends no caller audio
        "media_lost_after": 60.0,
        **overrides,
    }
    return Services(**fields)


Drive = Callable[["Run"], Awaitable[None]]


@attrs.frozen
class Flow:
    name: str
    script: list[Any]
    drive: Drive
    endpoint: Any = None  # what SUPORTE does when rung
    live: bool = False  # GPT-Live (ScriptedLive), its delegation resolved by LIVE_RESOLVER


class FixedResolver:
    """GPT-Live's delegation resolver (the Responses API in production): always this call."""

    def __init__(self, call: ResolvedCall | None) -> None:
        self.call = call

    async def resolve(self, conversation: Any, tools: Any) -> ResolvedCall | None:
        await trio.lowlevel.checkpoint()
        return self.call


LIVE_RESOLVER = FixedResolver(
    ResolvedCall("request_handoff", '{"destination": "Suporte", "reason": "exame"}'))
LIVE_ENV = {"REALTIME_PROVIDER": "openai-live", "REALTIME_URL": "ws://model.test/v1/live/sessions"}


@attrs.define
class Run:
    sim: FreeSwitchSim
    call: SimCall
    model: ScriptedRealtime
    app: App


async def _tool_output_then_hang_up(run: Run) -> None:
    with trio.fail_after(30):
        await run.model.wait_for(lambda: bool(run.model.sessions and run.model.last.tool_outputs))
    await trio.sleep(1.0)  # the model says what the tool told it
    await run.call.hangup()


async def _agent_answers_then_hangs_up(run: Run) -> None:
    with trio.fail_after(30):
        await run.call.wait_for(lambda: run.call.bridged_to is not None)
    await trio.sleep(2.0)
    assert run.call.bridged_to is not None
    await run.sim.leg(run.call.bridged_to).hangup()


async def _caller_hangs_up_while_ringing(run: Run) -> None:
    with trio.fail_after(30):
        leg = await run.sim.wait_for_leg("sofia/internal/1001@")
        await leg.wait_for(lambda: leg.ringing)
    await trio.sleep(0.5)
    await run.call.hangup()


async def _bridged_then_caller_hangs_up(run: Run) -> None:
    """The fallback path puts the caller through to the default destination."""
    with trio.fail_after(30):
        await run.call.wait_for(lambda: run.call.bridged_to is not None)
    await trio.sleep(1.0)
    await run.call.hangup()


async def _sigterm_while_talking(run: Run) -> None:
    # what serve() does on SIGTERM: stop taking calls, let this one drain, then hand it back
    with trio.fail_after(30):
        await run.model.wait_for(lambda: bool(run.model.sessions and run.model.last.types))
    await trio.sleep(0.5)
    run.app.shutting_down.set()
    await trio.sleep(1.0)
    for session in list(run.app.active.values()):
        session.hand_back()


FLOWS = {
    flow.name: flow
    for flow in [
        Flow("answered", [*GREETING, HANDOFF, GoSilent()], _agent_answers_then_hangs_up,
             Answer(after=0.5)),
        Flow("busy", [*GREETING, CallerSaid("quero falar com o suporte"), HANDOFF,
                      AwaitToolOutput(timeout=15), Say("O Suporte está ocupado.", ms=100),
                      GoSilent()], _tool_output_then_hang_up, Busy()),
        Flow("no_answer", [*GREETING, HANDOFF, AwaitToolOutput(timeout=15),
                           Say("Ninguém atendeu.", ms=100), GoSilent()],
             _tool_output_then_hang_up, NoAnswer()),
        Flow("offline", [*GREETING, HANDOFF, AwaitToolOutput(timeout=15),
                         Say("O ramal está desligado.", ms=100), GoSilent()],
             _tool_output_then_hang_up, Unregistered()),
        Flow("caller_hangup_ringing", [*GREETING, HANDOFF, GoSilent()],
             _caller_hangs_up_while_ringing, Manual()),
        Flow("ai_failure", [*GREETING, Close(code=1011, reason="boom")],
             _bridged_then_caller_hangs_up),
        Flow("sigterm", [*GREETING, GoSilent()], _sigterm_while_talking),
        Flow("live_busy", [Say("Clínica Exemplo, bom dia!", ms=120),
                           CallerSaid("quero falar com o suporte"),
                           CallTool("request_handoff", {}, call_id="del_1"),
                           AwaitToolOutput(timeout=15), Say("Está ocupado.", ms=100),
                           GoSilent()], _tool_output_then_hang_up, Busy(), live=True),
    ]
}


async def record(
    flow: Flow,
    db: Database,
    domain_uuid: Any,
    directory: Path,
    *,
    model_class: type[ScriptedRealtime] = ScriptedRealtime,
    caller_audio: Any = None,
    **env: str,
) -> Path:
    """Run one flow through ``handle_call`` with serve's recorder; returns its trace."""
    resolver = None
    if flow.live:
        model_class, env, resolver = ScriptedLive, {**LIVE_ENV, **env}, LIVE_RESOLVER
    config = settings(**env)
    before = _traces(directory)
    async with (
        trio.open_nursery() as nursery,
        open_freeswitch_sim(domain=DOMAIN, latency=0.005) as sim,
    ):
        if flow.endpoint is not None:
            sim.endpoints[SUPORTE] = flow.endpoint
        model = model_class(flow.script, strict=False)
        async with model:  # yields the URL; the client reaches it in memory (open_stream)
            opened = functools.partial(open_provider, opener=model.open_stream,
                                       resolver=resolver)
            app = App(settings=config, flow=secretary_flow,
                      services=services(config, db, open_provider=opened),
                      wrap_stream=recording_wrapper(directory, settings=config,
                                                    inline=True))  # fmt: skip
            ours, theirs = trio.testing.memory_stream_pair()
            done = trio.Event()

            async def serve_one() -> None:
                try:
                    await handle_call(ours, app)
                finally:
                    done.set()

            nursery.start_soon(serve_one)
            variables = {"domain_uuid": str(domain_uuid), "domain_name": DOMAIN,
                         "voice_secretary_uuid": str(NIL_SECRETARY)}  # fmt: skip
            call = sim.attach_outbound(theirs, variables=variables,
                                       caller_audio=caller_audio, **CALLER)
            await flow.drive(Run(sim, call, model, app))
            with trio.fail_after(60):
                await done.wait()
    (path,) = _traces(directory) - before
    return path.rename(directory / f"{flow.name}.jsonl")


def _traces(directory: Path) -> set[Path]:
    return set(directory.glob("*.jsonl"))


async def record_in(url: str, name: str, directory: Path) -> Path:
    """Record one flow on a fresh office in the (empty, migrated) schema at ``url``."""
    async with open_database(url, PoolOptions(min_size=1, max_size=4, inline=True)) as db:
        return await record(FLOWS[name], db, await build_office(db), directory)


def main(argv: list[str]) -> int:
    """``[--real-clock] [--into DIR] [FLOW ...]``: on the real clock (what a real call's
    timing looks like) and elsewhere than the suite's recordings, for experiments."""
    real_clock = "--real-clock" in argv
    argv = [a for a in argv if a != "--real-clock"]
    directory = RECORDINGS
    if "--into" in argv:
        at = argv.index("--into")
        directory = Path(argv[at + 1])
        del argv[at:at + 2]
    names = argv or list(FLOWS)
    directory.mkdir(parents=True, exist_ok=True)
    with server_url_for_tests() as server:
        for name in names:
            (directory / f"{name}.jsonl").unlink(missing_ok=True)
            # each flow on its own fresh schema: every recording starts from the same rows
            with isolated_database_url(server, fusionpbx=STOCK) as url:
                clock = None if real_clock else trio.testing.MockClock(autojump_threshold=0)
                path = trio.run(record_in, url, name, directory, clock=clock)
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
