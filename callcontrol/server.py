"""``callcontrol serve``: the trio TCP server FreeSWITCH's ``socket`` application dials into.

One connection is one call. Each runs in its own nursery (``handle_call``); a malformed frame
or a crash in one call closes that call's socket and is logged, and every other call goes on.
On SIGTERM or SIGINT the listener stops taking calls, calls in progress get a grace period to
finish, and those still running are handed back to the dialplan: ``resume`` makes FreeSWITCH
continue with the actions after ``socket`` (our dialplan puts the fallback there), then ``exit``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from callcontrol.call import CallFlow, CallSession
from callcontrol.config import (
    ConfigError,
    HostPort,
    Settings,
    load_settings,
    parse_host_port,
    parse_workers,
    unknown_variables,
)
from callcontrol.esl import ConnectionClosed, ProtocolError
from callcontrol.esl._stream import EslSocketStream
from callcontrol.esl.connection import EslConnection
from callcontrol.esl.outbound import OutboundCall
from callcontrol.logs import configure_logging, get_logger
from callcontrol.orphans import kill_orphaned_legs
from callcontrol.startup import StartupError, database_failed, find, listen_failed
from callcontrol.workers import (
    SOLE,
    Supervisor,
    WorkerRole,
    check_workers,
    open_shared_listeners,
    tell_ready,
    watch_supervisor,
    worker_settings,
)

HANDSHAKE_SECONDS = 10.0
SHUTDOWN_GRACE_SECONDS = 30.0
# /readyz: the database must answer ``SELECT 1`` within this long.
READY_DATABASE_SECONDS = 2.0

StreamWrapper = Callable[[trio.abc.Stream], trio.abc.Stream]


async def answer_and_wait(ctx: Any) -> None:
    """The simplest flow: answer and keep the caller until they hang up (a smoke test)."""
    await ctx.call.answer()
    ctx.log.info("call.answered")
    await ctx.caller_gone.wait()


@attrs.define(eq=False)
class App:
    """The process-wide services each call can reach."""

    settings: Settings
    flow: CallFlow = answer_and_wait
    services: Any = None
    wrap_stream: StreamWrapper | None = None
    active: dict[int, CallSession] = attrs.field(factory=dict)
    shutting_down: trio.Event = attrs.field(factory=trio.Event)
    # A second SIGTERM/SIGINT: no more drain, every call is handed back now.
    stop_now: trio.Event = attrs.field(factory=trio.Event)
    shutdown_grace: float = SHUTDOWN_GRACE_SECONDS
    calls_handled: int = 0
    # the addresses serve() accepts calls on; empty before it listens and once it drains
    listening: list[str] = attrs.field(factory=list)
    ready_database_seconds: float = READY_DATABASE_SECONDS
    # what set the ESL listen address, for messages: the variable or ``--listen``
    listen_source: str = "CALLCONTROL_ESL_LISTEN"
    # the callback scanner and its FreeSWITCH connection (callbacks.service), once started
    callbacks: Any = None
    helpdesk: Any = None  # the outbox's helpdesk deliverer, when OMNIPLAY_API_URL is set
    # the API's own FreeSWITCH connections (availability.Boxes), once the API is up, and
    # what opens them on first use (``_watch_availability``)
    api_boxes: Any = None
    api_availability: Any = None
    whatsapp: Any = None  # the outbox's WhatsApp deliverer, when WHATSAPP_TOKEN etc. are set
    # the tickets' changes for the consoles (callbacks.events.TicketListener, with its hub),
    # in the process that runs the API
    events: Any = None
    # which of serve --workers N this process is (SOLE: no workers)
    role: WorkerRole = SOLE
    ready_fd: int | None = None  # where a worker tells its supervisor it listens

    @classmethod
    def for_replay(cls, flow: CallFlow = answer_and_wait) -> App:
        """An app with built-in defaults and no external services (trace replay, tests)."""
        return cls(settings=load_settings({}), flow=flow)


async def handle_call(stream: trio.abc.Stream, app: App) -> None:
    """Serve one outbound-socket connection (one call) until it ends."""
    if app.wrap_stream is not None:
        stream = app.wrap_stream(stream)
    # a recorder (serve --record) or a replay sees the call's AI frames and generated values
    context = getattr(stream, "call_context", None)
    with context() if context is not None else contextlib.nullcontext():
        await _handle_call(stream, app)


async def _handle_call(stream: trio.abc.Stream, app: App) -> None:
    log = get_logger("callcontrol.call")
    conn = EslConnection(stream, log=log)
    app.calls_handled += 1
    key = app.calls_handled
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            try:
                with trio.fail_after(HANDSHAKE_SECONDS):
                    call = await OutboundCall.handshake(conn)
            except (ConnectionClosed, ProtocolError, trio.TooSlowError) as exc:
                log.error("call.handshake_failed", error=repr(exc))
                nursery.cancel_scope.cancel()
                return
            log = log.bind(**call.describe())
            conn.log = log
            session = CallSession(call, app.flow, log, app.services, app.shutting_down)
            note = getattr(stream, "note_server", None)
            if note is not None:  # a recorder: what serve does to the call goes in its trace
                session.on_hand_back = functools.partial(note, "hand_back")
                nursery.start_soon(_note_when_set, app.shutting_down, note, "shutting_down")
                nursery.start_soon(_note_when_set, app.stop_now, note, "stop_now")
            app.active[key] = session
            try:
                await session.run()
            finally:
                with trio.move_on_after(3) as scope:
                    scope.shield = True
                    await call.exit()
                nursery.cancel_scope.cancel()
    except Exception:
        log.exception("call.crashed")
    finally:
        app.active.pop(key, None)
        if conn.close_reason.startswith("protocol error"):
            metrics = getattr(app.services, "metrics", None)
            if metrics is not None:
                metrics.protocol_errors.inc()
        await trio.aclose_forcefully(stream)


async def _note_when_set(event: trio.Event, note: Callable[[str], None], what: str) -> None:
    await event.wait()
    note(what)


async def serve(
    app: App,
    listen: HostPort,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept calls until ``app.shutting_down`` is set, then drain and hand back."""
    log = get_logger("callcontrol.server")
    async with trio.open_nursery() as calls:
        try:
            if app.role.count > 1:
                listeners = await open_shared_listeners(listen)
            else:
                listeners = await trio.open_tcp_listeners(listen.port, host=listen.host)
        except OSError as exc:
            raise listen_failed(
                exc, listen, app.listen_source, "for FreeSWITCH's socket connections",
                " (and the dialplan's socket application to the same address)",
            ) from exc  # fmt: skip
        log.info("server.listening", address=str(listen), worker=app.role.index,
                 workers=app.role.count)  # fmt: skip

        async def accept(listener: trio.SocketListener) -> None:
            async with listener:
                while True:
                    accepted = await listener.accept()
                    # the same socket, read and written with fewer steps (esl/_stream.py)
                    calls.start_soon(handle_call, EslSocketStream(accepted), app)

        async with trio.open_nursery() as acceptors:
            for listener in listeners:
                acceptors.start_soon(accept, listener)
            app.listening = [_address(listener) for listener in listeners]
            settle_collector()
            task_status.started(listeners)
            await app.shutting_down.wait()
            app.listening = []
            acceptors.cancel_scope.cancel()
        log.info("server.draining", active=len(app.active), grace_seconds=app.shutdown_grace)
        await _drain(app)
        for session in list(app.active.values()):
            log.info("server.hand_back", call_uuid=session.call.uuid,
                     reason="second signal" if app.stop_now.is_set() else "drain over")  # fmt: skip
            session.hand_back()
        # each handed-back call cleans up (kills its ringing legs) before its socket closes
    log.info("server.stopped")


# The young generation is collected after this many new container objects instead of
# CPython's 700. A call's handoff allocates a few thousand (frames, events, log entries), so at
# 700 about one path in fourteen between the tool call and the originate paid a collection,
# and that pause was the p99 (bench/handoff.py, N=500: the server thread's CPU p99 0.94-1.20 ms
# at 10 000 against 1.57-2.16 ms at 700, alternating runs on the 2-core VM). Few of those
# objects live long, so the collector's total work stays about the same: each collection walks
# more young objects, in one pause that falls on far fewer paths.
COLLECT_YOUNG_AFTER = 10_000


def settle_collector() -> None:
    """Once listening: everything loaded at start-up to the permanent generation, then rarer
    young collections.

    Freezing means a full collection walks only what the calls made, instead of pausing every
    call's audio (all on this one thread) for tens of milliseconds."""
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(COLLECT_YOUNG_AFTER, middle, old)


async def _drain(app: App) -> None:
    """Let calls finish for ``shutdown_grace`` (a second signal cuts it short). Calls bridged
    to an agent let go by themselves at once (``secretary.let_go_of_bridge``)."""

    async def all_finished() -> None:
        while app.active:
            await next(iter(app.active.values())).finished.wait()

    with trio.move_on_after(app.shutdown_grace):
        async with trio.open_nursery() as race:

            async def first(wait: Callable[[], Awaitable[None]]) -> None:
                await wait()
                race.cancel_scope.cancel()

            race.start_soon(first, all_finished)
            race.start_soon(first, app.stop_now.wait)


def _address(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def not_ready(app: App) -> dict[str, str]:
    """What keeps ``app`` from serving calls well, by name (``/readyz``); empty when ready.

    ``esl_listener``: FreeSWITCH's ``socket`` application can reach us (listening, not
    draining). ``database``: the pool answers ``SELECT 1`` in time. ``provider_key``: the AI has
    a key; without one every call takes the no-AI fallback path.
    """
    problems: dict[str, str] = {}
    if app.shutting_down.is_set():
        problems["esl_listener"] = "shutting down: not taking new calls"
    elif not app.listening:
        problems["esl_listener"] = "not listening for FreeSWITCH's socket connections yet"
    db = getattr(app.services, "db", None)
    if db is None:
        problems["database"] = "not open yet"
    else:
        problem = await _database_problem(db, app.ready_database_seconds)
        if problem:
            problems["database"] = problem
    boxes = watched_boxes(app)
    if boxes is not None and not any(c.connected for c in boxes.clients.values()):
        problems["freeswitch"] = (
            "no FreeSWITCH box of ESL_HOST answers on its Event Socket: callbacks wait, "
            "click-to-call fails, every extension's status is UNKNOWN"
        )
    settings = app.settings
    if not settings.openai_api_key:
        problems["provider_key"] = (
            f"OPENAI_API_KEY is not set (REALTIME_PROVIDER={settings.realtime_provider}): "
            "every call takes the no-AI fallback path"
        )
    return problems


def watched_boxes(app: App) -> Any:
    """The inbound connections /readyz reports (``availability.Boxes``): the callbacks' (kept
    open all the time), else, with CALLBACK_ENABLED=false, the API's own, opened now if no
    extension status had opened them yet (a probe asking is a use); None before either.
    The callbacks start before the calls' listener does: not listening yet, they may still."""
    if app.callbacks is not None:
        return app.callbacks.boxes
    if app.api_availability is not None and (app.listening or app.api_availability.started):
        app.api_availability.start()
        return app.api_boxes
    return None


def freeswitch_report(app: App) -> dict[str, Any]:
    """Each FreeSWITCH box of ``ESL_HOST`` for /readyz: connected or not, and since when."""
    boxes = watched_boxes(app)
    if boxes is None:
        return {}

    def since(client: Any) -> str | None:
        if client.since is None:
            return None
        return datetime.fromtimestamp(client.since, UTC).isoformat(timespec="seconds")

    return {"freeswitch": {name: {"connected": client.connected, "since": since(client)}
                           for name, client in boxes.clients.items()}}  # fmt: skip


async def _database_problem(db: Any, seconds: float) -> str | None:
    from callcontrol.db.database import DatabaseUnavailable  # noqa: PLC0415

    try:
        with trio.fail_after(seconds):
            await db.fetch_value("SELECT 1")
    except trio.TooSlowError:
        return f"no answer to SELECT 1 within {seconds:g} s"
    except DatabaseUnavailable as exc:
        return f"not answering: {exc}"
    return None


async def _watch_signals(app: App) -> None:
    """First SIGTERM/SIGINT: drain; a second one: hand every call back now."""
    log = get_logger("callcontrol.server")
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not app.shutting_down.is_set():
                log.info("server.shutdown_requested", signal=signal.Signals(signum).name,
                         active=len(app.active), grace_seconds=app.shutdown_grace)  # fmt: skip
                app.shutting_down.set()
                continue
            log.info("server.stop_now", signal=signal.Signals(signum).name,
                     active=len(app.active))  # fmt: skip
            app.stop_now.set()
            return


def build_app(settings: Settings, *, record_dir: Path | None = None) -> App:
    app = App(settings=settings)
    if record_dir is not None:
        from callcontrol.trace.recorder import recording_wrapper  # noqa: PLC0415

        app.wrap_stream = recording_wrapper(record_dir, settings=settings)
    return app


async def run_secretary_server(
    app: App,
    listen: HostPort,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the database and services, then serve calls with the AI secretary flow."""
    from callcontrol.db import (  # noqa: PLC0415
        DatabaseUnavailable,
        open_database,
        redact_url,
        resolve_database_url,
    )
    from callcontrol.secretary import secretary_flow  # noqa: PLC0415
    from callcontrol.services import open_services  # noqa: PLC0415

    log = get_logger("callcontrol.server")
    warn_about_settings(app.settings, log)
    async with AsyncExitStack() as stack:
        url = await resolve_database_url(app.settings.database_url)
        try:
            db = await stack.enter_async_context(open_database(url))
        except DatabaseUnavailable as exc:
            raise database_failed(exc, redact_url(url)) from exc
        nursery = await stack.enter_async_context(trio.open_nursery())
        pending = await _pending_migrations(db)
        primary = app.role.primary  # the one process that runs the API, scanner and outbox
        if pending:
            log.warning("server.migrations_pending", versions=pending,
                        fix="run `callcontrol migrate`")  # fmt: skip
        elif primary:
            await _load_spooled_requests(db, log, helpdesk=bool(app.settings.omniplay_api_url))
        async with open_services(app.settings, db, nursery) as services:
            app.services = services
            app.flow = secretary_flow
            if primary:
                app.events = _start_events(url, nursery, services.metrics)
                await nursery.start(_serve_api, app, services)
                await _start_callbacks(app, services, nursery, migrated=not pending, log=log)
            if app.role.count == 1:
                # before any call of ours can ring someone: what a killed run left ringing
                # (with workers the supervisor did it, before any of them started)
                await kill_orphaned_legs(app.settings)
            async with trio.open_nursery() as calls:
                listeners = await calls.start(serve, app, listen)
                tell_ready(app.ready_fd)
                task_status.started(listeners)
            # serve() returns once shutting_down is set and the calls are drained
        nursery.cancel_scope.cancel()


async def _start_callbacks(
    app: App, services: Any, nursery: trio.Nursery, *, migrated: bool, log: Any
) -> None:
    """The scanner, a sibling of the calls: only on an up-to-date schema (its queries need the
    tickets' columns) and when CALLBACK_ENABLED is on."""
    from callcontrol.callbacks.service import (  # noqa: PLC0415
        build_callbacks,
        run_callbacks,
    )

    deliverers = _start_deliverers(app, services, nursery, log) if migrated else []

    async def kick(_ticket: object) -> None:
        for deliverer in deliverers:
            deliverer.kick()

    notify = kick if deliverers else None
    if not app.settings.callback_enabled:
        log.info("callbacks.not_started", reason="CALLBACK_ENABLED is false")
        return
    if not migrated:
        log.info("callbacks.not_started", reason="migrations pending",
                 fix="run `callcontrol migrate`")  # fmt: skip
        return
    callbacks = build_callbacks(app.settings, services.db, services.metrics, notify=notify)
    app.callbacks = await nursery.start(run_callbacks, callbacks)


def _start_events(url: str, nursery: trio.Nursery, metrics: Any) -> Any:
    """The tickets' event hub, fed by the database's NOTIFYs: the changes every process and
    instance commits reach this API's consoles."""
    from callcontrol.callbacks.events import EventHub, TicketListener  # noqa: PLC0415
    from callcontrol.callbacks.service import keep_running  # noqa: PLC0415

    listener = TicketListener(url, EventHub(metrics=metrics))
    nursery.start_soon(keep_running, "events", listener.run)
    return listener


def _start_deliverers(app: App, services: Any, nursery: trio.Nursery, log: Any) -> list[Any]:
    """The outbox's deliverers that are configured; they deliver what the outbox holds, also
    when callbacks are off (rows already written)."""
    from callcontrol.callbacks.helpdesk import HelpdeskDeliverer  # noqa: PLC0415
    from callcontrol.callbacks.service import keep_running  # noqa: PLC0415
    from callcontrol.callbacks.whatsapp_delivery import (  # noqa: PLC0415
        WhatsAppDeliverer,
        sending_configured,
    )

    started: list[Any] = []
    if app.settings.omniplay_api_url:
        app.helpdesk = HelpdeskDeliverer(services.db, app.settings, metrics=services.metrics)
        nursery.start_soon(keep_running, "helpdesk", app.helpdesk.run)
        log.info("outbox.delivering", kind="helpdesk_webhook", url=app.helpdesk.url,
                 signed=bool(app.settings.omniplay_webhook_secret))  # fmt: skip
        started.append(app.helpdesk)
    if sending_configured(app.settings):
        app.whatsapp = WhatsAppDeliverer(services.db, app.settings, metrics=services.metrics)
        nursery.start_soon(keep_running, "whatsapp", app.whatsapp.run)
        log.info("outbox.delivering", kind="whatsapp", url=app.whatsapp.url,
                 template=app.settings.whatsapp_template_name)  # fmt: skip
        started.append(app.whatsapp)
    return started


def warn_about_settings(settings: Settings, log: Any) -> None:
    """One warning line per setting that lets ``serve`` start but makes calls worse."""
    if not settings.openai_api_key:
        log.warning(
            "server.provider_key_missing",
            problem=f"OPENAI_API_KEY is not set (REALTIME_PROVIDER={settings.realtime_provider})",
            effect="every call takes the no-AI fallback path: the fallback prompt, then the "
            "default destination",
            fix="set OPENAI_API_KEY in the environment file and restart",
        )
    if settings.omniplay_api_url and not settings.omniplay_webhook_secret:
        log.warning(
            "server.helpdesk_unsigned",
            problem="OMNIPLAY_API_URL is set without OMNIPLAY_WEBHOOK_SECRET",
            effect="the helpdesk cannot tell callcontrol's webhooks from anybody else's",
            fix="set OMNIPLAY_WEBHOOK_SECRET (the same secret on the helpdesk) and restart",
        )
    if settings.whatsapp_token and not settings.whatsapp_app_secret:
        log.warning(
            "server.whatsapp_replies_off",
            problem="WHATSAPP_TOKEN is set without WHATSAPP_APP_SECRET",
            effect="customers are sent the WhatsApp template, but their answers are refused "
            "(the webhook cannot check Meta's signature)",
            fix="set WHATSAPP_APP_SECRET (the Meta app's App secret) and restart",
        )


async def _serve_api(
    app: App, services: Any, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    from callcontrol.api.http import build_app as build_http_app  # noqa: PLC0415
    from callcontrol.api.http import serve_http  # noqa: PLC0415
    from callcontrol.api.whatsapp_webhook import WhatsAppWebhook  # noqa: PLC0415

    def health() -> dict[str, Any]:
        return {"active_calls": len(app.active), "shutting_down": app.shutting_down.is_set()}

    async def ready() -> dict[str, str]:
        return await not_ready(app)

    def report() -> dict[str, Any]:
        return freeswitch_report(app)

    async with trio.open_nursery() as nursery:
        availability = getattr(services, "availability", None)
        if availability is None:
            availability = _watch_availability(app.settings, nursery)
            app.api_boxes = availability.boxes
            app.api_availability = availability
        def kick_whatsapp() -> None:  # the deliverer starts after the API
            if app.whatsapp is not None:
                app.whatsapp.kick()

        whatsapp = WhatsAppWebhook(app.settings, kick=kick_whatsapp)
        http = build_http_app(services.metrics, app.settings.service_token, health, ready,
                              report=report,
                              db=services.db, availability=availability,
                              timezone=app.settings.tz, whatsapp=whatsapp,
                              calls=_ClickToCallOf(app),
                              retry_delay_seconds=app.settings.callback_retry_delay_seconds,
                              event_hub=app.events.hub if app.events is not None else None,
                              sign_in=sign_in_of(app.settings),
                              recordings_dir=app.settings.recordings_dir,
                              )  # fmt: skip
        await serve_http(http, app.settings.http_listen, task_status=task_status)
        nursery.cancel_scope.cancel()


def sign_in_of(settings: Settings) -> Any:
    """People's sign-in as the settings make it: off (and saying why) without a secret."""
    from callcontrol.api.sessions import SessionCodec, session_secret  # noqa: PLC0415
    from callcontrol.api.signin import SignIn  # noqa: PLC0415

    secret = session_secret(settings.session_secret, settings.service_token)
    if secret is None:
        # info, not a warning: without the token the API is closed anyway (serve says so)
        get_logger("callcontrol.api").info(
            "api.sign_in_off", why="neither CALLCONTROL_SESSION_SECRET nor "
            "VOICE_AI_SERVICE_TOKEN is set")  # fmt: skip
        return SignIn(None)
    codec = SessionCodec(secret, time.time, max_age_seconds=settings.session_hours * 3600)
    return SignIn(codec, secure_cookies=settings.session_cookie_secure)


class _ClickToCallOf:
    """The API's click-to-call: the callbacks' starter, started after the API (None before,
    and when CALLBACK_ENABLED is off: the API answers 503)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def initiate(self, request_uuid: str) -> str | None:
        if self.app.callbacks is None:
            from callcontrol.api.errors import ApiError  # noqa: PLC0415

            raise ApiError(503, "click_to_call_unavailable", "click-to-call is not running "
                           "(CALLBACK_ENABLED off, or migrations pending)")  # fmt: skip
        result: str | None = await self.app.callbacks.caller.initiate(request_uuid)
        return result


def _watch_availability(settings: Settings, nursery: trio.Nursery) -> Any:
    """FreeSWITCH's availability snapshot for the API's extension status: one inbound Event
    Socket connection per box of ``ESL_HOST``, opened when the first status is asked (a server
    nobody asks never connects), each reconnecting by itself; an extension that could be on a
    box that is down is UNKNOWN (``availability.Boxes``)."""
    from callcontrol.callbacks.availability import Boxes  # noqa: PLC0415

    boxes = Boxes.connect(settings, used_for="the API's extension status")

    class OnFirstUse:
        started = False

        def __init__(self) -> None:
            self.boxes = boxes

        def start(self) -> None:
            if not self.started:
                self.started = True
                nursery.start_soon(boxes.run_clients)
                nursery.start_soon(boxes.run_monitors)

        async def snapshot(self) -> Any:
            self.start()
            return await boxes.snapshot()

    return OnFirstUse()


async def _load_spooled_requests(db: Any, log: Any, *, helpdesk: bool) -> None:
    """Callback requests written to the spool while the database was down go in now."""
    from callcontrol.callbacks.requests import drain_spool  # noqa: PLC0415
    from callcontrol.db.database import DatabaseUnavailable  # noqa: PLC0415

    try:
        loaded = await drain_spool(db, helpdesk=helpdesk)
    except (DatabaseUnavailable, OSError, ValueError) as exc:
        log.error("server.spool_not_loaded", error=repr(exc))
        return
    if loaded:
        log.info("server.spool_loaded", requests=loaded)


async def _pending_migrations(db: Any) -> list[int]:
    from callcontrol.db.migrations import load_migrations  # noqa: PLC0415

    try:
        rows = await db.fetch_all("SELECT version FROM callcontrol_schema_migrations")
    except Exception:  # the table itself is missing: nothing applied yet
        return [m.version for m in load_migrations()]
    applied = {row["version"] for row in rows}
    return [m.version for m in load_migrations() if m.version not in applied]


def run_serve(args: argparse.Namespace) -> int:
    settings = _serve_settings(args)
    configure_logging(settings.log_format)
    log = get_logger("callcontrol.server")
    role = WorkerRole.parse(args.worker) if getattr(args, "worker", None) else None
    if role is None:  # the worker processes leave these to their supervisor
        for name, meant in unknown_variables(os.environ):
            hint = f"did you mean {meant}?" if meant else "not a setting (docs/configuration.md)"
            log.warning("config.unknown_variable", variable=name, ignored=True, hint=hint)
    if role is None and settings.workers > 1:
        check_workers(settings)
        return _run_supervisor(settings, args)
    if role is not None:
        structlog.contextvars.bind_contextvars(worker=role.index)
        settings = worker_settings(settings, role)
    record = Path(args.record) if getattr(args, "record", None) else None
    app = build_app(settings, record_dir=record)
    app.role = role or SOLE
    app.ready_fd = getattr(args, "ready_fd", None)
    if getattr(args, "listen", None):
        app.listen_source = "--listen"
    supervisor_fd = getattr(args, "supervisor_fd", None)

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, app)
            if supervisor_fd is not None:
                nursery.start_soon(watch_supervisor, supervisor_fd, app.shutting_down)
            await run_secretary_server(app, settings.esl_listen)
            nursery.cancel_scope.cancel()
        return 0

    return _run_explained(main, args)


def _run_explained(main: Callable[[], Awaitable[int]], args: argparse.Namespace) -> int:
    """``main``'s exit status; a failure is two lines on stderr and 1 (``--debug``: raised)."""
    try:
        return trio.run(main)
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        print(_explain(exc), file=sys.stderr)
        return 1


def _serve_settings(args: argparse.Namespace) -> Settings:
    """The configuration with serve's options applied (they win over the variables)."""
    settings = load_settings()
    changes: dict[str, Any] = {}
    if getattr(args, "listen", None):
        try:
            changes["esl_listen"] = parse_host_port(args.listen)
        except ValueError as exc:
            raise ConfigError([f"--listen {args.listen!r}: {exc}"]) from None
    if getattr(args, "workers", None):
        try:
            changes["workers"] = parse_workers(args.workers)
        except ValueError as exc:
            raise ConfigError([f"--workers {args.workers!r}: {exc}"]) from None
    return attrs.evolve(settings, **changes) if changes else settings


def _run_supervisor(settings: Settings, args: argparse.Namespace) -> int:
    passed: list[str] = []  # what each worker is started with, besides its role
    for option in ("record", "listen"):
        value = getattr(args, option, None)
        if value:
            passed += [f"--{option}", str(value)]
    if getattr(args, "debug", False):
        passed.append("--debug")
    return _run_explained(Supervisor(settings, passed).run, args)


def _explain(exc: BaseException) -> str:
    """Two lines for stderr: what stopped ``serve`` and what to do (no traceback)."""
    startup = find(exc, StartupError)
    if startup is not None:
        return startup.render()
    inner = exc
    while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
        inner = inner.exceptions[0]
    text = str(inner).strip().splitlines()
    detail = f"{type(inner).__name__}: {text[0]}" if text else type(inner).__name__
    return (
        f"callcontrol serve: stopped by an unexpected error: {detail}\n"
        "  fix: `callcontrol doctor` checks the setup; `callcontrol serve --debug` shows the "
        "traceback (include it in a bug report)"
    )
