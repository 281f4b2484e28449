"""The simulator against the real recordings: same commands in, same kinds of frames out.

Each scenario replays the client side of a recorded outbound trace (its ``send`` lines, at
their recorded times, on MockClock) against the simulator, with the B-leg outcomes the lab's
endpoints had, and compares what the simulator sends with what FreeSWITCH sent:

* the replies, in order: content type and Reply-Text / api output shape (UUIDs by role);
* the events, in order: name and whose (A, B or a job);
* the disconnect notices (linger / disconnect), in order;
* the header names of each event type (channel variables aside, which depend on the
  endpoint module) and of the connect reply's channel data.

The caller's leg is dressed as the lab's (``loopback/9000-b``) so header sets can be equal.
The socket app's first CHANNEL_PARK races with the first commands on a real switch
(callflow.md §1.5): it is ignored on both sides.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trio
import trio.testing

from callcontrol.esl import Frame, FrameReader
from callcontrol.testing.freeswitch import (
    Answer,
    Busy,
    BusyAfterRinging,
    NoAnswer,
    Outcome,
    open_freeswitch_sim,
)

TRACES = Path(__file__).parent.parent / "data" / "traces"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LAB_PROFILE = {
    "name": "loopback/9000-b", "source": "mod_loopback", "username": "",
    "network_addr": "", "callee_id_name": "Outbound Call", "callee_id_number": "default",
    "context": "default",
}

# scenario -> (B-leg outcomes by dial string, caller hangup time or None)
SCENARIOS: dict[str, tuple[dict[str, Outcome], float | None]] = {
    "a_answer_playback_caller_hangup": ({}, 6.617),
    "b_originate_failures": ({
        "loopback/9002/default": NoAnswer(),
        "loopback/9003/default": BusyAfterRinging(0.02),
        "sofia/internal/9003@127.0.0.1:5060": BusyAfterRinging(0.02),
        "sofia/internal/9002@127.0.0.1:5060": NoAnswer(),
    }, None),
    "c_bridge_success": ({"loopback/9001/default": Answer(after=0.02)}, None),
    "d_caller_hangup_while_b_ringing": ({"loopback/9002/default": NoAnswer()}, 1.533),
    "flow/q1a_myevents_1001": ({"user/1001@127.0.0.1": Answer()}, None),
    "flow/q1x2_nomyevents_1001": ({"user/1001@127.0.0.1": Answer()}, None),
    "flow/q1x2_nomyevents_1002": ({"user/1002@127.0.0.1": Busy()}, None),
    "flow/q1x2_nomyevents_1003": ({"user/1003@127.0.0.1": NoAnswer()}, None),
    "flow/q2b_rearm_uuid_transfer_park_inline": ({}, None),
    "flow/q3_park_after_bridge_kill_b_playback_unicast": ({"user/1001@127.0.0.1": Answer()},
                                                         None),
    "flow/q4b_bgapi_originate_caller_hangup": ({"user/1003@127.0.0.1": NoAnswer()}, 1.54),
}


def _load(name: str) -> tuple[list[tuple[float, bytes]], list[Frame]]:
    lines = (TRACES / f"{name}.outbound.jsonl").read_text().splitlines()[1:]
    sends: list[tuple[float, bytes]] = []
    reader = FrameReader()
    for line in lines:
        rec = json.loads(line)
        if rec["dir"] == "send":
            sends.append((rec["t"], rec["data"].encode()))
        else:
            reader.feed(rec["data"].encode())
    return sends, list(reader)


def _role(value: str | None, a_uuid: str) -> str:
    if value is None:
        return "-"
    return "A" if value == a_uuid else "B"


def _shape(text: str, a_uuid: str) -> str:
    text = text.replace(a_uuid, "<a>")
    text = UUID.sub("<uuid>", text)
    return "UP <status>" if text.startswith("UP ") else text


def summarise(frames: list[Frame]) -> dict[str, object]:
    a_uuid = frames[0].event.unique_id or ""
    replies: list[tuple[str, str]] = []
    events: list[tuple[str, str]] = []
    notices: list[str] = []
    headers: dict[str, set[str]] = {}
    first_park_seen = False
    for frame in frames[1:]:
        if frame.is_event:
            event = frame.event
            role = _role(event.unique_id, a_uuid) if event.unique_id else "job"
            if event.name == "CHANNEL_PARK" and not first_park_seen and role == "A":
                first_park_seen = True
                continue
            if event.name == "CHANNEL_EXECUTE":
                first_park_seen = True
            events.append((event.name, role))
            names = {n for n, _ in event.headers.raw_items() if not n.startswith("variable_")}
            headers.setdefault(f"{event.name}/{role}", set()).update(names)
        elif frame.content_type == "text/disconnect-notice":
            notices.append(frame.headers.get("Content-Disposition", ""))
        else:
            replies.append((frame.content_type, _shape(frame.reply_text, a_uuid)))
    connect = {n for n, _ in frames[0].event.headers.raw_items() if not n.startswith("variable_")}
    return {"replies": replies, "events": events, "notices": notices, "headers": headers,
            "connect": connect}


async def _replay(name: str, sends: list[tuple[float, bytes]], a_uuid: str) -> list[Frame]:
    outcomes, caller_hangup = SCENARIOS[name]
    frames: list[Frame] = []
    async with open_freeswitch_sim() as sim:
        sim.endpoints.update(outcomes)
        ours, theirs = trio.testing.memory_stream_pair()
        call = sim.attach_outbound(
            ours, caller_number="0000000000", destination_number="9000", codec="L16",
            uuid=a_uuid, socket_address="127.0.0.1:8084", profile=LAB_PROFILE,
        )

        async def read() -> None:
            reader = FrameReader()
            while data := await theirs.receive_some(65536):
                reader.feed(data)
                frames.extend(reader)

        async def hang_up_at(t: float) -> None:
            await trio.sleep_until(t)
            await call.hangup()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            if caller_hangup is not None:
                nursery.start_soon(hang_up_at, caller_hangup)
            for t, data in sends:
                await trio.sleep_until(t)
                await theirs.send_all(data)
            await call.wait_closed()
            nursery.cancel_scope.cancel()
    return frames


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_simulator_matches_recording(name: str, autojump_clock: trio.testing.MockClock
                                           ) -> None:
    sends, recorded = _load(name)
    a_uuid = recorded[0].event.unique_id or ""
    simulated = await _replay(name, sends, a_uuid)
    want, got = summarise(recorded), summarise(simulated)
    assert got["replies"] == want["replies"]
    assert got["events"] == want["events"]
    assert got["notices"] == want["notices"]
    assert got["connect"] == want["connect"]
    want_headers = want["headers"]
    got_headers = got["headers"]
    assert isinstance(want_headers, dict) and isinstance(got_headers, dict)
    for key, names in want_headers.items():
        assert got_headers.get(key) == names, key


def test_myevents_with_b_filter_is_silent() -> None:
    """q1a as recorded: after ``filter Unique-ID <b>`` only the notices arrive."""
    _, recorded = _load("flow/q1a_myevents_1001")
    after_filter = False
    kinds = []
    for frame in recorded[1:]:
        if frame.content_type == "command/reply" and "filter added" in frame.reply_text:
            after_filter = True
            continue
        if after_filter:
            kinds.append(frame.content_type)
    assert "text/event-plain" not in kinds
    assert kinds.count("text/disconnect-notice") == 2
