"""The demo's ``callback`` scenario: the whole cycle of a callback, through ``serve`` itself.

The call runs as in the other scenarios, but inside ``run_secretary_server`` (what
``callcontrol serve`` runs), so its scanner, availability monitor and helpdesk outbox run too,
on the simulated FreeSWITCH's inbound Event Socket. After the call: Suporte's phone registers
(``sofia::register``), the scanner finds the ticket due and its agent free and notifies; the
helpdesk webhook arrives, signed, at a small HTTP server the demo starts (``OMNIPLAY_API_URL``
points at it); the agent clicks "ligar" (click-to-call, as ``callcontrol callback call`` does);
agent and customer are bridged; the customer hangs up and the ticket is ``completed``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import time
from typing import Any, TextIO

import attrs
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callcontrol.api.http import serve_http
from callcontrol.callbacks import clicktocall
from callcontrol.callbacks.tickets import history
from callcontrol.config import HostPort, Settings
from callcontrol.db.database import Database
from callcontrol.demo import (
    CALLER,
    CALLER_NAME,
    DOMAIN,
    SCENARIO_SECONDS,
    Scenario,
    _report,
)
from callcontrol.demo_timeline import Beat, cut_off_problems
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.freeswitch import Answer, open_freeswitch_sim
from callcontrol.testing.realtime import ScriptedRealtime

AGENT = f"user/1001@{DOMAIN}"
CUSTOMER = f"loopback/+{CALLER}/{DOMAIN}"
TALK_SECONDS = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class Helpdesk:
    """The helpdesk's side (OmniPlay): checks each webhook's signature as the helpdesk must."""

    secret: str
    received: list[tuple[float, dict[str, Any], bool]] = attrs.field(factory=list)
    got: trio.Event = attrs.field(factory=trio.Event)

    def app(self) -> Starlette:
        async def callback(request: Request) -> Response:
            body = await request.body()
            stamp = request.headers.get("X-Callcontrol-Timestamp", "")
            expected = "v1=" + hmac.new(self.secret.encode(), stamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()  # fmt: skip
            verified = hmac.compare_digest(expected,
                                           request.headers.get("X-Callcontrol-Signature", ""))
            self.received.append((trio.current_time(), json.loads(body), verified))
            self.got.set()  # the demo replaces it once it has looked
            if not verified:
                return JSONResponse({"error": "bad signature"}, status_code=401)
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/api/voice/callback", callback, methods=["POST"])])


@attrs.define
class _After:
    """What happens after the call, in the story's words, timed on the call's clock."""

    t0: float
    beats: list[tuple[float, str]] = attrs.field(factory=list)

    def say(self, text: str) -> None:
        self.at(trio.current_time(), text)

    def at(self, t: float, text: str) -> None:
        self.beats.append((t, text))

    def story(self) -> list[Beat]:
        return [Beat(round(t - self.t0, 3), text) for t, text in self.beats]


async def run_cycle(scenario: Scenario, settings: Settings, db: Database,
                    variables: dict[str, Any], out: TextIO, verbose: bool) -> bool:  # fmt: skip
    """The call, then the callback's cycle; print the story; False when something went wrong."""
    secret = secrets.token_hex(16)  # OMNIPLAY_WEBHOOK_SECRET, shared with the helpdesk
    helpdesk = Helpdesk(secret)
    ticket: object = None
    script = ScriptedRealtime(scenario.script, strict=False)
    problems: list[str] = []
    hd_port = _free_port()
    async with trio.open_nursery() as outer:
        await outer.start(serve_http, helpdesk.app(), HostPort("127.0.0.1", hd_port))
        async with script as model_url, open_freeswitch_sim(domain=DOMAIN,
                                                           media_peers=True) as sim:
            sim.endpoints.update(scenario.endpoints)
            esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
            run_settings = attrs.evolve(
                settings, realtime_url=model_url, openai_api_key="demo-key",
                realtime_model="gpt-realtime", esl_host="127.0.0.1", esl_port=esl_port,
                http_listen=HostPort("127.0.0.1", _free_port()),
                omniplay_api_url=f"http://127.0.0.1:{hd_port}", omniplay_webhook_secret=secret,
                # only FreeSWITCH's events wake the scanner here, never its timer
                callback_check_interval_ms=3_600_000,
            )  # fmt: skip
            app = App(settings=run_settings)
            after = _After(0.0)
            with trio.move_on_after(SCENARIO_SECONDS) as scope:
                async with trio.open_nursery() as nursery:
                    listeners = await nursery.start(run_secretary_server, app,
                                                    HostPort("127.0.0.1", 0))  # fmt: skip
                    port = listeners[0].socket.getsockname()[1]
                    call = await sim.place_call(
                        "127.0.0.1", port, caller_number=CALLER, caller_name=CALLER_NAME,
                        destination_number="4000", variables=variables,
                    )  # fmt: skip
                    await call.wait_gone()
                    await call.wait_closed()
                    answered = [c.at for c in call.commands
                                if c.header("execute-app-name") == "answer"]  # fmt: skip
                    after.t0 = answered[0] if answered else trio.current_time()
                    ticket = await db.fetch_value(
                        "SELECT request_uuid::text FROM callcontrol_callback_requests"
                        " WHERE call_uuid = %s", (call.uuid,))  # fmt: skip
                    if ticket is None:
                        problems.append("  !! no callback ticket was stored")
                    else:
                        await _cycle(app, sim, db, str(ticket), helpdesk, after, problems)
                    app.shutting_down.set()
            if scope.cancelled_caught:
                problems.append("  !! the callback's cycle did not end in time")
        outer.cancel_scope.cancel()
    for session in script.sessions:
        problems += cut_off_problems(session.truncates, session.items)
        problems += [f"  !! the scripted AI {failure}" for failure in session.failures]
    ai_audio_ms = [ms for session in script.sessions for ms in session.items.values()]
    from callcontrol.demo import _legend  # noqa: PLC0415

    problems += await _report(call, db, _legend(settings), ai_audio_ms, out, verbose,
                              after.story())  # fmt: skip
    if ticket is not None:
        for line in await _ticket_lines(db, str(ticket)):
            print(line, file=out)
    for problem in problems:
        print(problem, file=out)
    return not problems


async def _status(db: Database, ticket: str) -> str:
    return str(await db.fetch_value("SELECT status FROM callcontrol_callback_requests"
                                    " WHERE request_uuid = %s", (ticket,)))  # fmt: skip


async def _cycle(app: App, sim: Any, db: Database, ticket: str, helpdesk: Helpdesk,
                 after: _After, problems: list[str]) -> None:  # fmt: skip
    scanner = app.callbacks.scanner
    after.say(f"ticket stored: status {await _status(db, ticket)} — Suporte is still busy, "
              "nobody is told yet")
    await trio.sleep(0.2)  # the agent finishes the other call
    sim.endpoints[AGENT] = Answer(after=0.3)
    sim.endpoints[CUSTOMER] = Answer(after=0.5)
    after.say("ramal 1001 fica livre: its phone registers again (FreeSWITCH sofia::register)")
    sim.register("1001", DOMAIN)
    while await _status(db, ticket) != "notified":
        await scanner.scanned.wait()
    # At the moment the scanner's transaction moved it, not when this loop saw it: the helpdesk
    # webhook is written in that same transaction and may arrive before this loop looks again.
    after.at(await _moved_at(db, ticket, "notified"),
             "the scanner sees ramal 1001 free and notifies Suporte: ticket notified")
    while not any(body.get("event") == "callback.notified" for _, body, _ in helpdesk.received):
        await helpdesk.got.wait()
        helpdesk.got = trio.Event()
    for at, body, verified in helpdesk.received:
        after.at(at, f"the helpdesk webhook arrives ({body.get('event')}: "
                     f"{body.get('customerName') or CALLER_NAME}, ramal "
                     f"{body.get('destinationExtension')}) — "
                     + ("signature verified" if verified else "!! signature NOT verified"))
        if not verified:
            problems.append("  !! a helpdesk webhook's signature did not verify")
    after.say("the agent sees the ticket in the helpdesk and clicks “ligar”")
    stream = await trio.open_tcp_stream(app.settings.esl_host, app.settings.esl_port)
    async with trio.open_nursery() as nursery, \
            clicktocall.session(stream, app.settings.esl_password) as conn:  # fmt: skip
        nursery.start_soon(_customer_talks_then_hangs_up, sim, after)
        def seen(step: str) -> None:
            after.say(f"the agent sees: {step.strip()}")

        c2c = clicktocall.ClickToCall(db, conn, app.settings, on_step=seen)
        reports = await c2c.call(ticket)
    after.say(f"click-to-call: {reports[-1].words}")


async def _customer_talks_then_hangs_up(sim: Any, after: _After) -> None:
    customer = await sim.wait_for_leg("loopback/+")
    after.say(f"Maria’s phone rings ({CUSTOMER})")
    await sim.wait_for(lambda: customer.bridged_to is not None)
    after.say("agent and Maria bridged (uuid_bridge) — em conversa")
    await trio.sleep(TALK_SECONDS)
    after.say("Maria hangs up")
    await customer.hangup()


async def _moved_at(db: Database, ticket: str, status: str) -> float:
    """When the ticket moved to ``status``, on the trio clock: its history row's ``changed_at``
    (``now()`` of the transaction that moved it). The database's clock is this machine's wall
    clock (the embedded PostgreSQL, or a server on this host)."""
    changed = next(row["changed_at"] for row in await history(db, ticket)
                   if row.get("to_status") == status)  # fmt: skip
    return float(changed.timestamp()) - (time.time() - trio.current_time())


async def _ticket_lines(db: Database, ticket: str) -> list[str]:
    out = [f"  stored: ticket {ticket} status {await _status(db, ticket)}"]
    for row in await history(db, ticket):
        out.append(f"  stored: history {row.get('from_status') or '—'} → {row.get('to_status')}"
                   f" by {row.get('changed_by')}")  # fmt: skip
    return out
