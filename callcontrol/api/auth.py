"""Who is asking, decided once for every request: the service token or a person's session.

Machine clients (a helpdesk, a dashboard, Prometheus) send
``Authorization: Bearer <VOICE_AI_SERVICE_TOKEN>``; it is compared in constant time
(``hmac.compare_digest``), so response timing tells nothing about how much of a guess was right,
and the request is the ``service`` principal. A request with an ``Authorization`` header is
judged by the token alone. Without one, a valid session cookie (``sessions``) admits the
request as the person it names (read again from FusionPBX: ``users.load_principal``), and a
POST/PUT/PATCH/DELETE must then carry the session's CSRF token (``X-CSRF-Token``, or the
``csrf_token`` field of a form), else 403. The principal is put on the scope
(``scope["state"]["principal"]``) for ``Principal.of(request)``.

Open to anyone: the probes ``/healthz`` and ``/readyz``, the sign-in (``/login``; the form is
told who is signed in already, to send them on) and the static assets (``/static/...``).
``/webhooks/whatsapp`` is checked by its own signature instead.
``/metrics`` is for the token only (it counts every tenant): a person gets 403. A page
(``/console...``) or ``/logout`` without a session is sent (303) to ``/login?next=<the page>``.
Any other path without a valid session: with no token configured, 503 saying so (an open API
is never the default); else a 401 whose body is the same whatever was wrong, so a client learns
nothing about the token. A signed-in person is served whether or not a service token is set:
sign-in needs only a session secret (``CALLCONTROL_SESSION_SECRET``, else derived from the
token; neither set: sign-in is refused, ``sessions.SIGN_IN_OFF``).

A request that reaches this middleware with a principal already on its scope was admitted by
the code embedding the app (the pages' tests do that); nothing a client sends can put one there.
"""

from __future__ import annotations

import hmac
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcontrol.api.errors import refusal
from callcontrol.api.pages import safe_next
from callcontrol.api.params import MAX_BODY_BYTES
from callcontrol.api.principal import SERVICE, Principal
from callcontrol.api.sessions import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, Session, csrf_ok
from callcontrol.api.signin import LOGIN, LOGOUT, SignIn
from callcontrol.api.users import load_principal
from callcontrol.db.database import DatabaseUnavailable
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")

# Paths that answer without the token: the probes, and signing in.
OPEN_PATHS = frozenset({"/healthz", "/readyz", LOGIN})
OPEN_PREFIXES = ("/static/",)
# Paths that check their callers themselves, by what those can send: Meta signs its webhook
# with the app secret and cannot send our token (api.whatsapp_webhook).
SIGNED_PATHS = frozenset({"/webhooks/whatsapp"})
# What only the service token may read (it spans every domain).
SERVICE_ONLY_PATHS = frozenset({"/metrics"})
# Pages a person opens in a browser: without a session, sent to the sign-in form.
PAGE_PREFIXES = ("/console",)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

TOKENLESS_REFUSAL = (
    "this server has no service token configured (VOICE_AI_SERVICE_TOKEN), so its API "
    "refuses every request; the administrator must set one"
)
UNAUTHORIZED = "send the service token as `Authorization: Bearer <VOICE_AI_SERVICE_TOKEN>`"
CSRF_REFUSAL = (
    f"a change made with a session must carry its CSRF token as the `{CSRF_HEADER}` header "
    f"(or the `{CSRF_FIELD}` form field); GET /api/me gives it"
)


def token_ok(expected: str | None, header: str | None) -> bool:
    if not expected or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), expected.encode())


def is_page(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PAGE_PREFIXES) or path == LOGOUT


def login_redirect(scope: Scope) -> RedirectResponse:
    """To the sign-in form, which sends the person back here (the pages' own redirect)."""
    target = scope["path"]
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    next_path = urllib.parse.quote(safe_next(target), safe="/")
    return RedirectResponse(f"{LOGIN}?next={next_path}", status_code=303,
                            headers={"Cache-Control": "no-store"})  # fmt: skip


def _admit(scope: Scope, principal: Principal, session: Session | None = None) -> None:
    state: dict[str, Any] = scope.setdefault("state", {})
    state["principal"] = principal
    state["session"] = session
    state["csrf_token"] = session.csrf_token if session else None


class RequireToken:
    """ASGI middleware: admits a request as the service (token) or a person (session cookie),
    or refuses it (401 / 503 / 403, or a redirect to the sign-in for pages)."""

    def __init__(self, app: ASGIApp, token: str | None, signin: SignIn | None = None) -> None:
        self.app = app
        self.token = token
        self.signin = signin or SignIn(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if isinstance(scope.get("state", {}).get("principal"), Principal):
            await self.app(scope, receive, send)  # admitted by the embedding code
            return
        if path == LOGIN and scope["method"] == "GET":
            await self._open_to_all(scope, receive, send, request)
            return
        if path in OPEN_PATHS or path in SIGNED_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        client = request.client.host if request.client else None
        header = request.headers.get("authorization")
        if header is None:
            try:
                person = await self._person(request)
            except DatabaseUnavailable as exc:
                _log.error("api.database_unavailable", path=path, error=str(exc))
                await refusal(503, "database_unavailable", "the database is not answering; "
                              "try again shortly")(scope, receive, send)  # fmt: skip
                return
            if person is not None:
                await self._as_person(scope, receive, send, *person)
                return
            if is_page(path):
                await login_redirect(scope)(scope, receive, send)
                return
        if not self.token:
            _log.warning("api.refused", path=path, client=client,
                         why="no service token configured")  # fmt: skip
            await refusal(503, "no_token_configured", TOKENLESS_REFUSAL)(scope, receive, send)
            return
        if not token_ok(self.token, header):
            _log.warning("api.refused", path=path, client=client,
                         why="missing or wrong token")  # fmt: skip
            response = refusal(401, "unauthorized", UNAUTHORIZED,
                               headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
            await response(scope, receive, send)
            return
        _admit(scope, SERVICE)
        await self.app(scope, receive, send)

    async def _open_to_all(self, scope: Scope, receive: Receive, send: Send,
                           request: Request) -> None:  # fmt: skip
        """The sign-in form: anyone, with who is signed in already when someone is."""
        try:
            person = await self._person(request)
        except DatabaseUnavailable:
            person = None
        if person is not None:
            _admit(scope, *person)
        await self.app(scope, receive, send)

    async def _person(self, request: Request) -> tuple[Principal, Session] | None:
        codec = self.signin.codec
        cookie = request.cookies.get(COOKIE_NAME)
        if codec is None or cookie is None:
            return None
        session = codec.decode(cookie)
        if session is None:
            _log.info("api.session_refused", path=request.url.path,
                      why="tampered, expired or signed out")  # fmt: skip
            return None
        db = request.app.state.api.db if hasattr(request.app.state, "api") else None
        if db is None:
            return None
        principal = await load_principal(db, session.user_uuid, session.domain_uuid)
        if principal is None:
            _log.info("api.session_refused", path=request.url.path,
                      why="user disabled or gone in FusionPBX")  # fmt: skip
            return None
        return principal, session

    async def _as_person(self, scope: Scope, receive: Receive, send: Send,
                         principal: Principal, session: Session) -> None:  # fmt: skip
        path = scope["path"]
        if path in SERVICE_ONLY_PATHS:
            await refusal(403, "forbidden", "only the service token may read this "
                          "(it spans every domain)")(scope, receive, send)  # fmt: skip
            return
        if scope["method"] in UNSAFE_METHODS:
            sent, receive = await _csrf_sent(scope, receive)
            if not csrf_ok(session, sent):
                _log.warning("api.csrf_refused", path=path, username=principal.username)
                await refusal(403, "csrf", CSRF_REFUSAL)(scope, receive, send)
                return
        _admit(scope, principal, session)
        await self.app(scope, receive, send)


async def _csrf_sent(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The CSRF token the request sent: its header, else a form's field (the body is read
    here, at most MAX_BODY_BYTES, and handed on unchanged)."""
    request = Request(scope)
    sent = request.headers.get(CSRF_HEADER)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent is not None or kind != "application/x-www-form-urlencoded":
        return sent, receive
    body = b""
    more = True
    while more and len(body) <= MAX_BODY_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
    fields: dict[str, list[str]] = {}
    if len(body) <= MAX_BODY_BYTES:
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=50)
        except ValueError:  # more fields than any form of ours has: no token read
            fields = {}
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": more}

    found = fields.get(CSRF_FIELD)
    return (found[0] if found else None), replay
