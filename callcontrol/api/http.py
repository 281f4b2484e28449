"""HTTP endpoints (Starlette under hypercorn's trio worker).

The two probes answer anyone, so a load balancer, systemd or a monitoring check can use them
without a secret: ``/healthz`` (liveness: the process is up) and ``/readyz`` (readiness: 200 when
calls can be served, else 503 with a JSON body naming what is not ready). They say nothing
beyond that. Every other path needs the service token (``VOICE_AI_SERVICE_TOKEN``), sent as
``Authorization: Bearer <token>``, compared in constant time. With no token configured those
paths refuse every request: an open endpoint is never the default.
"""

from __future__ import annotations

import hmac
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from callcontrol.config import HostPort
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics
from callcontrol.startup import listen_failed

_log = get_logger("callcontrol.api")


def token_ok(expected: str | None, header: str | None) -> bool:
    if not expected or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), expected.encode())


# Paths that answer without the token: the probes.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})

# What is not ready -> why (empty: ready); e.g. {"database": "not answering: ..."}
Readiness = Callable[[], Awaitable[dict[str, str]]]


def build_app(
    metrics: Metrics,
    token: str | None,
    health: Callable[[], dict[str, Any]] | None = None,
    ready: Readiness | None = None,
) -> Starlette:
    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", **(health() if health else {})})

    async def readyz(_request: Request) -> Response:
        not_ready = await ready() if ready else {}
        if not_ready:
            return JSONResponse({"status": "not ready", "not_ready": not_ready}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(RequireToken, token=token)
    return app


class RequireToken:
    """ASGI middleware: 401 unless the request carries the service token or is a probe."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.url.path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if not token_ok(self.token, request.headers.get("authorization")):
            _log.warning("api.refused", path=request.url.path,
                         client=request.client.host if request.client else None)  # fmt: skip
            response = JSONResponse({"error": "unauthorized"}, status_code=401)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


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
