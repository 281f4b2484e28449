"""Load the real FreeSWITCH recordings shipped in tests/data/traces."""

from __future__ import annotations

import base64
import json
from pathlib import Path

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"
# replay/ holds this server's calls against the simulator (replay inputs), not FreeSWITCH's bytes
ALL_TRACES = sorted(p for p in TRACES.rglob("*.jsonl") if p.parent != TRACES / "replay")


def frames_of(path: Path, direction: str = "recv") -> list[bytes]:
    out = []
    with path.open(encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            item = json.loads(line)
            if item["dir"] != direction:
                continue
            if "data" in item:
                out.append(item["data"].encode("utf-8"))
            else:
                out.append(base64.b64decode(item["data_b64"]))
    return out


def recv_stream(path: Path) -> bytes:
    return b"".join(frames_of(path))
