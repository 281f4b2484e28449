"""Replay: a call recorded from a handler replays clean against the same handler, and fails
with a readable diff (exit 1) when the handler behaves differently."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from callcontrol.trace.format import Trace, TraceHeader, TraceLine, dumps, read_trace
from callcontrol.trace.recorder import recording_wrapper
from callcontrol.trace.replay import (
    CallHandler,
    CommandSplitter,
    Expect,
    Feed,
    UuidRoles,
    build_script,
    replay_file,
    run_replay,
)
from tests.trace.fakefs import FakeFreeSwitch, agent_call
from tests.trace.test_format import TRACES

U1 = b"11111111-1111-4111-8111-111111111111"
U2 = b"22222222-2222-4222-8222-222222222222"
U3 = b"33333333-3333-4333-8333-333333333333"
U4 = b"44444444-4444-4444-8444-444444444444"


# --- pieces ------------------------------------------------------------------------------


def test_command_splitter_follows_freeswitch_framing() -> None:
    splitter = CommandSplitter()
    body = b"playback\nfoo"
    stream = (b"connect\n\n\nlinger\r\n\r\nsendmsg\ncontent-type: text/plain\n"
              b"Content-Length: %d\n\n" % len(body) + body + b"exit\n")
    splitter.feed(stream[:30])
    first = list(splitter)
    splitter.feed(stream[30:])
    rest = list(splitter)
    assert [*first, *rest] == [b"connect\n\n", b"\nlinger\r\n\r\n",
                               stream[stream.index(b"sendmsg"):stream.index(b"exit")]]
    assert splitter.take_rest() == b"exit\n"


def test_uuid_roles_pair_consistently() -> None:
    roles = UuidRoles()
    assert roles.match(b"bgapi x " + U1 + b"\nJob-UUID: " + U2,
                       b"bgapi x " + U3 + b"\nJob-UUID: " + U4)
    assert roles.apply(b"+OK " + U1 + b" " + U2.upper()) == b"+OK " + U3 + b" " + U4
    assert roles.match(b"uuid_kill " + U1, b"uuid_kill " + U3)
    assert not roles.match(b"uuid_kill " + U1, b"uuid_kill " + U4)  # U1 already stands for U3
    assert not roles.match(b"uuid_kill " + U2.replace(b"2", b"5"), b"uuid_kill " + U3)  # U3 taken
    assert not roles.match(b"api a " + U1, b"api b " + U3)  # not only UUIDs differ
    assert not roles.match(b"x " + U1 + b" " + U1, b"x " + U3 + b" " + U4)
    assert roles.generated == 2


def test_script_splits_send_lines_into_commands() -> None:
    lines = (
        TraceLine(0.0, "send", b"connect\n\nlinger\n\n", 2),
        TraceLine(0.1, "recv", b"Content-Type: command/reply\n", 3),
        TraceLine(0.2, "send", b"api sta", 4),
        TraceLine(0.3, "send", b"tus\n\n", 5),
    )
    script = build_script(Trace(TraceHeader("outbound"), lines))
    assert script == [
        Expect(0.0, b"connect\n\n", 2), Expect(0.0, b"linger\n\n", 2),
        Feed(0.1, b"Content-Type: command/reply\n", 3), Expect(0.3, b"api status\n\n", 4),
    ]


# --- recorded from a handler, then replayed -----------------------------------------------

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


def record(directory: Path, handler: Handler, *, wrap: bool = True, **fs_options: Any) -> Path:
    """Run ``handler`` against the fake FreeSWITCH on MockClock, recording through the
    same wrapper ``serve --record`` installs (unless the handler does); returns the file."""
    wrapper = recording_wrapper(directory) if wrap else (lambda stream: stream)

    async def main() -> None:
        fs_side, server_side = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(FakeFreeSwitch(fs_side, **fs_options).run))
            await handler(wrapper(server_side))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    [path] = directory.iterdir()
    return path


def factory(handler: Handler, **options: Any) -> Callable[[], CallHandler]:
    return lambda: functools.partial(handler, **options)


@pytest.fixture(scope="module")
def agent_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("rec"), agent_call)


def replay_cli(path: Path, handler_factory: Callable[[], CallHandler],
               capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run_replay(argparse.Namespace(trace=str(path)), factory=handler_factory)
    return code, capsys.readouterr().out


def test_replay_of_the_same_handler_passes(
    agent_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = replay_cli(agent_trace, factory(agent_call), capsys)
    assert code == 0, out
    assert out.startswith(f"replay {agent_trace}: OK — 7/7 recorded commands matched "
                          "(3 generated UUIDs matched by role)")


def test_replay_without_the_eof_marker_passes(
    agent_trace: Path, tmp_path: Path
) -> None:
    trace = read_trace(agent_trace)
    assert trace.lines[-1].data == b""
    cut = tmp_path / "no-eof.jsonl"
    cut.write_bytes(dumps(Trace(trace.header, trace.lines[:-1])))
    result = replay_file(str(cut), factory(agent_call))
    assert result.ok and result.matched == 7


def test_a_different_command_fails_with_a_readable_diff(
    agent_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = replay_cli(agent_trace, factory(agent_call, arg="/tmp/other.wav"), capsys)
    assert code == 1
    playback_line = next(line.lineno for line in read_trace(agent_trace).lines
                         if line.data.startswith(b"sendmsg"))
    assert "1 difference(s) — 6/7 recorded commands matched" in out
    assert f"trace line {playback_line}: the server sent a different command" in out
    assert f"--- recorded (trace line {playback_line})\n+++ sent by the server\n" in out
    assert "\n-execute-app-arg: local_stream://moh\n+execute-app-arg: /tmp/other.wav\n" in out
    # the generated Event-UUID is not reported: it is matched by role
    assert "-Event-UUID" not in out


def test_fewer_commands_fail(agent_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = replay_cli(agent_trace, factory(agent_call, kill_agent=False), capsys)
    assert code == 1
    assert "-api uuid_kill" in out and "+exit" in out
    assert "the server did not send this command (nothing sent within 10s of its " \
           "recorded time)\n    exit" in out


def test_more_commands_fail(agent_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = replay_cli(agent_trace, factory(agent_call, extra_api="status"), capsys)
    assert code == 1
    assert "-exit\n+api status" in out
    assert "after the last line: the server sent a command the recording does not have\n" \
           "    exit" in out


def test_a_crashing_handler_fails(agent_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def crash(stream: trio.abc.Stream) -> None:
        await stream.send_all(b"connect\n\n")
        raise RuntimeError("boom")

    code, out = replay_cli(agent_trace, lambda: crash, capsys)
    assert code == 1
    assert "the handler raised an exception:" in out and "RuntimeError: boom" in out
    assert "did not send this command" in out


def test_a_silent_handler_times_out_on_mock_clock(
    agent_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def silent(stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    code, out = replay_cli(agent_trace, lambda: silent, capsys)
    assert code == 1
    assert "nothing sent within 10s of its recorded time" in out
    assert "note: the handler did not return within 5s of EOF" in out


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inbound = TRACES / "e_bgapi_originate.inbound.jsonl"
    assert run_replay(argparse.Namespace(trace=str(inbound)), factory=lambda: agent_call) == 2
    assert "outbound traces" in capsys.readouterr().err
    missing = argparse.Namespace(trace=str(tmp_path / "x"))
    assert run_replay(missing, factory=lambda: agent_call) == 2


# --- the real per-call handler (callcontrol.server) ---------------------------------------


def _server_factory(flow: Any = None) -> Callable[[], CallHandler]:
    from callcontrol.server import App, handle_call

    def make() -> CallHandler:
        app = App.for_replay() if flow is None else App.for_replay(flow=flow)
        return functools.partial(handle_call, app=app)

    return make


async def _answer_then_play(ctx: Any) -> None:
    await ctx.call.answer()
    execution = await ctx.call.conn.execute("playback", "local_stream://moh")
    await execution.completed()
    await ctx.caller_gone.wait()


def test_a_call_recorded_through_the_server_replays_and_catches_a_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("callcontrol.server")
    from callcontrol.server import App, handle_call
    from callcontrol.trace.replay import server_handler

    async def serve_one(stream: trio.abc.Stream) -> None:
        app = App.for_replay()
        app.wrap_stream = recording_wrapper(tmp_path)  # what serve --record installs
        await handle_call(stream, app)

    path = record(tmp_path, serve_one, wrap=False, hangup_at=3.0)
    code, out = replay_cli(path, server_handler, capsys)
    assert code == 0, out
    code, out = replay_cli(path, _server_factory(_answer_then_play), capsys)
    assert code == 1
    assert "+execute-app-name: playback" in out
