"""The process-wide services a call can reach, opened once by ``serve`` (or the demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import trio

from callcontrol.ai.factory import open_provider
from callcontrol.ai.provider import RealtimeProvider, SessionConfig
from callcontrol.config import Settings
from callcontrol.db.database import Database
from callcontrol.destinations.directory import Directory
from callcontrol.handoff.service import HandoffService
from callcontrol.media.audio_stream import AudioStreamRegistry, serve_audio_stream
from callcontrol.media.unicast import UnicastPorts
from callcontrol.metrics import Metrics
from callcontrol.startup import find, listen_failed

ProviderFactory = Callable[..., AbstractAsyncContextManager[RealtimeProvider]]


@attrs.define(eq=False)
class Services:
    settings: Settings
    db: Database
    directory: Directory
    handoff: HandoffService
    metrics: Metrics
    unicast_ports: UnicastPorts | None = None
    audio_streams: AudioStreamRegistry | None = None
    open_provider: ProviderFactory = open_provider
    media_lost_after: float = 1.0

    def session_config(self, **fields: Any) -> SessionConfig:
        # ``fields`` may carry the secretary's own voice; the server's is the default.
        defaults: dict[str, Any] = {
            "voice": self.settings.realtime_voice,
            "language": self.settings.language,
            "transcription_model": self.settings.realtime_transcription_model,
        }
        return SessionConfig(**{**defaults, **fields})


@asynccontextmanager
async def open_services(
    settings: Settings,
    db: Database,
    nursery: trio.Nursery,
    *,
    metrics: Metrics | None = None,
    provider_factory: ProviderFactory = open_provider,
) -> AsyncIterator[Services]:
    """Build the services on an open database; starts the audio-stream listener if used."""
    metrics = metrics or Metrics()
    directory = Directory(db, default_timezone=settings.timezone)
    services = Services(
        settings=settings,
        db=db,
        directory=directory,
        handoff=HandoffService(directory, db, settings, metrics),
        metrics=metrics,
        open_provider=provider_factory,
    )
    if settings.media_transport == "unicast":
        services.unicast_ports = UnicastPorts(settings.unicast_ports)
    else:
        listen = settings.media_listen
        registry = AudioStreamRegistry(f"ws://{listen.host}:{listen.port}")
        try:
            await nursery.start(serve_audio_stream, registry, listen.host, listen.port)
        except Exception as exc:  # before it listens: binding the port is all it did
            bind = find(exc, OSError)
            if bind is None:
                raise
            raise listen_failed(
                bind, listen, "CALLCONTROL_MEDIA_LISTEN", "for mod_audio_stream's websockets"
            ) from exc
        services.audio_streams = registry
    yield services
