"""Extract the event header templates from recorded FreeSWITCH traces.

Run ``python -m callcontrol.testing.freeswitch._extract TRACE_DIR > callcontrol/testing/data/
esl_templates.json`` when new recordings arrive. The simulator never reads the traces at run
time: it reads the JSON this writes, so the header order of every event it emits is the
order a real FreeSWITCH 1.10 used, not one we invented.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from callcontrol.esl import FrameReader

BASE = (
    "Event-Name", "Core-UUID", "FreeSWITCH-Hostname", "FreeSWITCH-Switchname",
    "FreeSWITCH-IPv4", "FreeSWITCH-IPv6", "Event-Date-Local", "Event-Date-GMT",
    "Event-Date-Timestamp", "Event-Calling-File", "Event-Calling-Function",
    "Event-Calling-Line-Number", "Event-Sequence",
)
_PROFILE_PREFIXES = ("Caller-", "Other-Leg-", "variable_", "Other-Type")


def _events(paths: Iterable[Path]) -> Iterator[tuple[str, list[tuple[str, str]], str]]:
    for path in sorted(paths):
        mode = json.loads(path.read_text().splitlines()[0]).get("mode", "")
        for line in path.read_text().splitlines()[1:]:
            rec = json.loads(line)
            if rec.get("dir") != "recv" or "data" not in rec:
                continue
            reader = FrameReader()
            reader.feed(rec["data"].encode())
            for frame in reader:
                if frame.has_event():
                    pairs = frame.event.headers.raw_items()
                    yield frame.event.name, pairs, mode


def _merge(order: list[str], names: list[str]) -> None:
    """Insert unseen names right after their predecessor, keeping a consistent total order."""
    for i, name in enumerate(names):
        if name in order:
            continue
        if i == 0:
            order.insert(0, name)
        else:
            order.insert(order.index(names[i - 1]) + 1, name)


def _split(names: list[str]) -> tuple[list[str], list[str]]:
    """The event-specific headers before the channel block and after the profiles."""
    body = [n for n in names if n not in BASE and n != "Event-Subclass"]
    if "Channel-State" not in body:
        return [n for n in body if n != "Content-Length"], []
    start = body.index("Channel-State")
    last_profile = max(
        (i for i, n in enumerate(body) if n.startswith(_PROFILE_PREFIXES)), default=start
    )
    return body[:start], [n for n in body[last_profile + 1 :] if n != "Content-Length"]


def extract(paths: Iterable[Path]) -> dict[str, Any]:
    caller: list[str] = []
    other: list[str] = []
    channel_block: list[str] = []
    cdr: list[str] = []
    events: dict[str, dict[str, Any]] = {}
    for name, pairs, mode in _events(paths):
        names = [n for n, _ in pairs]
        values = dict(pairs)
        _merge(caller, [n[len("Caller-"):] for n in names if n.startswith("Caller-")])
        _merge(other, [n[len("Other-Leg-"):] for n in names if n.startswith("Other-Leg-")])
        if "Channel-State" in names and "Answer-State" in names:
            block = names[names.index("Channel-State") : names.index("Answer-State") + 1]
            _merge(channel_block, block)
        if name == "CHANNEL_HANGUP_COMPLETE" and "variable_hangup_cause" in names:
            # Only the CDR part: the variables before it belong to the endpoint, not to hangup.
            tail = names[names.index("variable_hangup_cause") :]
            _merge(cdr, [n for n in tail
                         if n.startswith("variable_") and n != "variable_is_loopback"])
        if name == "CHANNEL_DATA":
            continue
        prefix, suffix = _split(names)
        spec = events.setdefault(name, {
            "calling": [values.get("Event-Calling-File", ""),
                        values.get("Event-Calling-Function", ""),
                        values.get("Event-Calling-Line-Number", "")],
            "prefix": [], "suffix": [], "variables": False, "channel": False,
            "modes": [],
        })
        _merge(spec["prefix"], prefix)
        _merge(spec["suffix"], suffix)
        spec["variables"] = spec["variables"] or any(n.startswith("variable_") for n in names)
        spec["channel"] = spec["channel"] or "Channel-State" in names
        if mode not in spec["modes"]:
            spec["modes"].append(mode)
    for spec in events.values():
        spec["modes"].sort()
    return {
        "base": list(BASE),
        "channel_block": channel_block,
        "caller_profile": caller,
        "other_leg_profile": other,
        "cdr_variables": [n[len("variable_"):] for n in cdr],
        "events": dict(sorted(events.items())),
    }


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "tests/data/traces")
    # the protocol experiments only: callcontrol/ and replay/ are this server's own calls
    ours = {root / "callcontrol", root / "replay"}
    paths = (p for p in root.rglob("*.jsonl") if p.parent not in ours)
    json.dump(extract(paths), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv))
