"""The transcript of one call, both sides, timestamped on the trio clock.

Feed it every provider event (``on_event``); it keeps streaming deltas per role and commits a line
when the provider says the turn is done (Realtime), or when the other side starts talking, or on
``flush`` (GPT-Live streams deltas only). Tool calls are kept too, so the stored outcome shows why
a call was transferred. Times are seconds since the transcript started, so a MockClock gives
deterministic transcripts in tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import attrs
import trio

from callcontrol.ai.provider import ProviderEvent, ToolCall, TranscriptDelta, TranscriptDone

EntryRole = Literal["caller", "assistant", "tool", "system"]


@attrs.frozen
class TranscriptEntry:
    t: float  # seconds since the start of the call, when the line started
    role: EntryRole
    text: str
    data: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 3), "role": self.role, "text": self.text}
        if self.data is not None:
            out["data"] = self.data
        return out


@attrs.define
class _Partial:
    started: float
    text: str = ""


class Transcript:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or trio.current_time
        self._start = self._clock()
        self.entries: list[TranscriptEntry] = []
        self._partial: dict[EntryRole, _Partial] = {}

    def _now(self) -> float:
        return self._clock() - self._start

    def add(self, role: EntryRole, text: str, data: dict[str, Any] | None = None) -> None:
        self.entries.append(TranscriptEntry(self._now(), role, text, data))

    def on_event(self, event: ProviderEvent) -> None:
        if isinstance(event, TranscriptDelta):
            self._delta(event.role, event.text)
        elif isinstance(event, TranscriptDone):
            self._done(event.role, event.text)
        elif isinstance(event, ToolCall):
            self.add(
                "tool", event.name, {"call_id": event.call_id, "arguments": event.raw_arguments}
            )

    def _delta(self, role: EntryRole, text: str) -> None:
        for other in list(self._partial):
            if other != role:
                self._commit(other)
        partial = self._partial.setdefault(role, _Partial(self._now()))
        partial.text += text

    def _done(self, role: EntryRole, text: str) -> None:
        partial = self._partial.pop(role, None)
        started = partial.started if partial else self._now()
        final = text if text.strip() else (partial.text if partial else "")
        if final.strip():
            self.entries.append(TranscriptEntry(started, role, final.strip()))

    def _commit(self, role: EntryRole) -> None:
        partial = self._partial.pop(role)
        if partial.text.strip():
            self.entries.append(TranscriptEntry(partial.started, role, partial.text.strip()))

    def flush(self) -> None:
        """Commit unfinished lines (at hangup, or for providers without ``done`` events)."""
        for role in list(self._partial):
            self._commit(role)

    def as_list(self) -> list[dict[str, Any]]:
        self.flush()
        return [entry.as_dict() for entry in sorted(self.entries, key=lambda e: e.t)]

    def to_json(self) -> str:
        return json.dumps(self.as_list(), ensure_ascii=False)
