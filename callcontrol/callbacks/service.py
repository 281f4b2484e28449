"""The callbacks as ``callcontrol serve`` runs them: a sibling of the call handlers.

``run_callbacks`` owns, in its own nursery, one persistent inbound Event Socket connection to
FreeSWITCH (``ESL_HOST``/``ESL_PORT``/``ESL_PASSWORD``, reconnecting with backoff), the
``AvailabilityMonitor`` fed by its events, and the ``Scanner`` loop, woken at once when a phone
registers or a call hangs up. Each of them is kept running: one that raises is logged
(``callbacks.task_failed``) and started again after a pause, so nothing here can take ``serve``
or a call down. Cancelling the nursery (SIGTERM: ``serve`` returns after the drain) stops them;
a scan cut short leaves the tickets as they were (its transactions roll back).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import attrs
import trio

from callcontrol.callbacks.availability import AvailabilityMonitor
from callcontrol.callbacks.scanner import Notify, Scanner
from callcontrol.config import Settings
from callcontrol.db.database import Database
from callcontrol.esl.inbound import InboundClient
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics

RESTART_AFTER_SECONDS = 5.0

_log = get_logger("callcontrol.callbacks")


@attrs.define(eq=False)
class Callbacks:
    """What ``run_callbacks`` started (for ``/readyz``-style questions and tests)."""

    client: InboundClient
    monitor: AvailabilityMonitor
    scanner: Scanner


def build_callbacks(
    settings: Settings,
    db: Database,
    metrics: Metrics | None = None,
    *,
    notify: Notify | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callbacks:
    client = InboundClient(
        settings.esl_host, settings.esl_port, settings.esl_password,
        events=AvailabilityMonitor.events(), used_for="callbacks: which agents are free",
    )  # fmt: skip
    monitor = AvailabilityMonitor(client)
    scanner = Scanner(db, monitor.snapshot, settings, clock=clock, notify=notify,
                      wake=lambda: monitor.freed, metrics=metrics)  # fmt: skip
    return Callbacks(client, monitor, scanner)


async def run_callbacks(
    callbacks: Callbacks, *, task_status: trio.TaskStatus[Callbacks] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the inbound connection, the monitor and the scanner until cancelled."""
    _log.info("callbacks.started",
              esl=f"{callbacks.client.host}:{callbacks.client.port}",
              check_interval_ms=callbacks.scanner.settings.callback_check_interval_ms)  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_running, "esl_inbound", callbacks.client.run)
        nursery.start_soon(keep_running, "availability", callbacks.monitor.run)
        nursery.start_soon(keep_running, "scanner", callbacks.scanner.run)
        task_status.started(callbacks)


async def keep_running(
    name: str, run: Callable[[], Awaitable[object]], pause: float = RESTART_AFTER_SECONDS
) -> None:
    """``run()`` again and again: an error is logged with its traceback, never raised."""
    while True:
        try:
            await run()
            _log.error("callbacks.task_failed", task=name, error="returned",
                       restart_in_seconds=pause)  # fmt: skip
        except Exception as exc:
            _log.error("callbacks.task_failed", task=name, error=repr(exc),
                       restart_in_seconds=pause, exc_info=True)  # fmt: skip
        await trio.sleep(pause)
