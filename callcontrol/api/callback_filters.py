"""The filters ``GET /api/callbacks`` and ``report.csv`` share, read from the query string and
turned into one WHERE clause (psycopg ``sql`` compositions of fixed text; every value is a bound
parameter). Always scoped to one domain; newest first.

``status`` (comma-separated ticket statuses), ``kind`` (callback | message), ``extension`` (the
ticket's agent: its own extension, else its destination's when that is an extension),
``destination`` (a destination's UUID, or its name, case-insensitive), ``from`` (inclusive) and
``to`` (exclusive; a bare date means up to the end of that day) on when the caller asked,
``scheduled`` (``future``: set for a time still to come, the console's "Agendados"; ``due``: no
time set, or one already reached).

An agent's requests are narrowed to their own extensions besides (``mine``, from the principal:
``v_extension_users``): another extension asked for, or a ticket whose agent is not theirs, is
simply not there. A supervisor and the service see the whole domain.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, tzinfo
from typing import Any

import attrs
from psycopg import sql
from starlette.requests import Request

from callcontrol.api import params
from callcontrol.api.errors import bad_request
from callcontrol.api.principal import Principal
from callcontrol.callbacks.tickets import TicketStatus

STATUSES = tuple(s.value for s in TicketStatus)
KINDS = ("callback", "message")
SCHEDULED = ("future", "due")

AGENT_EXTENSION = sql.SQL(
    "coalesce(r.extension, CASE WHEN t.destination_type = 'extension'"
    " THEN t.destination_number END)"
)

FROM = sql.SQL(
    " FROM callcontrol_callback_requests r"
    " LEFT JOIN v_voice_transfer_destinations t"
    " ON t.transfer_destination_uuid = r.destination_uuid"
)


@attrs.frozen
class CallbackFilters:
    domain_uuid: uuid.UUID
    statuses: tuple[str, ...] = ()
    kind: str | None = None
    extension: str | None = None
    destination_uuid: uuid.UUID | None = None
    destination_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    scheduled: str | None = None
    # an agent's own extensions; None: every extension (a supervisor, the service)
    mine: tuple[str, ...] | None = None

    @classmethod
    def from_request(cls, request: Request, zone: tzinfo) -> CallbackFilters:
        q = request.query_params
        statuses = tuple(s.strip() for s in q.get("status", "").split(",") if s.strip())
        for status in statuses:
            if status not in STATUSES:
                raise bad_request(f"`status` must be one or more (comma-separated) of "
                                  f"{', '.join(STATUSES)}")  # fmt: skip
        kind = q.get("kind") or None
        if kind is not None and kind not in KINDS:
            raise bad_request("`kind` must be callback or message")
        ext = params.extension(q["extension"]) if q.get("extension") else None
        dest_uuid, dest_name = _destination(q.get("destination") or None)
        since, until = params.period(q, zone)
        scheduled = q.get("scheduled") or None
        if scheduled is not None and scheduled not in SCHEDULED:
            raise bad_request("`scheduled` must be future or due")
        return cls(params.domain_uuid(request), statuses, kind, ext, dest_uuid, dest_name,
                   since, until, scheduled, own_extensions(request))  # fmt: skip

    def where(self) -> tuple[sql.Composed, dict[str, Any]]:
        parts: list[sql.Composable] = [sql.SQL("r.domain_uuid = %(domain)s")]
        values: dict[str, Any] = {"domain": self.domain_uuid}
        if self.mine is not None:
            parts.append(sql.SQL("{} = ANY(%(mine)s)").format(AGENT_EXTENSION))
            values["mine"] = list(self.mine)
        if self.statuses:
            parts.append(sql.SQL("r.status = ANY(%(statuses)s)"))
            values["statuses"] = list(self.statuses)
        if self.kind:
            parts.append(sql.SQL("r.kind = %(kind)s"))
            values["kind"] = self.kind
        if self.extension:
            parts.append(sql.SQL("{} = %(extension)s").format(AGENT_EXTENSION))
            values["extension"] = self.extension
        if self.destination_uuid:
            parts.append(sql.SQL("r.destination_uuid = %(destination_uuid)s"))
            values["destination_uuid"] = self.destination_uuid
        if self.destination_name:
            parts.append(sql.SQL("lower(r.destination_name) = lower(%(destination_name)s)"))
            values["destination_name"] = self.destination_name
        if self.since:
            parts.append(sql.SQL("r.created_at >= %(since)s"))
            values["since"] = self.since
        if self.until:
            parts.append(sql.SQL("r.created_at < %(until)s"))
            values["until"] = self.until
        if self.scheduled == "future":
            parts.append(sql.SQL("r.scheduled_at > now()"))
        elif self.scheduled == "due":
            parts.append(sql.SQL("(r.scheduled_at IS NULL OR r.scheduled_at <= now())"))
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), values


def own_extensions(request: Request) -> tuple[str, ...] | None:
    """The extensions whose tickets the asker may see: an agent's own; None: every one."""
    principal = Principal.of(request)
    return None if principal.sees_every_extension else principal.extensions


def agent_only(request: Request) -> tuple[sql.Composable, dict[str, Any]]:
    """The condition (`` AND ...``) that keeps an agent to their own tickets; nothing for the
    others. For queries that name one ticket (``FROM`` joined)."""
    mine = own_extensions(request)
    if mine is None:
        return sql.SQL(""), {}
    return sql.SQL(" AND {} = ANY(%(mine)s)").format(AGENT_EXTENSION), {"mine": list(mine)}


def _destination(text: str | None) -> tuple[uuid.UUID | None, str | None]:
    if text is None:
        return None, None
    try:
        return uuid.UUID(text), None
    except ValueError:
        return None, params.plain(text, "destination")


# --- the cursor: where the previous page ended (newest first: created_at, then id) ---------


def encode_cursor(created_at: datetime, request_uuid: str) -> str:
    raw = json.dumps([created_at.isoformat(), request_uuid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(text[:200] + "=" * (-len(text[:200]) % 4))
        at, ident = json.loads(raw)
        moment = datetime.fromisoformat(at)
        found = moment, uuid.UUID(ident)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        found = None
    if found is None or found[0].tzinfo is None:
        raise bad_request("`cursor` is not one this API gave out (use `next_cursor` of the "
                          "previous page)")  # fmt: skip
    return found
