"""Every refusal the API gives is ``{"error": <code>, "reason": <a sentence>}`` with a 4xx (or a
503 when the database is down): a client always learns what to fix, and nothing the API was sent
turns into a 500. Handlers raise ``ApiError``; Starlette's own refusals (no such route, wrong
method) and an unexpected crash get the same shape from ``EXCEPTION_HANDLERS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callcontrol.db.database import DatabaseUnavailable
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: str,
                 more: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.more = dict(more or {})  # fields a client acts on (shouldRetry, retryAfterSeconds)


def bad_request(reason: str) -> ApiError:
    return ApiError(400, "bad_request", reason)


def not_found(reason: str) -> ApiError:
    return ApiError(404, "not_found", reason)


def refusal(
    status: int,
    error: str,
    reason: str,
    headers: Mapping[str, str] | None = None,
    more: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse({"error": error, "reason": reason, **(more or {})}, status_code=status,
                        headers=headers)  # fmt: skip


_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return refusal(exc.status, exc.error, exc.reason, more=exc.more)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    reason = {404: f"no such endpoint: {request.method} {request.url.path} (see /openapi.json)",
              405: f"{request.method} is not allowed on {request.url.path}"}.get(
        exc.status_code, str(exc.detail))  # fmt: skip
    return refusal(exc.status_code, _CODES.get(exc.status_code, "bad_request"), reason,
                   headers=exc.headers)  # fmt: skip


async def _database_down(request: Request, exc: Exception) -> Response:
    _log.error("api.database_unavailable", path=request.url.path, error=str(exc))
    return refusal(503, "database_unavailable",
                   "the database is not answering; try again shortly")  # fmt: skip


async def _crash(request: Request, exc: Exception) -> Response:
    # A bug of ours: logged with the traceback, the client told nothing of the inside.
    _log.error("api.crashed", path=request.url.path, error=repr(exc), exc_info=exc)
    return refusal(500, "internal", "an internal error; it is logged on the server")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    DatabaseUnavailable: _database_down,
    Exception: _crash,
}
