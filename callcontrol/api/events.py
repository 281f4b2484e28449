"""``GET /api/events``: the tickets' changes as server-sent events, for the agents' consoles.

Who asks decides what is streamed (``Principal``): a person sees only their own domain and,
an agent, only the tickets of their own extensions; the service names the domain
(``domain_uuid``). ``extension`` narrows it further. What each event says and when a
``resync`` comes instead: ``callbacks.events``.

The stream starts with a ``retry:`` hint, sends a comment every ``HEARTBEAT_SECONDS`` so
proxies and the browser see it alive, gives every event an ``id:`` and honours
``Last-Event-ID`` (the browser sends it when it reconnects: what it missed, or a resync). A
client that goes away ends its subscription (Starlette cancels the body when the client
disconnects): nothing is left behind.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import trio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from callcontrol.api import params
from callcontrol.api.context import ApiContext
from callcontrol.api.errors import ApiError
from callcontrol.api.principal import Principal
from callcontrol.callbacks.events import EventHub, Watch, comment, encode, retry
from callcontrol.logs import get_logger

HEARTBEAT_SECONDS = 15.0
RETRY_MILLISECONDS = 3000
_EVENT_ID = re.compile(r"[0-9a-f]{1,16}-[0-9]{1,18}")

_log = get_logger("callcontrol.api")


def watch_for(request: Request) -> Watch:
    """What this request may be shown, from who asks and what it asks for."""
    q = request.query_params
    principal = Principal.of(request)
    asked = q.get("domain_uuid")
    domain = principal.domain(params.parse_uuid(asked, "domain_uuid") if asked else None)
    extensions = None if principal.sees_every_extension else frozenset(principal.extensions)
    wanted = q.get("extension")
    if wanted:
        params.extension(wanted)
        extensions = frozenset({wanted}) if extensions is None else extensions & {wanted}
    return Watch(domain, extensions)


def last_event_id(request: Request) -> str | None:
    found = request.headers.get("last-event-id")
    if not found:
        return None
    # an id we never gave is answered as one we no longer remember: a resync
    return found if _EVENT_ID.fullmatch(found) else "unknown-0"


async def stream(hub: EventHub, watch: Watch, last_seen: str | None,
                 heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[bytes]:  # fmt: skip
    with hub.subscribe(watch, last_event_id=last_seen) as events:
        yield retry(RETRY_MILLISECONDS)
        while True:
            # no yield inside the cancel scope: it would be left open across the yield
            got = None
            with trio.move_on_after(heartbeat):
                got = await events.receive()
            yield comment("heartbeat") if got is None else encode(got)


async def events_endpoint(request: Request) -> Response:
    hub = ApiContext.of(request).events
    watch = watch_for(request)
    if hub is None:
        raise ApiError(503, "events_unavailable", "this process does not stream events")
    seen = last_event_id(request)
    _log.info("api.events_subscribed", domain=str(watch.domain_uuid),
              extensions=None if watch.extensions is None else sorted(watch.extensions),
              resumed=seen is not None)  # fmt: skip
    # X-Accel-Buffering: nginx in front would otherwise hold the events back
    return StreamingResponse(stream(hub, watch, seen), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache",
                                      "X-Accel-Buffering": "no"})  # fmt: skip

