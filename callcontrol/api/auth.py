"""The service token: machine clients (a helpdesk, a dashboard, Prometheus) send
``Authorization: Bearer <VOICE_AI_SERVICE_TOKEN>``; it is compared in constant time
(``hmac.compare_digest``), so response timing tells nothing about how much of a guess was right.

The probes ``/healthz`` and ``/readyz`` answer anyone; ``/webhooks/whatsapp`` is checked by its
own signature instead. With no token configured every other path
is refused with 503 and says so (an open API is never the default); a missing or wrong token is
a 401 whose body is the same either way, so a client learns nothing about the token.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from callcontrol.api.errors import refusal
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")

# Paths that answer without the token: the probes.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# Paths that check their callers themselves, by what those can send: Meta signs its webhook
# with the app secret and cannot send our token (api.whatsapp_webhook).
SIGNED_PATHS = frozenset({"/webhooks/whatsapp"})
# The pages people open in a browser check who is asking themselves (no one signed in: a
# redirect to /login, never a JSON 401), and their static files are the same for everyone.
PAGE_PATHS = frozenset({"/login", "/console"})
PAGE_PREFIXES = ("/console/", "/static/")


def is_page(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)

TOKENLESS_REFUSAL = (
    "this server has no service token configured (VOICE_AI_SERVICE_TOKEN), so its API "
    "refuses every request; the administrator must set one"
)
UNAUTHORIZED = "send the service token as `Authorization: Bearer <VOICE_AI_SERVICE_TOKEN>`"


def token_ok(expected: str | None, header: str | None) -> bool:
    if not expected or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), expected.encode())


class RequireToken:
    """ASGI middleware: 401 (503 with no token configured) unless the request carries the
    service token or is a probe."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if path in OPEN_PATHS or path in SIGNED_PATHS or is_page(path):
            await self.app(scope, receive, send)
            return
        client = request.client.host if request.client else None
        if not self.token:
            _log.warning("api.refused", path=request.url.path, client=client,
                         why="no service token configured")  # fmt: skip
            await refusal(503, "no_token_configured", TOKENLESS_REFUSAL)(scope, receive, send)
            return
        if not token_ok(self.token, request.headers.get("authorization")):
            _log.warning("api.refused", path=request.url.path, client=client,
                         why="missing or wrong token")  # fmt: skip
            response = refusal(401, "unauthorized", UNAUTHORIZED,
                               headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
