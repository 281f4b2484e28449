"""The parser's fast paths give exactly the answers of the slow reference code, or step aside.

The references: ``urllib.parse.unquote(value, errors="surrogateescape")`` for values,
``parse_header_lines`` (the strict line parser) for header blocks and for the routing keys
of a plain event.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from callcontrol.esl import Event, FrameReader, Headers, ProtocolError, url_decode, url_encode
from callcontrol.esl._headers import (
    _fast_fields,
    _fast_pairs,
    parse_header_lines,
    split_header_block,
)
from callcontrol.esl._reader import _envelope
from tests.esl.traces import ALL_TRACES, recv_stream

HEX = "0123456789abcdefABCDEF"
# escapes of every kind: ASCII, UTF-8 bytes, broken ones, in every case of hex digit
escapes = st.builds(lambda a, b: f"%{a}{b}", st.sampled_from(HEX + "g%"), st.sampled_from(HEX))
pieces = st.one_of(
    escapes,
    st.sampled_from(["%", "%4", "%C3%A9", "%E2%82%AC", "%F0%9F", "%0A", "%0D%0A", "%3A%20"]),
    st.text(max_size=4),
    st.text(alphabet=":% \t\r\n\x00\x0bé\udcff", max_size=3),
)
values = st.lists(pieces, max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(values)
@example("%C3%A9%41")
@example("%41\udcc3")
@example("é%41%4")
def test_url_decode_is_unquote(value):
    assert url_decode(value) == unquote(value, errors="surrogateescape")


# what a2b_qp treats apart from unquote: '=', '==', '=' at the end or before a line end, '_'
qp_pieces = st.one_of(
    pieces,
    st.sampled_from(["=", "==", "=41", "%=", "%%41", "%\n", "%\r\n", "%\r", "_", "%5F", "%3D"]),
)
def _reference(block: bytes, *, decode: bool) -> tuple[list[str], list[str]] | None:
    try:
        pairs = parse_header_lines(block)
    except ProtocolError:
        return None
    names = [n for n, _ in pairs]
    raw = [v for _, v in pairs]
    return names, [unquote(v, errors="surrogateescape") for v in raw] if decode else raw


names = st.one_of(
    st.sampled_from(["Event-Name", "Unique-ID", "Hangup-Cause", "variable_sip_h_X-A", "Core-UUID"]),
    st.text(alphabet="Ab-_%: \t\r\né\x00", min_size=0, max_size=6),
)
lines = st.one_of(
    st.builds(lambda n, v: f"{n}: {url_encode(v)}", names, st.text(max_size=12)),
    st.builds(lambda n, v: f"{n}: {v}", names, values),
    st.builds(lambda n, v: f"{n}:{v}", names, values),
    st.text(max_size=10),
)
# blocks in FreeSWITCH's own shape (the fast paths' domain), with odd escapes in the values
shaped_lines = st.builds(
    lambda n, v, raw: f"{n}: {url_encode(v)}{raw.replace(' ', '').replace(':', '')}",
    st.sampled_from(["Event-Name", "Unique-ID", "Hangup-Cause", "A", "variable_x"]),
    st.text(max_size=12),
    values,
)
blocks = st.one_of(
    st.lists(lines, min_size=1, max_size=12),
    st.lists(shaped_lines, min_size=1, max_size=12),
).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogateescape"))


@settings(max_examples=400, deadline=None)
@given(blocks, st.booleans())
@example(b"A:b%3A c", True)  # no ": " separator, yet one appears once decoded
@example(b"A:b c\nD: x%3A%20y", True)
@example(b"A: x%0Ay\nB: z", True)  # a decoded newline
@example(b"A: 1\nA: 2", True)
def test_fast_split_agrees_with_the_strict_parser(block, decode):
    fast = _fast_pairs(block, decode=decode)
    if fast is not None:
        assert fast == _reference(block, decode=decode)


# blocks in FreeSWITCH's shape whose values hold what a2b_qp reads apart from unquote
qp_lines = st.builds(
    lambda n, ps: f"{n}: {''.join(ps).replace(' ', '').replace(':', '')}",
    st.sampled_from(["Event-Name", "Unique-ID", "Hangup-Cause", "A", "variable_x", ""]),
    st.lists(st.one_of(qp_pieces, st.sampled_from(["%00", "%0A", "%3A%20", "\x00"])), max_size=6),
)
qp_blocks = st.lists(qp_lines, min_size=1, max_size=12).map(
    lambda ls: "\n".join(ls).encode("utf-8", "surrogateescape")
)


def _first_of(reference: tuple[list[str], list[str]] | None) -> dict[str, str] | None:
    if reference is None:
        return None
    first: dict[str, str] = {}
    for name, value in zip(*reference, strict=True):
        first.setdefault(name, value)
    return first


@settings(max_examples=500, deadline=None)
@given(st.one_of(qp_blocks, blocks))
@example(b"A: %g0\nB: %41")  # a '%' that starts no escape: a2b_qp would make it '='
@example(b"A: x%\nB: %0A")  # a soft line break, made up for by a decoded line end
@example(b"A: %00\nB: c")  # a decoded NUL, the separator of the one-pass cut
@example(b"A: =41%g0\nB: c")  # a raw "=XX" (decoded by a2b_qp) and a lone "%": same length
@example(b": x\nB: c")  # an empty name, which the strict parser refuses
@example(b"A: 1\nA: 2")
@example(b"A:b%3A c")  # the colon's space not next to it, yet one appears once decoded
@example(b"A:b c\nD: x%3A%20y")
def test_fast_fields_agree_with_the_strict_parser(block):
    fields = _fast_fields(block)
    if fields is not None:
        assert fields == _first_of(_reference(block, decode=True))


@settings(max_examples=150, deadline=None)
@given(blocks)
def test_headers_agree_with_the_strict_parser(block):
    # long enough for the fast paths, which leave blocks under 256 bytes to the strict parser
    block = b"\n".join([block] * (1 + 256 // (len(block) + 1)))
    reference = _reference(block, decode=True)
    headers = Headers(block)
    if reference is None:
        with pytest.raises(ProtocolError):
            dict(headers.items())
        with pytest.raises(ProtocolError):
            split_header_block(block)
        return
    names, decoded = reference
    first: dict[str, str] = {}
    for name, value in zip(names, decoded, strict=True):
        first.setdefault(name, value)
    assert dict(headers.items()) == first
    assert list(headers) == list(first)
    assert split_header_block(block) == parse_header_lines(block)
    pairs = list(zip(names, decoded, strict=True))
    for name in first:
        assert headers.get_all(name) == [v for n, v in pairs if n == name]


envelope_lines = st.sampled_from(
    [
        "Content-Length: 12",
        "Content-Length:12",
        "Content-Length: 1x",
        "Content-Length: ",
        "Content-Type: text/event-plain",
        "Content-Type: api/response",
        "Content-Type: text/event-plain\r",
        "Content-Type:  command/reply",
        "Content-Type: other/type",
        "Reply-Text: +OK",
        "",
    ]
)


@given(st.lists(envelope_lines, min_size=1, max_size=3).map("\n".join))
def test_envelope_agrees_with_the_strict_parser(text):
    block = text.encode()
    envelope = _envelope(block)
    if envelope is None:
        return
    plain = dict(parse_header_lines(block))
    assert envelope == (plain["Content-Type"], int(plain.get("Content-Length", "0")))
    # the envelope's headers, split without the parser's checks, are the parser's
    fast, reference = Headers.of_envelope(block), Headers(block)
    assert fast.raw_items() == reference.raw_items() == parse_header_lines(block)
    assert dict(fast.items()) == dict(reference.items())
    assert list(fast) == list(reference)
    for name in plain:
        assert fast.get_all(name) == reference.get_all(name)
        assert fast.raw(name) == reference.raw(name)


@settings(max_examples=250, deadline=None)
@given(blocks, st.sampled_from(["Event-Name", "Unique-ID", "Job-UUID", "Application-UUID"]))
@example(b"A: 1\n: 2", "Unique-ID")  # an empty name past the first line
@example(b"Unique-ID:x y\nUnique-ID: z", "Unique-ID")  # the first value, however spaced
@example(b"Content-Length: 0\nEvent-Name: X", "Event-Name")
@example(b"Content-Length: 3\nEvent-Name: X", "Event-Name")
def test_plain_events_are_checked_whole_and_route_by_the_strict_parsers_values(block, key):
    """``from_plain`` refuses what the strict parser refuses; its keys are the parser's."""
    assume(b"\n\n" not in block and not block.endswith(b"\n"))
    data = block + b"\n\n"
    try:
        pairs = parse_header_lines(block)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            Event.from_plain(data)
        return
    first: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name, value)
    length = first.get("Content-Length")
    if length is not None and not (length.isdigit() and length.isascii() and int(length) == 0):
        with pytest.raises(ProtocolError):
            Event.from_plain(data)
        return
    event = Event.from_plain(data)
    assert event.body == (None if length is None else b"")
    raw = first.get(key)
    want = None if raw is None else unquote(raw, errors="surrogateescape")
    got = {
        "Event-Name": lambda: event.name or None,
        "Unique-ID": lambda: event.unique_id,
        "Job-UUID": lambda: event.job_uuid,
        "Application-UUID": lambda: event.application_uuid,
    }[key]()
    assert got == (want or None if key == "Event-Name" else want)
    assert dict(event.headers.items()) == _first_of(_reference(block, decode=True))


@pytest.mark.parametrize("path", ALL_TRACES, ids=lambda p: p.name)
def test_real_traces_take_the_fast_paths_and_agree(path):
    reader = FrameReader()
    reader.feed(recv_stream(path))
    for frame in reader:
        if frame.content_type != "text/event-plain":
            continue
        head = frame.event._data[: frame.event._end]
        assert _fast_pairs(head, decode=True) == _reference(head, decode=True)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="+OK -ERR:%20\r\x00é\udcff", max_size=12),
    st.one_of(st.none(), st.text(alphabet="ab-1\r: ", max_size=8)),
)
@example("+OK accepted", None)
@example("+OK Job-UUID: j-1", "j-1")
@example("+OK\r", None)
def test_command_replies_read_in_one_go_agree_with_the_strict_parser(text, job):
    block = f"Content-Type: command/reply\nReply-Text: {text}"
    if job is not None:
        block += f"\nJob-UUID: {job}"
    raw = block.encode("utf-8", "surrogateescape")
    reader = FrameReader()
    reader.feed(raw + b"\n\n")
    frame = reader.next_frame()
    assert frame is not None and reader.buffered == 0
    assert frame.content_type == "command/reply"
    reference = Headers.parsed(raw)
    assert frame.headers.raw_items() == reference.raw_items() == parse_header_lines(raw)
    assert dict(frame.headers.items()) == dict(reference.items())
    assert frame.reply_text == reference.get("Reply-Text", "")
    assert ("Job-UUID" in frame.headers) == (job is not None)


# lines after a type-first Content-Type: FreeSWITCH's own (the outbound disconnect notice and
# linger notice), and what the strict parser reads otherwise or refuses
typed_lines = st.sampled_from(
    [
        "Controlled-Session-UUID: 78ad8728-6fcc-4f14-a86a-9aa211d2aa25",
        "Content-Disposition: linger",
        "Channel-Name: sofia/internal/1000%40example.com",
        "Linger-Time: -1",
        "Event-Name: CHANNEL_DATA",
        "Content-Length: 3",
        "Content-Length: 0",
        "Content-Length:3",
        "content-length: 2",
        "Content-Type: api/response",
        "Content-Type:auth/request",
        "Content-Typed: x",
        "A: b: c",
        "A:  b",
        "A: b\r",
        "A:\tb",
        "A :b",
        " A: b",
        "A\t: b",
        ": b",
        "no colon",
        "A: é%C3%A9",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["api/response", "auth/request", "command/reply", "text/disconnect-notice",
                     "text/rude-rejection", "log/data"]),
    st.lists(typed_lines, max_size=5),
    st.one_of(st.none(), st.integers(0, 3)),
    st.booleans(),
)
@example("text/disconnect-notice", ["Controlled-Session-UUID: u-1", "Content-Disposition: linger",
                                    "Channel-Name: loopback/9000-b", "Linger-Time: -1"], 0, False)
@example("text/disconnect-notice", ["Controlled-Session-UUID: u-1",
                                    "Content-Disposition: disconnect"], 3, True)
def test_frames_written_type_first_read_as_the_strict_parser_reads_them(
    content_type, lines, length, byte_by_byte
):
    """Read in one go or not, a type-first frame is the one its lines make, or refused."""
    head = [f"Content-Type: {content_type}", *lines]
    if length is not None:
        head.append(f"Content-Length: {length}")
    block = "\n".join(head).encode("utf-8", "surrogateescape")
    try:
        pairs = parse_header_lines(block)
        last = dict(pairs)
        size = int(last.get("Content-Length", "0"))
    except (ProtocolError, ValueError):
        pairs = None
    stream = block + b"\n\n" + b"xyz"[: 0 if pairs is None else size]
    reader = FrameReader()
    frames = []
    try:
        for chunk in ([stream[i : i + 1] for i in range(len(stream))] if byte_by_byte
                      else [stream]):
            reader.feed(chunk)
            frames.extend(reader)
    except ProtocolError:
        assert pairs is None or not last["Content-Length"].isdigit()
        return
    assert pairs is not None
    [frame] = frames
    assert reader.buffered == 0
    assert frame.content_type == last["Content-Type"]
    assert frame.body == b"xyz"[:size]
    reference = Headers(block)
    assert frame.headers.raw_items() == pairs
    assert dict(frame.headers.items()) == dict(reference.items())
    # only a command reply carries an event in its block (the outbound connect reply's)
    carries = last["Content-Type"] == "command/reply" and "Event-Name" in reference
    assert frame.has_event() == carries
    if carries:
        assert frame.event.name == reference["Event-Name"]
