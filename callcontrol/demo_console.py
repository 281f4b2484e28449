"""The demo after its scenarios: ``serve`` stays up with the agents' console until Ctrl-C.

What the scenarios stored stays in the demo's database (the callback scenario's ticket
completed with its history, the busy scenario's still pending), and ``run_secretary_server``
(what ``callcontrol serve`` runs: the HTTP API with the pages, the scanner, click-to-call)
serves it against a simulated FreeSWITCH on which Suporte's phone (ramal 1001) is registered
and answers, and so does Maria's: "Ligar agora" on the console really rings both and bridges
them, and Maria hangs up a little later. The demo's FusionPBX user for Suporte is created in
the demo's database so the admin can sign in; its name and password are printed with the URL.
"""

from __future__ import annotations

import secrets
import signal
import socket
from typing import TextIO

import attrs
import trio

from callcontrol.config import HostPort, Settings
from callcontrol.db.database import Database
from callcontrol.demo import CALLER, DOMAIN
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.freeswitch import Answer, FreeSwitchSim, open_freeswitch_sim
from callcontrol.testing.fusionpbx_users import add_user

AGENT_EXTENSION = "1001"
DEMO_USER = "suporte"
DEMO_PASSWORD = "demo"  # noqa: S105 (the demo's own throw-away database, printed anyway)
TALK_SECONDS = 20.0  # how long Maria talks when the console calls her back


@attrs.define(eq=False)
class Hold:
    """Keeps the console up: ``stop`` is set by Ctrl-C (or a test); ``up`` once its URL is
    printed, with the URL and the demo's service token."""

    stop: trio.Event = attrs.field(factory=trio.Event)
    up: trio.Event = attrs.field(factory=trio.Event)
    url: str | None = None
    token: str | None = None
    app: App | None = None


async def stop_on_signal(hold: Hold) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            hold.stop.set()
            return


def _listen_address(wanted: HostPort) -> HostPort:
    """CALLCONTROL_HTTP_LISTEN when it is free, else any free port on the same host."""
    with socket.socket() as probe:
        try:
            probe.bind((wanted.host, wanted.port))
        except OSError:
            probe.bind((wanted.host, 0))
            return HostPort(wanted.host, int(probe.getsockname()[1]))
    return wanted


async def keep_console_up(settings: Settings, db: Database, hold: Hold, out: TextIO) -> None:
    """Serve the demo's database with the console until ``hold.stop``."""
    domain = await db.fetch_value("SELECT domain_uuid FROM v_domains WHERE domain_name = %s",
                                  (DOMAIN,))  # fmt: skip
    # an agent: FusionPBX's group "user", answering ramal 1001; bcrypt at PHP's own cost
    await add_user(db, domain, DEMO_USER, DEMO_PASSWORD, extensions=[AGENT_EXTENSION], cost=10)
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        sim.endpoints[f"user/{AGENT_EXTENSION}@{DOMAIN}"] = Answer(after=1.0)
        sim.endpoints[f"loopback/+{CALLER}/{DOMAIN}"] = Answer(after=2.0)
        sim.register(AGENT_EXTENSION, DOMAIN)  # Suporte's phone is on: calls can ring it
        hold.token = secrets.token_urlsafe(18)
        listen = _listen_address(settings.http_listen)
        run_settings = attrs.evolve(settings, esl_host="127.0.0.1", esl_port=esl_port,
                                    http_listen=listen, service_token=hold.token,
                                    omniplay_api_url=None)  # fmt: skip
        app = hold.app = App(settings=run_settings)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_maria_hangs_up_after_talking, sim)
            async with trio.open_nursery() as server:
                await server.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                # from now on Ctrl-C stops the console (during the scenarios it stops them)
                nursery.start_soon(stop_on_signal, hold)
                hold.url = f"http://{listen.host}:{listen.port}"
                _tell(out, hold, domain)
                hold.up.set()
                await hold.stop.wait()
                app.shutting_down.set()  # serve drains and returns, as on SIGTERM
            nursery.cancel_scope.cancel()


def _tell(out: TextIO, hold: Hold, domain: object) -> None:
    print(f"\n== console: the agents' console is up at {hold.url}/console", file=out)
    print(f"    sign in as {DEMO_USER} / {DEMO_PASSWORD} (Suporte, ramal {AGENT_EXTENSION}, "
          f"domain {DOMAIN}): the busy scenario's callback is waiting there", file=out)
    print("    “Ligar agora” rings Suporte, then Maria, on the simulated FreeSWITCH", file=out)
    print(f"    the API: curl -H 'Authorization: Bearer {hold.token}' "
          f"'{hold.url}/api/callbacks?domain_uuid={domain}'", file=out)
    print("    Ctrl-C stops it (callcontrol demo --once does not wait)", file=out, flush=True)


async def _maria_hangs_up_after_talking(sim: FreeSwitchSim) -> None:
    talked: set[str] = set()

    def bridged() -> list[str]:
        return [leg.uuid for leg in sim.legs("loopback/+")
                if leg.bridged_to is not None and leg.uuid not in talked]  # fmt: skip

    async with trio.open_nursery() as nursery:
        while True:
            await sim.wait_for(lambda: bool(bridged()))
            for leg in bridged():
                talked.add(leg)
                nursery.start_soon(_hang_up_later, sim, leg)


async def _hang_up_later(sim: FreeSwitchSim, leg: str) -> None:
    await trio.sleep(TALK_SECONDS)
    await sim.leg(leg).hangup()
