"""Open the configured provider: ``REALTIME_PROVIDER`` picks the wire protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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
    **log_context: Any,
) -> AsyncIterator[RealtimeProvider]:
    """``async with open_provider(settings, config, call_uuid=...) as ai:``; raises
    ``ProviderUnavailable`` when the model cannot be reached."""
    if settings.realtime_provider == "openai-live":
        live = LiveEndpoint.from_settings(settings)
        async with open_openai_live(live, config, resolver, **log_context) as client:
            yield client
    else:
        endpoint = RealtimeEndpoint.from_settings(settings)
        async with open_openai_realtime(endpoint, config, **log_context) as rt:
            yield rt
