"""The JSON-lines trace format: round trip, the real traces, and errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.trace.format import (
    Trace,
    TraceFormatError,
    TraceHeader,
    TraceLine,
    dumps,
    loads,
    read_trace,
    write_trace,
)

TRACES = Path(__file__).parent.parent / "data" / "traces"
ALL_TRACES = sorted(TRACES.rglob("*.jsonl"))
HEADER = '{"format": "callcontrol-esl-trace", "version": 1, "mode": "outbound"}'
V2 = '{"format": "callcontrol-esl-trace", "version": 2, "mode": "outbound"}'


def test_the_real_traces_are_all_found() -> None:
    assert len(ALL_TRACES) >= 30


@pytest.mark.parametrize("path", ALL_TRACES, ids=lambda p: p.name)
def test_real_trace_reads_and_rewrites_to_the_same_objects(path: Path) -> None:
    trace = read_trace(path)
    original = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rewritten = [json.loads(line) for line in dumps(trace).decode().splitlines()]
    assert rewritten == original
    assert trace.mode in ("outbound", "inbound")
    assert [line.lineno for line in trace.lines] == list(range(2, len(original) + 1))


_data = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda s: s.encode()))
_lines = st.lists(
    st.builds(TraceLine, st.floats(0, 1e6).map(lambda t: round(t, 6)),
              st.sampled_from(["recv", "send"]), _data),
    max_size=20,
)


@given(_lines)
def test_any_bytes_round_trip(lines: list[TraceLine]) -> None:
    trace = Trace(TraceHeader("inbound", {"source": "test"}), tuple(lines))
    back = loads(dumps(trace))
    assert back == trace
    assert back.header.extra == {"source": "test"}


def test_non_utf8_bytes_go_in_data_b64_and_text_stays_readable(tmp_path: Path) -> None:
    trace = Trace(TraceHeader("outbound"), (
        TraceLine(0.5, "recv", b"\xff\xfe not utf-8"),
        TraceLine(1.0, "send", "ação\u2028\r\n".encode()),
    ))
    path = tmp_path / "t.jsonl"
    write_trace(path, trace)
    objs = [json.loads(line) for line in path.read_bytes().split(b"\n") if line]
    assert "data_b64" in objs[1] and "data" not in objs[1]
    assert objs[2]["data"] == "ação\u2028\r\n"
    # U+2028 and CR must not split a line when reading back
    assert read_trace(path) == trace


@pytest.mark.parametrize(("text", "line", "words"), [
    ("", 1, "empty file"),
    ("not json\n", 1, "not valid JSON"),
    ('{"format": "other", "version": 1, "mode": "outbound"}\n', 1, "expected format"),
    ('{"format": "callcontrol-esl-trace", "version": 3, "mode": "outbound"}\n', 1, "version 3"),
    # version 1 holds the Event Socket only
    (HEADER + '\n{"t": 0, "dir": "ai_recv", "data": "{}"}\n', 2, "'dir'"),
    (V2 + '\n{"t": 0, "dir": "gen", "kind": "dice", "value": "4"}\n', 2, "'kind'"),
    (V2 + '\n{"t": 0, "dir": "gen", "kind": "uuid4", "value": 4}\n', 2, "'value'"),
    (V2 + '\n{"t": 0, "dir": "gen", "kind": "uuid4"}\n', 2, "'value'"),
    (V2 + '\n{"t": 0, "dir": "ai_close", "data": "x"}\n', 2, "no 'data'"),
    (V2 + '\n{"t": 0, "dir": "ai_send"}\n', 2, "exactly one of"),
    ('{"format": "callcontrol-esl-trace", "version": 1, "mode": "sideways"}\n', 1, "mode"),
    (HEADER + '\n{"t": 0, "dir": "recv", "data": "x"}\n[1]\n', 3, "JSON object"),
    (HEADER + '\n{"t": -1, "dir": "recv", "data": "x"}\n', 2, "'t'"),
    (HEADER + '\n{"t": true, "dir": "recv", "data": "x"}\n', 2, "'t'"),
    (HEADER + '\n{"t": 0, "dir": "up", "data": "x"}\n', 2, "'dir'"),
    (HEADER + '\n{"t": 0, "dir": "send"}\n', 2, "exactly one of"),
    (HEADER + '\n{"t": 0, "dir": "send", "data": "a", "data_b64": "YQ=="}\n', 2, "exactly one"),
    (HEADER + '\n{"t": 0, "dir": "send", "data": 5}\n', 2, "must be a string"),
    (HEADER + '\n{"t": 0, "dir": "send", "data_b64": "***"}\n', 2, "base64"),
    (HEADER + '\n{"t": 0, "dir": "send", "data": "\\ud800"}\n', 2, "surrogate"),
    (HEADER + '\n\n\n{"t": 0, "dir": "send", "data": "ok"}\n{"t": 1\n', 5, "not valid JSON"),
])
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(TraceFormatError) as caught:
        read_trace(path)
    assert caught.value.line == line
    assert words in caught.value.problem
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_a_version_1_trace_is_read_as_version_1_and_written_back_so(tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    path.write_text(HEADER + '\n{"t": 0.5, "dir": "recv", "data": "x"}\n')
    trace = read_trace(path)
    assert trace.header.version == 1
    assert trace.esl_lines == trace.lines and trace.generated("uuid4") == []
    assert json.loads(dumps(trace).decode().splitlines()[0])["version"] == 1


def test_version_2_lines_round_trip_with_their_fields() -> None:
    uuid = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    lines = (
        TraceLine(0.0, "send", b"connect\n\n"),
        TraceLine(0.1, "gen", fields={"kind": "uuid4", "value": uuid}),
        TraceLine(0.2, "ai_open", fields={"url": "wss://model.example/v1/realtime"}),
        TraceLine(0.3, "ai_send", b'{"type": "session.update"}'),
        TraceLine(0.4, "ai_recv", '{"type": "session.updated", "x": "ç"}'.encode()),
        TraceLine(0.45, "ai_resolve", fields={"value": None}),
        TraceLine(0.5, "gen", fields={"kind": "now", "value": "2026-12-07T09:00:00+00:00"}),
        TraceLine(0.6, "ai_close", fields={"code": 1000, "reason": "call ended", "by": "us"}),
        TraceLine(0.7, "recv", b""),
    )
    trace = Trace(TraceHeader("outbound"), lines)
    text = dumps(trace).decode()
    assert json.loads(text.splitlines()[0])["version"] == 2
    assert json.loads(text.splitlines()[2]) == {"t": 0.1, "dir": "gen", "kind": "uuid4",
                                                "value": uuid}
    back = loads(text.encode())
    assert back == trace
    assert [line.dir for line in back.esl_lines] == ["send", "recv"]
    assert back.generated("uuid4") == [uuid]
    assert back.generated("now") == ["2026-12-07T09:00:00+00:00"]
    assert back.data("ai_recv") == '{"type": "session.updated", "x": "ç"}'.encode()


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="cannot read trace"):
        read_trace(tmp_path / "nope.jsonl")
