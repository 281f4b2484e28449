"""A local HTTP server that plays Meta's Graph API for WhatsApp Cloud API messages: records
what it was sent and answers with the real response shapes — the accepted message, and the
errors (rate limit 130429, undeliverable number 131026, expired token 190)."""

from __future__ import annotations

import json
import socket
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callcontrol.config import load_settings

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "EAAG-secret-token-never-logged"
APP_SECRET = "app-secret-from-the-dashboard"
VERIFY_TOKEN = "verify-me-please"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(port: int, **env: str):
    return load_settings({
        "WHATSAPP_API_URL": f"http://127.0.0.1:{port}/v21.0",
        "WHATSAPP_TOKEN": TOKEN, "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_TEMPLATE_NAME": "retorno_disponivel", "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, **env})  # fmt: skip


def _error(message: str, code: int, *, subcode: int | None = None,
           details: str | None = None) -> dict[str, Any]:  # fmt: skip
    err: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                           "fbtrace_id": "AbCdEfGhIjKlMnOp"}  # fmt: skip
    if subcode is not None:
        err["error_subcode"] = subcode
    if details is not None:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": err}


RATE_LIMIT = (400, _error("(#130429) Rate limit hit", 130429,
                          details="Cloud API message throughput has been reached."))  # fmt: skip
TOO_MANY = (429, _error("(#130429) Rate limit hit", 130429))
UNDELIVERABLE = (400, _error("(#131026) Message Undeliverable.", 131026,
                             details="Message Undeliverable."))  # fmt: skip
EXPIRED_TOKEN = (401, _error("Error validating access token: Session has expired on Monday, "
                             "07-Dec-26 09:00:00 PST.", 190, subcode=463))  # fmt: skip
SERVER_ERROR = (500, _error("An unknown error has occurred.", 1))


class GraphApi:
    """``answers``: what the next sends get (status, body), in order; then success."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.sent: list[dict[str, Any]] = []  # bodies accepted
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # every request
        self.got = trio.Event()
        self._next = 0

    def app(self) -> Starlette:
        async def messages(request: Request) -> Response:
            body = json.loads(await request.body())
            self.requests.append((request.url.path, dict(request.headers), body))
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse(_error("Invalid OAuth access token.", 190), status_code=401)
            if self.answers:
                status, answer = self.answers.pop(0)
                return JSONResponse(answer, status_code=status)
            self._next += 1
            wamid = f"wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEj{self._next:04d}"
            self.sent.append(body)
            self.got.set()
            return JSONResponse({"messaging_product": "whatsapp",
                                 "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                 "messages": [{"id": wamid, "message_status": "accepted"}]})

        return Starlette(routes=[Route("/v21.0/{number_id}/messages", messages,
                                       methods=["POST"])])  # fmt: skip

    def wamids(self) -> list[str]:
        return [f"wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEj{i:04d}" for i in range(1, self._next + 1)]
