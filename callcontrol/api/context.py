"""What the endpoints share, kept on the Starlette app's state: the database, FreeSWITCH's
availability snapshot, the metrics, the time zone for dates without an offset, the WhatsApp
webhook's settings, the click-to-call starter and the tickets' event hub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs
from starlette.requests import Request

from callcontrol.api.errors import ApiError
from callcontrol.db.database import Database
from callcontrol.metrics import Metrics

if TYPE_CHECKING:
    from callcontrol.api.clicktocall import Initiator
    from callcontrol.api.extension_status import SnapshotSource
    from callcontrol.api.whatsapp_webhook import WhatsAppWebhook
    from callcontrol.callbacks.events import EventHub


@attrs.define(eq=False)
class ApiContext:
    metrics: Metrics
    db: Database | None = None
    availability: SnapshotSource | None = None
    timezone: ZoneInfo = attrs.field(factory=lambda: ZoneInfo("America/Sao_Paulo"))
    whatsapp: WhatsAppWebhook | None = None
    calls: Initiator | None = None  # click-to-call (None: not running, the API answers 503)
    retry_delay_seconds: int = 60  # CALLBACK_RETRY_DELAY_SECONDS, told to a USER_BUSY client
    events: EventHub | None = None  # the tickets' changes (None: /api/events answers 503)
    recordings_dir: Path | None = None  # CALLCONTROL_RECORDINGS_DIR (None: none served)

    @staticmethod
    def of(request: Request) -> ApiContext:
        ctx: Any = request.app.state.api
        assert isinstance(ctx, ApiContext)
        return ctx

    def database(self) -> Database:
        if self.db is None:
            raise ApiError(503, "database_unavailable", "the database is not open yet")
        return self.db
