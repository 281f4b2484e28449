"""``GET /api/extension/status/{extension}?domain_uuid=``: may this agent be called now?

The answer is the callback scanner's own (``callbacks.availability``): DND from FusionPBX's
``v_extensions``, in a call / ringing / registered from one FreeSWITCH snapshot. An extension
FusionPBX does not have in that domain is a 404, so a typo is not reported as "offline". An
agent may ask about their own extensions only: any other is a 404 for them, as if it did not
exist (a supervisor and the service ask about any of the domain).
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callcontrol.api import params
from callcontrol.api.context import ApiContext
from callcontrol.api.errors import ApiError, not_found
from callcontrol.api.principal import Principal
from callcontrol.callbacks.availability import Availability, Snapshot, availability
from callcontrol.destinations.dnd import dnd_sql
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")


class SnapshotSource(Protocol):
    """What FreeSWITCH says now (``AvailabilityMonitor``); None when it cannot be asked."""

    async def snapshot(self) -> Snapshot | None: ...


REASONS = {
    Availability.AVAILABLE: "registered and not in a call",
    Availability.IN_CALL: "in a call",
    Availability.RINGING: "ringing",
    Availability.DND: "do not disturb is on (FusionPBX)",
    Availability.OFFLINE: "not registered: no phone is signed in to this extension",
    Availability.UNKNOWN: "FreeSWITCH could not be asked; never taken as available",
}

_EXTENSION = f"""
SELECT d.domain_name,
       e.extension IS NOT NULL AS exists,
       {dnd_sql("e")} AS dnd,
       coalesce(e.enabled::text, 'true') <> 'false' AS enabled
  FROM v_domains d
  LEFT JOIN v_extensions e ON e.domain_uuid = d.domain_uuid AND e.extension = %(extension)s
 WHERE d.domain_uuid = %(domain)s
"""  # noqa: S608 - dnd_sql is fixed text


async def extension_status(request: Request) -> Response:
    ctx = ApiContext.of(request)
    try:
        answer = await _answer(ctx, request)
    except ApiError as exc:
        ctx.metrics.extension_status_requests.labels(status=exc.error).inc()
        raise
    ctx.metrics.extension_status_requests.labels(status=answer["status"]).inc()
    return JSONResponse(answer)


async def _answer(ctx: ApiContext, request: Request) -> dict[str, object]:
    extension = params.extension(request.path_params["extension"])
    domain = params.domain_uuid(request)
    if not Principal.of(request).may_see_extension(extension):
        # an agent asks about their own extensions only; another's is not there for them
        raise not_found(f"you have no extension {extension}")
    row = await ctx.database().fetch_one(_EXTENSION, {"extension": extension, "domain": domain})
    if row is None:
        raise not_found("no FusionPBX domain has that domain_uuid")
    if not row["exists"]:
        raise not_found(f"domain {row['domain_name']} has no extension {extension}")
    if not row["enabled"]:
        status, reason = Availability.OFFLINE, "the extension is disabled in FusionPBX"
    else:
        snapshot = await ctx.availability.snapshot() if ctx.availability else None
        status = availability(snapshot, extension, row["domain_name"], dnd=row["dnd"])
        reason = REASONS[status]
    _log.info("api.extension_status", extension=extension, domain=row["domain_name"],
              status=status.name)  # fmt: skip
    return {"extension": extension, "status": status.name,
            "available": status.can_take_a_callback, "reason": reason}  # fmt: skip
