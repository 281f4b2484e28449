"""Prometheus metrics, owned by one ``Metrics`` object per process (not module globals), so
each test and each embedded server counts on its own registry.

Under ``serve --workers N`` every worker runs with ``PROMETHEUS_MULTIPROC_DIR`` set (by the
supervisor), prometheus-client keeps the values in files there, and ``render`` in the worker
that serves ``/metrics`` adds up all of them: counters and histograms summed, active calls
summed over the live workers, the outbox gauges (set by worker 0 alone) as it set them.
"""

from __future__ import annotations

import os

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_TRANSFER_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300)
_SCAN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@attrs.define(eq=False)
class Metrics:
    registry: CollectorRegistry = attrs.field(factory=CollectorRegistry)
    transfers: Counter = attrs.field(init=False)
    transfer_seconds: Histogram = attrs.field(init=False)
    calls_active: Gauge = attrs.field(init=False)
    calls_total: Counter = attrs.field(init=False)
    ai_failures: Counter = attrs.field(init=False)
    protocol_errors: Counter = attrs.field(init=False)
    callbacks: Counter = attrs.field(init=False)
    callback_scans: Counter = attrs.field(init=False)
    callback_scan_seconds: Histogram = attrs.field(init=False)
    callback_alerts: Counter = attrs.field(init=False)
    outbox_deliveries: Counter = attrs.field(init=False)
    outbox_backlog: Gauge = attrs.field(init=False)
    outbox_failing: Gauge = attrs.field(init=False)
    outbox_oldest: Gauge = attrs.field(init=False)
    extension_status_requests: Counter = attrs.field(init=False)
    whatsapp_webhooks: Counter = attrs.field(init=False)
    whatsapp_replies: Counter = attrs.field(init=False)
    console_streams: Gauge = attrs.field(init=False)
    console_resyncs: Counter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        r = self.registry
        self.transfers = Counter(
            "voice_transfers_total",
            "Handoffs by outcome and destination type.",
            ["status", "destination_type"],
            registry=r,
        )
        self.transfer_seconds = Histogram(
            "voice_transfers_duration_seconds",
            "From the handoff request to its outcome.",
            ["status"],
            buckets=_TRANSFER_BUCKETS,
            registry=r,
        )
        self.calls_active = Gauge("voice_calls_active", "Calls connected now.", registry=r,
                                  multiprocess_mode="livesum")  # fmt: skip
        self.calls_total = Counter("voice_calls_total", "Calls handled.", ["result"], registry=r)
        self.ai_failures = Counter(
            "voice_ai_failures_total", "AI session failures by kind.", ["kind"], registry=r
        )
        self.protocol_errors = Counter(
            "voice_esl_protocol_errors_total", "ESL connections closed for bad frames.",
            registry=r,
        )
        self.extension_status_requests = Counter(
            "voice_extension_status_requests_total",
            "GET /api/extension/status answers, by status (or the refusal's error code).",
            ["status"],
            registry=r,
        )
        self._callback_metrics()

    def _callback_metrics(self) -> None:
        r = self.registry
        self.callbacks = Counter(
            "voice_callbacks_total",
            "Callback tickets moved to a status (pending: taken from a caller; notified: the "
            "agent was told; expired; needs_review; in_progress, completed, failed: "
            "click-to-call).",
            ["status"],
            registry=r,
        )
        self.callback_scans = Counter(
            "voice_callback_scans_total", "Callback scans by result (done, failed).",
            ["result"], registry=r,
        )  # fmt: skip
        self.callback_scan_seconds = Histogram(
            "voice_callback_scan_duration_seconds", "How long one callback scan took.",
            buckets=_SCAN_BUCKETS, registry=r,
        )  # fmt: skip
        self.callback_alerts = Counter(
            "voice_callback_availability_alerts_total",
            "Times a FreeSWITCH box (ESL_HOST) could not say who is free for three scans in "
            "a row.", ["box"], registry=r,
        )  # fmt: skip
        self.outbox_deliveries = Counter(
            "voice_outbox_deliveries_total", "Outbox sends by kind and result (delivered, failed).",
            ["kind", "result"], registry=r,
        )  # fmt: skip
        self.outbox_backlog = Gauge(
            "voice_outbox_backlog", "Outbox rows not delivered yet.", ["kind"], registry=r,
            multiprocess_mode="livemax",
        )
        self.outbox_failing = Gauge(
            "voice_outbox_failing", "Outbox rows tried 3 times or more without a 2xx.", ["kind"],
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.outbox_oldest = Gauge(
            "voice_outbox_oldest_age_seconds", "Age of the oldest outbox row not delivered.",
            ["kind"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.whatsapp_webhooks = Counter(
            "voice_whatsapp_webhooks_total",
            "Requests to /webhooks/whatsapp by result (accepted, refused: unsigned or forged, "
            "subscribed, subscription_refused).", ["result"], registry=r,
        )  # fmt: skip
        self.whatsapp_replies = Counter(
            "voice_whatsapp_replies_total",
            "Customers' WhatsApp messages by outcome (call_now, later, cancel, other, refused, "
            "unmatched, duplicate, not_ours).", ["outcome"], registry=r,
        )  # fmt: skip
        self.console_streams = Gauge(
            "voice_console_streams", "GET /api/events streams open now (consoles watching).",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.console_resyncs = Counter(
            "voice_console_resyncs_total",
            "resync events sent to the streams, by reason (behind: a stream's buffer was full; "
            "reconnected: a Last-Event-ID no longer remembered; database_restored: the "
            "listener's connection came back).", ["reason"], registry=r,
        )  # fmt: skip

    def render(self) -> bytes:
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not shared:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess  # noqa: PLC0415

        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker, path=shared)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent): for tests and the console page."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found
