"""Property tests: chunking never changes the frames; garbage only raises ProtocolError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcontrol.esl import FrameReader, ProtocolError, serialize
from tests.esl.traces import ALL_TRACES, recv_stream

CORPUS = b"".join(recv_stream(p) for p in ALL_TRACES[:6])


def _frames(data: bytes, cuts: list[int]) -> list[tuple[str, bytes, list]]:
    reader = FrameReader()
    out = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        reader.feed(data[last:cut])
        last = cut
        for frame in reader:
            out.append((frame.content_type, frame.body, frame.headers.raw_items()))
    assert reader.buffered == 0
    return out


WHOLE = _frames(CORPUS, [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=len(CORPUS)), max_size=40))
def test_any_chunking_gives_the_same_frames(cuts):
    assert _frames(CORPUS, cuts) == WHOLE


def test_byte_by_byte_feeding_gives_the_same_frames():
    data = recv_stream(ALL_TRACES[0])
    assert _frames(data, list(range(len(data)))) == _frames(data, [])


def _consume(data: bytes) -> None:
    reader = FrameReader()
    reader.feed(data)
    for frame in reader:
        if frame.has_event():
            event = frame.event
            _ = (event.name, event.unique_id, event.job_uuid, dict(event.headers), event.body)
        _ = frame.reply_text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_protocol_error(data):
    with contextlib.suppress(ProtocolError):
        _consume(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=20000),
    st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_real_stream_only_raises_protocol_error(start, mutations):
    data = bytearray(CORPUS[start : start + 20000])
    for pos, byte in mutations:
        if data:
            data[pos % len(data)] = byte
    with contextlib.suppress(ProtocolError):
        _consume(bytes(data))


def test_reader_refuses_to_continue_after_an_error():
    reader = FrameReader()
    reader.feed(b"Content-Type: api/response\nContent-Length: x1\n\n")
    try:
        reader.next_frame()
    except ProtocolError:
        pass
    else:
        raise AssertionError("invalid Content-Length accepted")
    assert reader.broken
    try:
        reader.feed(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
    except ProtocolError:
        return
    raise AssertionError("a broken reader accepted more bytes")


@pytest.mark.parametrize(
    "head",
    [
        b"Event-Name: CHANNEL_ANSWER\nUnique-ID: a-1\nno colon here",
        b"Event-Name: CHANNEL_ANSWER\n: empty name\nUnique-ID: a-1",
        b"Event-Name: CHANNEL_ANSWER\n Unique-ID: a-1",
        b"Event-Name: CHANNEL_ANSWER\nUnique-ID: a-1\nContent-Length: 9",
    ],
)
def test_a_malformed_plain_event_breaks_the_reader_before_anyone_sees_it(head):
    body = head + b"\n\n"
    reader = FrameReader()
    reader.feed(b"Content-Length: %d\nContent-Type: text/event-plain\n\n%s" % (len(body), body))
    with pytest.raises(ProtocolError):
        reader.next_frame()
    assert reader.broken


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Type: api/response\nContent-Length: 999999999",
        # eight digits, as FreeSWITCH's own envelopes are read in one go
        b"Content-Type: api/response\nContent-Length: 16777217",
        b"Content-Length: 99999999\nContent-Type: text/event-plain",
        b"Content-Type: api/response\nContent-Length: 99999999",
    ],
)
@pytest.mark.parametrize("read", ["next_frame", "iterate"])
def test_oversized_content_length_is_refused(head, read):
    reader = FrameReader()
    reader.feed(head + b"\n\n")
    with pytest.raises(ProtocolError, match="exceeds"):
        if read == "next_frame":
            reader.next_frame()
        else:
            list(reader)
    assert reader.broken


def test_every_content_type_freeswitch_sends():
    pairs = [
        ("Event-Name", "CUSTOM"),
        ("Event-Subclass", "mod_audio_stream::play"),
        ("Unique-ID", "a-1"),
        ("Caller-Caller-ID-Name", "João da Silva; 50% off"),
    ]
    body = json.dumps({"file": "/tmp/a_1.tmp.r8"}).encode()
    stream = b"".join(
        [
            serialize.auth_request(),
            serialize.command_reply("+OK accepted"),
            serialize.api_response("+OK 1234\n"),
            serialize.bgapi_reply("job-1"),
            serialize.event_plain(pairs, body),
            serialize.event_json(pairs, body),
            serialize.event_xml(pairs, body),
            serialize.log_data("[NOTICE] switch_channel.c:1 hello\n", level=5, channel_uuid="a-1"),
            serialize.linger_notice("a-1", "sofia/internal/1000@x"),
            serialize.disconnect_notice("a-1"),
            serialize.rude_rejection(),
        ]
    )
    reader = FrameReader()
    reader.feed(stream)
    frames = list(reader)
    assert [f.content_type for f in frames] == [
        "auth/request",
        "command/reply",
        "api/response",
        "command/reply",
        "text/event-plain",
        "text/event-json",
        "text/event-xml",
        "log/data",
        "text/disconnect-notice",
        "text/disconnect-notice",
        "text/rude-rejection",
    ]
    assert frames[3].headers["Job-UUID"] == "job-1"
    for frame in frames[4:7]:
        event = frame.event
        assert event.name == "CUSTOM"
        assert event.subclass == "mod_audio_stream::play"
        assert event.unique_id == "a-1"
        assert event["Caller-Caller-ID-Name"] == "João da Silva; 50% off"
        assert json.loads(event.body) == {"file": "/tmp/a_1.tmp.r8"}
    assert frames[7].headers["User-Data"] == "a-1"
    assert frames[8].headers["Content-Disposition"] == "linger"
    assert frames[10].body == b"Access Denied, go away.\n"


def test_json_event_arrays_and_missing_body():
    reader = FrameReader()
    reader.feed(serialize.event_json([("Event-Name", "HEARTBEAT"), ("X", "ARRAY::a|:b")]))
    event = next(iter(reader)).event
    assert event.name == "HEARTBEAT"
    assert event["X"] == "ARRAY::a|:b"
    assert event.body is None


def test_crlf_header_blocks_are_accepted():
    reader = FrameReader()
    reader.feed(b"\r\nContent-Type: command/reply\r\nReply-Text: +OK\r\n\r\n")
    frame = reader.next_frame()
    assert frame is not None and frame.reply_text == "+OK"
