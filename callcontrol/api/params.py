"""What a request may say, checked before anything reaches the database: each helper returns
the value typed or raises a 400 ``ApiError`` that names the parameter and what it must be.

Text that will be stored (a cancel reason) is refused when it holds NUL or other control
characters PostgreSQL or a spreadsheet would choke on; identifiers are matched exactly by
pattern, so a hostile path or query string is a 400, never a query error.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from starlette.requests import Request

from callcontrol.api.errors import ApiError, bad_request
from callcontrol.api.principal import Principal

# FusionPBX extensions are mostly digits, but letters and a few signs are allowed there.
EXTENSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.+-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_BODY_BYTES = 16 * 1024


def required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if value is None or value == "":
        raise bad_request(f"`{name}` is required")
    return value


def parse_uuid(text: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(text[:37])  # a longer text is not a UUID either
    except ValueError:
        raise bad_request(f"`{name}` must be a UUID such as "
                          "a1b2c3d4-0000-4000-8000-000000000000") from None  # fmt: skip


def domain_uuid(request: Request) -> uuid.UUID:
    """The one FusionPBX domain every data endpoint is scoped to: the service names it
    (``domain_uuid``, required); a person's is their own (``domain_uuid`` may be left out, and
    naming another is a 404, ``Principal.domain``)."""
    text = request.query_params.get("domain_uuid")
    asked = parse_uuid(text, "domain_uuid") if text else None
    return Principal.of(request).domain(asked)


def extension(text: str, name: str = "extension") -> str:
    if not EXTENSION.fullmatch(text):
        raise bad_request(f"`{name}` must be an extension number such as 1001 (letters, digits "
                          "and _ . + - , at most 32)")  # fmt: skip
    return text


def integer(query: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
        raise bad_request(f"`{name}` must be a whole number from {low} to {high}")
    return int(text)


def moment(text: str, name: str, zone: tzinfo, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is in ``zone``. A bare date is the
    start of that day, or (``end_of_day``, for ``to``) the start of the next one."""
    problem = bad_request(f"`{name}` must be an ISO 8601 date or date-time, such as 2026-12-07 "
                          "or 2026-12-07T14:30:00-03:00")  # fmt: skip
    if len(text) > 40:
        raise problem
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            if end_of_day:
                day += timedelta(days=1)
            return datetime.combine(day, time(), zone)
        value = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise problem from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def period(query: Mapping[str, str], zone: tzinfo) -> tuple[datetime | None, datetime | None]:
    """``from`` (inclusive) and ``to`` (exclusive; a bare date means up to the end of that day),
    either may be left out; ``from`` must come before ``to``."""
    since = moment(query["from"], "from", zone) if query.get("from") else None
    until = moment(query["to"], "to", zone, end_of_day=True) if query.get("to") else None
    if since and until and since >= until:
        raise bad_request("`from` must be before `to`")
    return since, until


def text(value: Any, name: str, *, max_length: int) -> str:
    if not isinstance(value, str):
        raise bad_request(f"`{name}` must be a string")
    if len(value) > max_length:
        raise bad_request(f"`{name}` must be at most {max_length} characters")
    if _CONTROL.search(value):
        raise bad_request(f"`{name}` must not contain control characters")
    return value


def plain(value: str, name: str, *, max_length: int = 200) -> str:
    """A filter value from the query string (no control characters, bounded)."""
    return text(value, name, max_length=max_length)


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``)."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise bad_request("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    return data
