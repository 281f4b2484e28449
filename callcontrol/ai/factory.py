"""Open the configured provider: ``REALTIME_PROVIDER`` picks the wire protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs

from callcontrol.ai._wsbase import StreamOpener
from callcontrol.ai.openai_live import DelegationResolver, LiveEndpoint, open_openai_live
from callcontrol.ai.openai_realtime import RealtimeEndpoint, open_openai_realtime
from callcontrol.ai.provider import RealtimeProvider, SessionConfig
from callcontrol.config import Settings


@asynccontextmanager
async def open_provider(
    settings: Settings,
    config: SessionConfig,
    *,
    resolver: DelegationResolver | None = None,
    opener: StreamOpener | None = None,
    **log_context: Any,
) -> AsyncIterator[RealtimeProvider]:
    """``async with open_provider(settings, config, call_uuid=...) as ai:``; raises
    ``ProviderUnavailable`` when the model cannot be reached. ``opener`` replaces the TCP/TLS
    connection under the websocket (tests, replay)."""
    if settings.realtime_provider == "openai-live":
        live = attrs.evolve(LiveEndpoint.from_settings(settings), opener=opener)
        async with open_openai_live(live, config, resolver, **log_context) as client:
            yield client
    else:
        endpoint = attrs.evolve(RealtimeEndpoint.from_settings(settings), opener=opener)
        async with open_openai_realtime(endpoint, config, **log_context) as rt:
            yield rt
