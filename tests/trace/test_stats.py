"""``trace stats`` on every real trace, checked against counts made without our parser."""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from callcontrol.cli import main as cli_main
from callcontrol.trace.format import Trace, TraceLine, dumps, read_trace
from callcontrol.trace.stats import compute_stats, run_stats
from tests.trace.test_format import ALL_TRACES, TRACES

_OUTER_LENGTH = re.compile(rb"Content-Length: (\d+)\n")


def independent_counts(stream: bytes) -> tuple[Counter[str], Counter[str]]:
    """Content types and event names by regex, frame by frame, without callcontrol.esl.

    A frame is a header block up to a blank line plus Content-Length bytes; its content type
    and (for plain/json events and the connect reply) event name are found by pattern.
    """
    content_types: Counter[str] = Counter()
    events: Counter[str] = Counter()
    pos = 0
    while pos < len(stream):
        end = stream.index(b"\n\n", pos)
        head = stream[pos:end + 1]
        m = _OUTER_LENGTH.search(head)
        body = stream[end + 2:end + 2 + int(m.group(1))] if m else b""
        pos = end + 2 + len(body)
        ctype = re.search(rb"(?m)^Content-Type: (\S+)$", head).group(1).decode()
        content_types[ctype] += 1
        name = (re.search(rb"(?m)^Event-Name: (\S+)$", body if ctype.startswith("text/event")
                          else head) or re.search(rb'"Event-Name":\s*"([^"]+)"', body))
        if name and ctype in ("command/reply", "text/event-plain", "text/event-json"):
            events[name.group(1).decode()] += 1
    return content_types, events


@pytest.mark.parametrize("path", ALL_TRACES, ids=lambda p: p.name)
def test_stats_of_every_real_trace(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_stats(argparse.Namespace(trace=str(path))) == 0
    out = capsys.readouterr().out
    stats = json.loads(out)
    assert out.count("\n") == 1 and set(stats) == {"frames", "content_types", "events"}
    stream = read_trace(path).data("recv")
    content_types, events = independent_counts(stream)
    assert stats["content_types"] == dict(content_types)
    assert stats["events"] == dict(events)
    assert stats["frames"] == sum(content_types.values())
    # every frame of a real trace is its own line
    assert stats["frames"] == sum(1 for line in read_trace(path).lines if line.dir == "recv")


def test_outbound_connect_reply_counts_as_channel_data() -> None:
    stats = compute_stats(read_trace(TRACES / "a_answer_playback_caller_hangup.outbound.jsonl"))
    assert stats.events["CHANNEL_DATA"] == 1
    assert stats.content_types["command/reply"] >= 1


@pytest.mark.parametrize("seed", range(5))
def test_lines_holding_several_or_partial_frames_count_the_same(seed: int) -> None:
    rng = random.Random(seed)
    path = rng.choice(ALL_TRACES)
    trace = read_trace(path)
    stream = trace.data("recv")
    cuts = sorted(rng.sample(range(1, len(stream)), 40))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    rechunked = Trace(trace.header, tuple(TraceLine(i, "recv", c) for i, c in enumerate(chunks)))
    assert compute_stats(rechunked) == compute_stats(trace)


def test_a_cut_recording_counts_whole_frames_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = read_trace(ALL_TRACES[0])
    stream = trace.data("recv")
    cut = Trace(trace.header, (TraceLine(0, "recv", stream[:-10]),))
    path = tmp_path / "cut.jsonl"
    path.write_bytes(dumps(cut))
    assert cli_main(["trace", "stats", str(path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["frames"] == compute_stats(trace).frames - 1
    assert "incomplete frame" in captured.err


def test_invalid_stream_and_invalid_file_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(dumps(Trace(read_trace(ALL_TRACES[0]).header,
                                (TraceLine(0, "recv", b"Reply-Text: +OK\n\n"),))))
    assert cli_main(["trace", "stats", str(bad)]) == 1
    assert "not valid ESL" in capsys.readouterr().err
    bad.write_text("{}\n")
    assert cli_main(["trace", "stats", str(bad)]) == 1
    assert f"{bad}:1:" in capsys.readouterr().err
