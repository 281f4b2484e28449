"""``GET /api/callbacks/report.csv``: the same filters as the list, as a spreadsheet a pt-BR
Excel opens as it is: RFC 4180 (the csv module: CRLF, fields with commas, quotes or line
breaks quoted, quotes doubled), UTF-8 with a BOM, pt-BR headers, times in CALLCONTROL_TIMEZONE.

Free text the caller said could start with ``=``/``+``/``-``/``@``, which a spreadsheet would run
as a formula: such text gets a leading apostrophe (OWASP's advice on CSV injection).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, tzinfo
from typing import Any

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response

from callcontrol.api.callback_filters import FROM, CallbackFilters
from callcontrol.api.callbacks import COLUMNS, NEWEST_FIRST
from callcontrol.api.context import ApiContext

MAX_ROWS = 100_000
HEADERS = [("id", "ID"), ("kind", "Tipo"), ("status", "Situação"), ("phone_number", "Telefone"),
           ("caller_name", "Nome"), ("reason", "Motivo"), ("message", "Recado"),
           ("preferred_time", "Horário pedido"), ("scheduled_at", "Agendado para"),
           ("extension", "Ramal"), ("destination_name", "Destino"), ("attempts", "Tentativas"),
           ("notification_count", "Notificações"), ("created_at", "Pedido em"),
           ("completed_at", "Concluído em"), ("expires_at", "Expira em"),
           ("whatsapp_response", "Resposta WhatsApp")]  # fmt: skip
_FREE_TEXT = frozenset({"caller_name", "reason", "message", "preferred_time", "destination_name",
                        "whatsapp_response"})  # fmt: skip


def cell(key: str, value: Any, zone: tzinfo) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%d/%m/%Y %H:%M:%S")
    text = str(value)
    if key in _FREE_TEXT and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


async def report_csv(request: Request) -> Response:
    ctx = ApiContext.of(request)
    filters = CallbackFilters.from_request(request, ctx.timezone)
    where, values = filters.where()
    query = COLUMNS + FROM + where + NEWEST_FIRST + sql.SQL(" LIMIT %(max)s")
    rows = await ctx.database().fetch_all(query, {**values, "max": MAX_ROWS})
    out = io.StringIO()
    writer = csv.writer(out)  # RFC 4180: comma, CRLF, minimal quoting with doubled quotes
    writer.writerow([title for _, title in HEADERS])
    for row in rows:
        writer.writerow([cell(key, row[key], ctx.timezone) for key, _ in HEADERS])
    disposition = 'attachment; filename="callbacks.csv"'
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": disposition})  # fmt: skip
