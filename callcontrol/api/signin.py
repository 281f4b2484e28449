"""Signing in with a FusionPBX username (or the user's e-mail, ``users``) and password:
``POST /login`` (the form it is posted from, ``GET /login``, is ``pages.login``), ``POST
/logout`` and ``GET /api/me`` (who is signed in, and the CSRF token the page sends back).

``POST /login`` takes a form (``application/x-www-form-urlencoded``: ``username``,
``password``, optional ``domain_name`` and ``next``) or the same fields as a JSON object (any
other body). A form that succeeds is sent on (303) to ``next`` when that
is a path of this site, else to ``/console``; a JSON client gets 200 with what ``/api/me`` says.
Either way the answer carries the session cookie (``sessions``). A failure is the same answer
whether the user is unknown, disabled or the password wrong (401; the form again with the
message), is logged with the username and client but never the password, and counts towards
the limits on failures per account (5 in 5 minutes) and per client address (20: behind a
proxy all browsers share one), kept in PostgreSQL so every worker and instance shares them
(``ratelimit``): past one, 429 with ``Retry-After`` and no password is checked.

A cross-site form cannot sign a browser in to someone else's account: a POST another site's
page made (``Sec-Fetch-Site``, else ``Origin``) is refused (403). The password check (bcrypt,
~50 ms) runs in a thread, so the calls this process carries are not held up meanwhile.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs
import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from callcontrol.api import pages, params, passwords, ratelimit
from callcontrol.api.context import ApiContext
from callcontrol.api.errors import ApiError, refusal
from callcontrol.api.principal import Principal
from callcontrol.api.ratelimit import Limit, Refused
from callcontrol.api.sessions import (
    COOKIE_NAME,
    SIGN_IN_OFF,
    Session,
    SessionCodec,
)
from callcontrol.api.users import Candidate, find_candidate, load_principal
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")

LOGIN = pages.LOGIN_PATH
LOGOUT = "/logout"
MAX_USERNAME = 255
MAX_PASSWORD = 1024
WRONG = ("usuário ou senha incorretos (se o seu usuário existe em mais de um domínio, "
         "entre como usuario@dominio)")  # fmt: skip
WRONG_EN = ("wrong username or password (a username that more than one domain has is given "
            "as user@domain)")  # fmt: skip
ACCOUNT_LIMIT = Limit("account", 5)
ADDRESS_LIMIT = Limit("address", 20)
# A hash to check a password against when no user matched, so an unknown username takes as
# long as a wrong password (made once, lazily: bcrypt is imported on first use).
_DUMMY_HASH: list[str] = []


@attrs.define(eq=False)
class SignIn:
    """Sign-in's settings and state, kept on the app (``app.state.signin``). ``codec`` None:
    no session secret, sign-in is off. ``clock``: wall-clock seconds (the cookie's expiry and
    the failure window), handed in so tests can move it."""

    codec: SessionCodec | None
    secure_cookies: bool = False  # CALLCONTROL_SESSION_COOKIE_SECURE: Secure even over http
    # per username: FusionPBX users guessing at one account; per address: one client guessing
    # at many (higher: behind a reverse proxy every browser shares the proxy's address)
    account_limit: Limit = ACCOUNT_LIMIT
    address_limit: Limit = ADDRESS_LIMIT
    clock: Callable[[], float] = time.time

    @staticmethod
    def of(request: Request) -> SignIn:
        found: Any = getattr(request.app.state, "signin", None)
        return found if isinstance(found, SignIn) else SignIn(None)


def session_of(request: Request) -> Session | None:
    """The session the middleware admitted this request with (None: token or no one)."""
    found: Any = request.scope.get("state", {}).get("session")
    return found if isinstance(found, Session) else None


def csrf_token(request: Request) -> str | None:
    """The token a page must send back (``X-CSRF-Token`` or a form's ``csrf_token``); render it
    as ``<meta name="csrf-token" content="...">``. None without a session."""
    session = session_of(request)
    return session.csrf_token if session else None


def me(request: Request) -> dict[str, Any]:
    p = Principal.of(request)
    return {
        "username": p.username,
        "role": p.role.value,
        "domain_uuid": str(p.domain_uuid) if p.domain_uuid else None,
        "domain_name": p.domain_name,
        "extensions": list(p.extensions),
        "csrf_token": csrf_token(request),
    }


async def api_me(request: Request) -> Response:
    return JSONResponse(me(request))


def _is_form(request: Request) -> bool:
    """A browser's form (answered with pages and redirects); anything else is a JSON client."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() \
        == "application/x-www-form-urlencoded"  # fmt: skip


async def _fields(request: Request) -> dict[str, Any]:
    if not _is_form(request):
        return await params.json_object(request)
    body = await request.body()
    if len(body) > params.MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body must be at most {params.MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the form must be UTF-8") from None
    try:
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=20))
    except ValueError:
        raise ApiError(400, "bad_request", "the form has more fields than a sign-in") from None


def _field(fields: dict[str, Any], name: str, longest: int, *, required: bool = True) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, "bad_request", f"`{name}` is required")
        return None
    return params.text(value, name, max_length=longest)


def _cross_site(request: Request) -> bool:
    """Whether the POST came from another site's page. The browser's ``Sec-Fetch-Site`` says so
    whatever proxies did to ``Host``; a browser without it is judged by ``Origin`` against the
    host it asked for (``X-Forwarded-Host`` from a proxy, else ``Host``)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    asked = {request.headers.get("host", "").lower(),
             request.headers.get("x-forwarded-host", "").lower()} - {""}  # fmt: skip
    return urllib.parse.urlsplit(origin).netloc.lower() not in asked


def _refuse(request: Request, as_json: bool, status: int, error: str, reason: str,
            fields: dict[str, Any], headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    if as_json:
        return refusal(status, error, reason, headers=headers)
    page = pages.login_page(reason, str(fields.get("next") or pages.HOME),
                            username=str(fields.get("username") or "")[:MAX_USERNAME],
                            request=request, status_code=status)  # fmt: skip
    page.headers.update(headers or {})
    return page


async def post_login(request: Request) -> Response:
    signin = SignIn.of(request)
    as_json = not _is_form(request)
    if _cross_site(request):
        _log.warning("api.login_refused", why="cross-site origin", origin=request.headers.get(
            "origin"))  # fmt: skip
        return refusal(403, "cross_site", "a sign-in must come from this site's own page")
    fields = await _fields(request)
    if signin.codec is None:
        return _refuse(request, as_json, 503, "sign_in_off", SIGN_IN_OFF, fields)
    username = _field(fields, "username", MAX_USERNAME)
    password = _field(fields, "password", MAX_PASSWORD)
    domain = _field(fields, "domain_name", MAX_USERNAME, required=False)
    assert username is not None and password is not None
    client = request.client.host if request.client else "unknown"
    db = ApiContext.of(request).database()
    candidate = await find_candidate(db, username, domain, request.headers.get("host"))
    # the account itself when the name finds one, so no other spelling of it (case, user@domain,
    # the domain field) starts a count of its own
    user_key = str(candidate.user_uuid) if candidate else f"{username.lower()}|{domain or ''}"
    limits = ((signin.address_limit, client), (signin.account_limit, user_key))
    attempt = await ratelimit.reserve(db, limits, signin.clock())
    if isinstance(attempt, Refused):
        wait = attempt.retry_after
        _log.warning("api.login_limited", username=username, client=client, retry_after=wait)
        return _refuse(request, as_json, 429, "too_many_failures",
                       f"muitas tentativas; tente de novo em {wait} s",
                       fields, {"Retry-After": str(wait)})  # fmt: skip
    principal = None
    if await _password_ok(candidate, password):
        assert candidate is not None
        principal = await load_principal(db, candidate.user_uuid, candidate.domain_uuid)
    if principal is None or principal.user_uuid is None or principal.domain_uuid is None:
        # the try reserved above stays counted: it was a failure
        _log.warning("api.login_failed", username=username, client=client,
                     why="no such user" if candidate is None else "wrong password")  # fmt: skip
        reason = WRONG_EN if as_json else WRONG
        return _refuse(request, as_json, 401, "unauthorized", reason, fields)
    await ratelimit.succeeded(db, attempt, [(signin.account_limit, user_key)])
    session, cookie = signin.codec.new(principal.user_uuid, principal.domain_uuid)
    _log.info("api.login", username=principal.username, domain=principal.domain_name,
              role=principal.role.value, client=client)  # fmt: skip
    request.scope.setdefault("state", {}).update(principal=principal, session=session)
    if as_json:
        response: Response = JSONResponse(me(request))
    else:
        response = RedirectResponse(pages.safe_next(str(fields.get("next") or "")),
                                    status_code=303)  # fmt: skip
    _set_cookie(response, request, signin, cookie)
    return response


async def _password_ok(candidate: Candidate | None, password: str) -> bool:
    if candidate is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(passwords.hash_php("not a password of anyone"))
        await trio.to_thread.run_sync(passwords.check, password, _DUMMY_HASH[0])
        return False
    return await trio.to_thread.run_sync(passwords.check, password, candidate.password,
                                         candidate.salt)  # fmt: skip


def _set_cookie(response: Response, request: Request, signin: SignIn, cookie: str) -> None:
    assert signin.codec is not None
    response.set_cookie(COOKIE_NAME, cookie, max_age=signin.codec.max_age_seconds, path="/",
                        httponly=True, samesite="lax",
                        secure=signin.secure_cookies or request.url.scheme == "https")  # fmt: skip


async def post_logout(request: Request) -> Response:
    """Signs out: the cookie is cleared and the session refused from now on, even a copy."""
    signin = SignIn.of(request)
    session = session_of(request)
    if session is not None and signin.codec is not None:
        signin.codec.revoke(session)
        _log.info("api.logout", username=Principal.of(request).username)
    if _is_form(request):
        response: Response = RedirectResponse(LOGIN, status_code=303)
    else:
        response = JSONResponse({"status": "signed_out"})
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax",
                           secure=signin.secure_cookies or request.url.scheme == "https")
    return response

