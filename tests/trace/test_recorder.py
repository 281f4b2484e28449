"""RecordingStream: byte-exact recv lines, one per frame, send lines, timing, file naming,
and a recorder that fails without hurting the call."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import structlog
import trio
import trio.testing

from callcontrol.esl import FrameReader
from callcontrol.trace.format import read_trace
from callcontrol.trace.recorder import RecordingStream, recording_wrapper
from callcontrol.trace.stats import compute_stats
from tests.trace.fakefs import A_UUID, FakeFreeSwitch, agent_call
from tests.trace.test_format import TRACES

REAL = TRACES / "c_bridge_success.outbound.jsonl"


async def _pump_real_frames(fs: trio.abc.Stream, stream: bytes, seed: int) -> None:
    """FreeSWITCH's side: the real bytes in random chunks, a virtual second apart."""
    rng = random.Random(seed)
    pos = 0
    while pos < len(stream):
        size = rng.choice([1, 7, 100, 1500, 9000])
        await fs.send_all(stream[pos:pos + size])
        pos += size
        await trio.sleep(1)
    await fs.aclose()


async def _drain(stream: trio.abc.Stream) -> bytes:
    received = bytearray()
    while data := await stream.receive_some():
        received += data
    return bytes(received)


@pytest.mark.parametrize("seed", range(3))
async def test_recv_lines_are_whole_frames_that_concatenate_to_the_bytes_received(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    sent = read_trace(REAL).data("recv")
    fs, server = trio.testing.memory_stream_pair()
    rec = RecordingStream(server, tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump_real_frames, fs, sent, seed)
        received = await _drain(rec)
        await rec.aclose()
    assert received == sent
    trace = read_trace(rec.path)  # type: ignore[arg-type]
    recv = [line.data for line in trace.lines if line.dir == "recv"]
    assert b"".join(recv) == sent
    assert recv[-1] == b""  # EOF marker
    for data in recv[:-1]:  # each line is exactly one frame
        reader = FrameReader()
        reader.feed(data)
        assert reader.next_frame() is not None and reader.buffered == 0
    assert compute_stats(trace) == compute_stats(read_trace(REAL))
    assert rec.path is not None and rec.path.name.endswith(f"-{rec.unique_id}.jsonl")
    assert trace.header.mode == "outbound" and trace.header.extra["recorder"] == "callcontrol"


async def test_sends_and_times_are_recorded(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    _fs, server = trio.testing.memory_stream_pair()
    rec = RecordingStream(server, tmp_path)
    await trio.sleep(2.5)
    await rec.send_all(b"connect\n\n")
    await rec.send_all(bytearray(b"linger\n\n"))
    await rec.aclose()
    trace = read_trace(rec.path)  # type: ignore[arg-type]
    assert [(line.t, line.dir, line.data) for line in trace.lines] == [
        (2.5, "send", b"connect\n\n"), (2.5, "send", b"linger\n\n")]
    assert rec.path is not None and rec.path.name.endswith("-unknown.jsonl")


async def test_a_call_through_the_wrapper_is_named_by_its_uuid(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fs_side, server_side = trio.testing.memory_stream_pair()
    wrap = recording_wrapper(tmp_path / "calls")  # created on first write
    async with trio.open_nursery() as nursery:
        nursery.start_soon(FakeFreeSwitch(fs_side).run)
        await agent_call(wrap(server_side))
    [path] = (tmp_path / "calls").iterdir()
    assert path.name.endswith(f"-{A_UUID}.jsonl")
    trace = read_trace(path)
    sends = [line.data.split(b"\n", 1)[0] for line in trace.lines if line.dir == "send"]
    assert sends == [b"connect", b"event plain CHANNEL_EXECUTE_COMPLETE BACKGROUND_JOB",
                     b"filter Unique-ID " + A_UUID.encode(), sends[3], b"sendmsg",
                     sends[5], b"exit"]
    assert sends[3].startswith(b"bgapi originate") and sends[5].startswith(b"api uuid_kill")
    # t is the trio clock: the fake FreeSWITCH answers the job after 1 s, plays for 1 s
    recv = [line for line in trace.lines if line.dir == "recv"]
    job = next(line for line in recv if b"BACKGROUND_JOB" in line.data)
    done = next(line for line in recv if b"CHANNEL_EXECUTE_COMPLETE" in line.data)
    assert (job.t, done.t) == (1.0, 2.0)


async def test_large_traces_are_flushed_during_the_call(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    _fs, server = trio.testing.memory_stream_pair()
    rec = RecordingStream(server, tmp_path, flush_bytes=1)
    await rec.send_all(b"connect\n\n")
    assert rec.path is not None
    assert len(rec.path.read_text().splitlines()) == 2
    await rec.send_all(b"exit\n\n")
    assert len(rec.path.read_text().splitlines()) == 3
    await rec.aclose()
    assert len(read_trace(rec.path).lines) == 2


async def test_cancelled_call_still_leaves_its_trace(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fs, server = trio.testing.memory_stream_pair()
    rec = RecordingStream(server, tmp_path)
    await rec.send_all(b"connect\n\n")
    await fs.send_all(b"Content-Type: command/reply\nReply-Text: +OK\n\nContent-Type: comm")
    await rec.receive_some()
    await trio.aclose_forcefully(rec)  # what handle_call does in its finally
    trace = read_trace(rec.path)  # type: ignore[arg-type]
    assert [line.data for line in trace.lines if line.dir == "recv"] == [
        b"Content-Type: command/reply\nReply-Text: +OK\n\n", b"Content-Type: comm"]


async def test_unparsable_stream_is_recorded_chunk_by_chunk(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fs, server = trio.testing.memory_stream_pair()
    rec = RecordingStream(server, tmp_path)
    chunks = [b"Reply-Text: no content type\n\n", b"more\n\n", b"\xff\x00"]
    for chunk in chunks:
        await fs.send_all(chunk)
        assert await rec.receive_some() == chunk
    await rec.aclose()
    trace = read_trace(rec.path)  # type: ignore[arg-type]
    assert [line.data for line in trace.lines] == chunks
    raw = rec.path.read_text()  # type: ignore[union-attr]
    assert "data_b64" in raw.splitlines()[-1]


async def test_write_failure_is_logged_and_the_call_goes_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    fs, server = trio.testing.memory_stream_pair()
    rec = RecordingStream(server, blocker, flush_bytes=1)
    with structlog.testing.capture_logs() as logs:
        await rec.send_all(b"connect\n\n")  # the write fails here
    await fs.send_all(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
    assert await rec.receive_some() == b"Content-Type: command/reply\nReply-Text: +OK\n\n"
    assert await fs.receive_some() == b"connect\n\n"
    await rec.aclose()
    assert rec.path is None
    assert [entry["event"] for entry in logs] == ["trace.write_failed"]
    assert logs[0]["log_level"] == "error" and "not-a-dir" in logs[0]["directory"]
