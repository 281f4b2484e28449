"""The parser against the real FreeSWITCH 1.10 recordings."""

from __future__ import annotations

import re

import pytest

from callcontrol.esl import Event, FrameReader, serialize, url_decode
from tests.esl.traces import ALL_TRACES, frames_of, recv_stream


@pytest.mark.parametrize("path", ALL_TRACES, ids=lambda p: p.name)
def test_every_recorded_frame_parses_one_by_one(path):
    for raw in frames_of(path):
        reader = FrameReader()
        reader.feed(raw)
        frame = reader.next_frame()
        assert frame is not None
        assert reader.next_frame() is None
        assert reader.buffered == 0
        ct = re.search(rb"^Content-Type: (.*)$", raw, re.M)
        assert ct is not None
        assert frame.content_type == ct.group(1).decode()


@pytest.mark.parametrize("path", ALL_TRACES, ids=lambda p: p.name)
def test_whole_stream_gives_same_frames_as_recorded(path):
    reader = FrameReader(keep_raw=True)
    reader.feed(recv_stream(path))
    raws = []
    while reader.next_frame() is not None:
        raws.append(reader.last_raw)
    assert raws == frames_of(path)


def _decoded_pairs(event: Event) -> list[tuple[str, str]]:
    pairs = [(k, url_decode(v)) for k, v in event.headers.raw_items()]
    if event.body is not None:
        # the inner Content-Length is written by the serialiser from the body itself
        assert pairs[-1][0] == "Content-Length"
        pairs = pairs[:-1]
    return pairs


@pytest.mark.parametrize("path", ALL_TRACES, ids=lambda p: p.name)
def test_reencoding_parsed_events_gives_the_same_bytes(path):
    checked = 0
    for raw in frames_of(path):
        reader = FrameReader()
        reader.feed(raw)
        frame = reader.next_frame()
        assert frame is not None
        if frame.content_type == "text/event-plain":
            event = frame.event
            assert serialize.event_plain(_decoded_pairs(event), event.body) == raw
            checked += 1
        elif frame.has_event():
            pairs = [(k, url_decode(v)) for k, v in frame.headers.raw_items()]
            assert serialize.event_plain_text(pairs) == raw
            checked += 1
    assert checked > 0


def test_connect_reply_is_channel_data_with_reply_fields():
    path = next(p for p in ALL_TRACES if p.name == "c_bridge_success.outbound.jsonl")
    reader = FrameReader()
    reader.feed(frames_of(path)[0])
    frame = reader.next_frame()
    assert frame.content_type == "command/reply"
    assert frame.reply_text == "+OK\n"
    assert frame.ok
    event = frame.event
    assert event.name == "CHANNEL_DATA"
    assert event.unique_id == "dcc3fb53-cf2c-4ce7-af26-7e5d519f959f"
    assert event["variable_current_application_data"] == "127.0.0.1:8084 async full"
    assert event["Socket-Mode"] == "async"
    assert event["FreeSWITCH-IPv6"] == "fd00::2"


def test_background_job_carries_its_result_as_inner_body():
    path = next(p for p in ALL_TRACES if p.name == "e_bgapi_originate.inbound.jsonl")
    jobs = []
    reader = FrameReader()
    reader.feed(recv_stream(path))
    for frame in reader:
        if frame.is_event and frame.event.name == "BACKGROUND_JOB":
            jobs.append(frame.event)
    assert jobs, "the recording has BACKGROUND_JOB events"
    bodies = {job.body_text for job in jobs}
    assert any(b.startswith("+OK ") for b in bodies)
    assert "-ERR USER_BUSY\n" in bodies
    for job in jobs:
        assert job.job_uuid and job["Job-Command"]


def test_repeated_headers_keep_every_value():
    path = next(p for p in ALL_TRACES if p.name == "c_bridge_success.outbound.jsonl")
    reader = FrameReader()
    reader.feed(recv_stream(path))
    completes = [
        f.event for f in reader if f.is_event and f.event.name == "CHANNEL_HANGUP_COMPLETE"
    ]
    assert completes
    assert len(completes[0].headers.get_all("Hangup-Cause")) == 2
