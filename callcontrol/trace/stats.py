"""``callcontrol trace stats TRACE``: frame, content-type and event counts as one JSON object.

The counts come from the concatenated ``recv`` byte stream, parsed by the same FrameReader the
server uses, so a trace whose lines hold several frames, or half a frame, counts the same as
one written frame by frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

import attrs

from callcontrol.esl import FrameReader, ProtocolError
from callcontrol.trace.format import Trace, TraceFormatError, read_trace


@attrs.frozen
class TraceStats:
    frames: int
    content_types: dict[str, int]
    events: dict[str, int]
    # Bytes at the end of the recv stream that do not complete a frame (a cut recording).
    trailing_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "content_types": self.content_types, "events": self.events}


def compute_stats(trace: Trace) -> TraceStats:
    """Raises ``ProtocolError`` when the recv stream is not valid ESL."""
    reader = FrameReader()
    reader.feed(trace.data("recv"))
    content_types: Counter[str] = Counter()
    events: Counter[str] = Counter()
    frames = 0
    for frame in reader:
        frames += 1
        content_types[frame.content_type] += 1
        if frame.has_event():
            events[frame.event.name] += 1
    return TraceStats(frames, dict(content_types), dict(events), reader.buffered)


def run_stats(args: argparse.Namespace) -> int:
    try:
        stats = compute_stats(read_trace(args.trace))
    except TraceFormatError as exc:
        print(f"callcontrol trace stats: {exc}", file=sys.stderr)
        return 1
    except ProtocolError as exc:
        print(f"callcontrol trace stats: {args.trace}: recv stream is not valid ESL: {exc}",
              file=sys.stderr)
        return 1
    if stats.trailing_bytes:
        print(f"callcontrol trace stats: {args.trace}: the recv stream ends with "
              f"{stats.trailing_bytes} bytes of an incomplete frame (not counted)", file=sys.stderr)
    print(json.dumps(stats.to_json(), sort_keys=True))
    return 0
