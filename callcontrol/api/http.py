"""HTTP endpoints (Starlette under hypercorn's trio worker).

The two probes answer anyone, so a load balancer, systemd or a monitoring check can use them
without a secret: ``/healthz`` (liveness: the process is up) and ``/readyz`` (readiness: 200 when
calls can be served, else 503 with a JSON body naming what is not ready; both list each
FreeSWITCH box's inbound connection). They say nothing beyond that. Every other path needs the
service token (``VOICE_AI_SERVICE_TOKEN``), sent as ``Authorization: Bearer <token>``, compared
in constant time, or a person's session cookie (``POST /login`` with a FusionPBX username and
password; ``api.auth`` says who may see what). With neither configured those paths refuse
every request: an open endpoint is never the default.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callcontrol.api import (
    assets,
    callbacks,
    clicktocall,
    events,
    openapi,
    pages,
    signin,
    stats,
    whatsapp_webhook,
)
from callcontrol.api.auth import OPEN_PATHS, RequireToken, token_ok
from callcontrol.api.clicktocall import Initiator
from callcontrol.api.context import ApiContext
from callcontrol.api.errors import EXCEPTION_HANDLERS
from callcontrol.api.extension_status import SnapshotSource, extension_status
from callcontrol.api.report import report_csv
from callcontrol.callbacks.events import EventHub
from callcontrol.config import HostPort
from callcontrol.db.database import Database
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics
from callcontrol.startup import listen_failed

__all__ = ["OPEN_PATHS", "RequireToken", "build_app", "serve_http", "token_ok"]

_log = get_logger("callcontrol.api")

# What is not ready -> why (empty: ready); e.g. {"database": "not answering: ..."}
Readiness = Callable[[], Awaitable[dict[str, str]]]


def build_app(
    metrics: Metrics,
    token: str | None,
    health: Callable[[], dict[str, Any]] | None = None,
    ready: Readiness | None = None,
    *,
    report: Callable[[], dict[str, Any]] | None = None,
    db: Database | None = None,
    availability: SnapshotSource | None = None,
    timezone: ZoneInfo | None = None,
    whatsapp: whatsapp_webhook.WhatsAppWebhook | None = None,
    calls: Initiator | None = None,
    retry_delay_seconds: int = 60,
    event_hub: EventHub | None = None,
    sign_in: signin.SignIn | None = None,
    recordings_dir: Path | None = None,
) -> Starlette:
    """The whole HTTP side. ``db``: the callbacks endpoints' database (None: they answer 503);
    ``availability``: FreeSWITCH's snapshot (None: every extension is UNKNOWN); ``timezone``:
    what a date without an offset in a query means (CALLCONTROL_TIMEZONE); ``whatsapp``: the
    WhatsApp webhook's settings (None: it answers 503); ``calls``: click-to-call's starter
    (None: initiate answers 503); ``retry_delay_seconds``: CALLBACK_RETRY_DELAY_SECONDS;
    ``event_hub``: the tickets' changes for /api/events (None: it answers 503);
    ``sign_in``: people's sign-in (None: off, ``/login`` says why); ``recordings_dir``: the
    call recordings the console may play (CALLCONTROL_RECORDINGS_DIR; None: none);
    ``report``: what /readyz says besides (each FreeSWITCH box's connection), ready or not."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", **(health() if health else {})})

    async def readyz(_request: Request) -> Response:
        not_ready = await ready() if ready else {}
        more = report() if report else {}
        if not_ready:
            return JSONResponse({"status": "not ready", "not_ready": not_ready, **more},
                                status_code=503)  # fmt: skip
        return JSONResponse({"status": "ready", **more})

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi_endpoint(_request: Request) -> Response:
        return JSONResponse(openapi.document())

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/openapi.json", openapi_endpoint),
        Route("/api/extension/status/{extension}", extension_status),
        Route("/api/callbacks", callbacks.list_callbacks),
        Route("/api/callbacks/report.csv", report_csv),
        Route("/api/callbacks/{id}", callbacks.get_callback),
        Route("/api/callbacks/{id}/recording", callbacks.get_recording),
        Route("/api/callbacks/{id}/snooze", callbacks.snooze_callback, methods=["POST"]),
        Route("/api/callbacks/{id}/cancel", callbacks.cancel_callback, methods=["POST"]),
        Route("/api/callbacks/{id}/initiate", clicktocall.initiate_callback, methods=["POST"]),
        Route("/api/callback/originate", clicktocall.originate, methods=["POST"]),
        Route("/api/stats", stats.stats),
        Route("/api/events", events.events_endpoint),
        Route(signin.LOGIN, signin.post_login, methods=["POST"]),
        Route(signin.LOGOUT, signin.post_logout, methods=["POST"]),
        Route("/api/me", signin.api_me),
        Route(whatsapp_webhook.PATH, whatsapp_webhook.subscribe, methods=["GET"]),
        Route(whatsapp_webhook.PATH, whatsapp_webhook.receive, methods=["POST"]),
        # the pages people use (HTML, not in the OpenAPI document of the API)
        Route("/login", pages.login, methods=["GET"], include_in_schema=False),
        Route("/console", pages.console, methods=["GET"], include_in_schema=False),
        Route("/console/callbacks", pages.callbacks_page, methods=["GET"],
              include_in_schema=False),
        Route("/console/dashboard", pages.dashboard, methods=["GET"], include_in_schema=False),
        Route("/static/{name}", assets.static_file, methods=["GET"], include_in_schema=False),
    ]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    # "/api/callbacks/" is a 404 with a reason like any other unknown path, not a 307 with an
    # empty body to the path without the slash: one answer shape for machine clients
    app.router.redirect_slashes = False
    app.state.api = ApiContext(metrics, db, availability,
                               timezone or ZoneInfo("America/Sao_Paulo"), whatsapp, calls,
                               retry_delay_seconds, event_hub, recordings_dir)  # fmt: skip
    sign_in = sign_in or signin.SignIn(None)
    app.state.signin = sign_in
    app.add_middleware(RequireToken, token=token, signin=sign_in)
    return app


def _bind(listen: HostPort) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise listen_failed(
            exc, listen, "CALLCONTROL_HTTP_LISTEN", "for the HTTP API (/healthz, /readyz, /metrics)"
        ) from exc
    return sock


async def serve_http(
    app: Starlette,
    listen: HostPort,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    sock = _bind(listen)
    config = Config()
    # hypercorn takes over the socket we bound: a taken port fails here, with a clear message
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = None
    _log.info("api.listening", address=str(listen))
    await hypercorn_serve(app, config, task_status=task_status)  # type: ignore[arg-type]
