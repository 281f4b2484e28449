"""The session cookie a person gets on signing in: who they are, signed by the server.

The cookie is ``<payload>.<signature>``: the payload is base64url JSON (the user's and
domain's UUIDs, a CSRF token, when it was issued and when it expires), the signature is
HMAC-SHA256 of the payload under the session secret, compared in constant time. Nothing in it
is secret (the browser keeps it HttpOnly anyway); it cannot be changed without the secret. It
names the user only: what they may see (role, domain, extensions; still enabled?) is read from
FusionPBX on every request, so a user disabled or moved in FusionPBX loses access at once.

The secret is ``CALLCONTROL_SESSION_SECRET``; when unset it is derived from the service token
(HMAC-SHA256 of a fixed label under ``VOICE_AI_SERVICE_TOKEN``), so sessions survive a restart
and every process of the same configuration agrees. Neither set: no secret, sign-in is refused
with the reason (``SIGN_IN_OFF``). Changing the secret signs everyone out.

CSRF: each session has its own random token, in the payload; the page reads it from
``GET /api/me`` (or the ``<meta name="csrf-token">`` a page renders) and sends it as the
``X-CSRF-Token`` header (or the ``csrf_token`` field of a form) on every POST/PUT/PATCH/DELETE.
Sign-out records the session's token as revoked until its expiry (in memory: the API runs in
one process, worker 0), so a copy of the cookie is refused afterwards.

Sans-IO apart from the clock handed in: encoding, decoding and checking only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable

import attrs

COOKIE_NAME = "callcontrol_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
DEFAULT_MAX_AGE_SECONDS = 12 * 3600
_DERIVATION_LABEL = b"callcontrol session cookie v1"
# A cookie longer than this was not made here (ours are ~250 bytes).
MAX_COOKIE_BYTES = 1024

SIGN_IN_OFF = (
    "sign-in is off: this server has no session secret; set CALLCONTROL_SESSION_SECRET "
    "(or VOICE_AI_SERVICE_TOKEN, from which one is derived) and restart"
)


def session_secret(configured: str | None, service_token: str | None) -> bytes | None:
    """The key sessions are signed with: the configured one, else one derived from the
    service token (stable across restarts and processes), else None (sign-in off)."""
    if configured:
        return configured.encode()
    if service_token:
        return hmac.new(service_token.encode(), _DERIVATION_LABEL, hashlib.sha256).digest()
    return None


@attrs.frozen
class Session:
    user_uuid: uuid.UUID
    domain_uuid: uuid.UUID
    csrf_token: str
    issued_at: int
    expires_at: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.define(eq=False)
class SessionCodec:
    """Makes and reads session cookies under one secret; ``clock`` is the wall clock
    (seconds since the epoch), handed in so tests can move it."""

    secret: bytes = attrs.field(repr=False)
    clock: Callable[[], float]
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
    # csrf token (the session's id) -> when the session would have expired
    _revoked: dict[str, int] = attrs.field(factory=dict, init=False)

    def new(self, user_uuid: uuid.UUID, domain_uuid: uuid.UUID) -> tuple[Session, str]:
        now = int(self.clock())
        session = Session(user_uuid, domain_uuid, secrets.token_urlsafe(32), now,
                          now + self.max_age_seconds)  # fmt: skip
        return session, self.encode(session)

    def encode(self, session: Session) -> str:
        payload = _b64(json.dumps({
            "u": str(session.user_uuid), "d": str(session.domain_uuid),
            "c": session.csrf_token, "iat": session.issued_at, "exp": session.expires_at,
        }, separators=(",", ":")).encode())  # fmt: skip
        return f"{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode("ascii"), hashlib.sha256).digest())

    def decode(self, cookie: str | None) -> Session | None:
        """The session the cookie holds, or None: not ours (bad signature, tampered,
        malformed), expired, or signed out."""
        if not cookie or len(cookie) > MAX_COOKIE_BYTES or cookie.count(".") != 1 \
                or not cookie.isascii():  # fmt: skip
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(payload).encode(), signature.encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(uuid.UUID(data["u"]), uuid.UUID(data["d"]), str(data["c"]),
                              int(data["iat"]), int(data["exp"]))  # fmt: skip
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None
        now = self.clock()
        # issued in the future: not a clock we ever had (a minute's slack for a clock step)
        if now >= session.expires_at or session.issued_at > now + 60:
            return None
        if session.csrf_token in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        now = self.clock()
        for token, until in list(self._revoked.items()):
            if until <= now:
                del self._revoked[token]
        self._revoked[session.csrf_token] = session.expires_at


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf_token.encode(),
                                              str(sent).encode("utf-8", "replace"))  # fmt: skip
