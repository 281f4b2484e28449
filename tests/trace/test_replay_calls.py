"""``callcontrol replay`` of whole calls recorded by ``serve --record``: every recording in
tests/data/traces/replay/ (tests/trace/flows.py made them against the simulator) replays the
real secretary flow, its AI and its generated values with 0 differences; a changed AI decision
or command is reported."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest
import trio
import trio.testing

from callcontrol.db import PoolOptions, open_database
from callcontrol.trace.format import read_trace
from callcontrol.trace.replay import replay_call, run_replay
from tests.trace.flows import FLOWS, RECORDINGS, build_office

ALL = sorted(RECORDINGS.glob("*.jsonl"))


def test_every_flow_has_its_recording() -> None:
    assert {path.stem for path in ALL} == set(FLOWS)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
async def test_a_recorded_call_replays_with_no_difference(
    db, autojump_clock: trio.testing.MockClock, path: Path
) -> None:
    await build_office(db)
    result = await replay_call(read_trace(path), db)
    assert result.ok, result.render(path.name)
    assert result.recorded > 0 and result.matched == result.recorded
    assert result.ai_recorded > 0 and result.ai_matched == result.ai_recorded
    # the flow ran on the database: the call's row is there, as the recorded call wrote it
    assert await db.fetch_value("SELECT count(*) FROM callcontrol_calls") == 1


def _tampered(
    path: Path, tmp_path: Path, direction: str, old: str, new: str, where: str = ""
) -> Path:
    """The recording with ``old`` replaced by ``new`` in the first ``direction`` line that
    holds it and ``where`` (the file's text: JSON-escaped)."""
    lines = path.read_text().split("\n")
    for n, line in enumerate(lines):
        if f'"dir": "{direction}"' in line and old in line and where in line:
            lines[n] = line.replace(old, new, 1)
            break
    else:
        raise AssertionError(f"{old!r} is not in a {direction} line of {path.name}")
    out = tmp_path / path.name
    out.write_text("\n".join(lines))
    return out


async def test_a_changed_ai_decision_is_reported(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # the model asks for the default destination instead: the server rings 9000, not 1001,
    # and tells the model something else
    path = _tampered(RECORDINGS / "busy.jsonl", tmp_path, "ai_recv",
                     r'\\\"destination\\\": \\\"Suporte', r'\\\"destination\\\": \\\"Atendimento',
                     where="function_call_arguments.done")
    await build_office(db)
    result = await replay_call(read_trace(path), db)
    assert not result.ok
    kinds = {d.kind for d in result.differences}
    assert "differs" in kinds  # the originate
    assert any("9000" in (d.actual or b"").decode() for d in result.differences)


async def test_a_changed_delegation_result_is_reported(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # GPT-Live's resolver chose the default destination: the server rings 9000, not 1001
    path = _tampered(RECORDINGS / "live_busy.jsonl", tmp_path, "ai_resolve",
                     r'\"destination\": \"Suporte', r'\"destination\": \"Atendimento')
    await build_office(db)
    result = await replay_call(read_trace(path), db)
    assert not result.ok
    assert any("9000" in (d.actual or b"").decode() for d in result.differences)


async def test_a_changed_command_is_reported_at_its_line(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = _tampered(RECORDINGS / "busy.jsonl", tmp_path, "send",
                     "local_stream://moh", "local_stream://jazz")
    await build_office(db)
    result = await replay_call(read_trace(path), db)
    (difference,) = result.differences
    assert difference.kind == "differs"
    assert b"local_stream://jazz" in (difference.expected or b"")
    assert b"local_stream://moh" in (difference.actual or b"")
    assert "local_stream://jazz" in result.render()


async def test_a_changed_message_to_the_ai_is_reported(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = _tampered(RECORDINGS / "busy.jsonl", tmp_path, "ai_send",
                     r'\\\"status\\\":\\\"busy', r'\\\"status\\\":\\\"free')
    await build_office(db)
    result = await replay_call(read_trace(path), db)
    (difference,) = result.differences
    assert difference.kind == "ai-differs"
    assert "told the AI something else" in result.render()


def test_the_command_replays_a_recorded_call_and_writes_nothing(db_url: str, capsys) -> None:
    async def rows(build: bool) -> int:
        options = PoolOptions(min_size=1, max_size=1, inline=True)
        async with open_database(db_url, options) as db:
            if build:
                await build_office(db)
            return int(await db.fetch_value("SELECT count(*) FROM callcontrol_calls"))

    assert trio.run(rows, True) == 0
    path = RECORDINGS / "busy.jsonl"
    code = run_replay(argparse.Namespace(trace=str(path), database=db_url))
    out = capsys.readouterr().out  # (the test's own database logs come first)
    assert code == 0, out
    assert f"replay {path}: OK — 13/13 recorded commands matched" in out
    assert trio.run(rows, False) == 0  # the call's row was written, and rolled back


def test_the_command_asks_for_the_database_of_a_recorded_call(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CALLCONTROL_CONFIG", raising=False)
    path = RECORDINGS / "busy.jsonl"
    assert run_replay(argparse.Namespace(trace=str(path), database=None)) == 2
    assert "--database URL" in capsys.readouterr().err


async def test_a_recorded_port_taken_on_this_machine_is_reported_as_such(
    db, autojump_clock: trio.testing.MockClock
) -> None:
    trace = read_trace(RECORDINGS / "busy.jsonl")
    taken = int(trace.generated("port")[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", taken))
        await build_office(db)
        result = await replay_call(trace, db)
    assert not result.ok
    assert "a recorded unicast port is taken on this machine" in result.render()
