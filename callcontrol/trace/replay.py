"""``callcontrol replay TRACE``: play FreeSWITCH's side of an outbound trace against the server.

The server's per-call handler runs in process on one end of an in-memory stream pair, on
trio's MockClock, so a trace of a 5-minute call replays in milliseconds. The player walks the
trace in order: a ``recv`` line is sent to the server at its recorded time; a ``send`` line is a
command the server must send next, compared with what it actually sent.

Generated values (origination_uuid, Job-UUID, Event-UUID...) differ on every run, so a command
that differs from the recording only in UUID-shaped tokens matches when the pairing is
consistent (each recorded UUID stands for one actual UUID, and the other way round); the
pairing learned that way is applied to the following ``recv`` lines, so the BACKGROUND_JOB and
Application-UUID the server waits for carry its own values. Canonical UUIDs are 36 characters,
so the substitution never changes a Content-Length.

A ``recv`` line with empty data marks FreeSWITCH closing the socket (the recorder writes one on
EOF); without it the player closes its side after the last line and a grace period.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import math
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Literal, Protocol

import attrs
import trio
import trio.testing

from callcontrol.trace.format import Trace, TraceFormatError, read_trace

# How long past its recorded time the player waits for a command (virtual seconds, MockClock).
DEFAULT_SLACK = 10.0
# How long the server may take to finish after the last line, and again after EOF.
DEFAULT_GRACE = 5.0

_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_COMMAND_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")


class CallHandler(Protocol):
    """What the server exposes for one call: serve this stream until the call ends."""

    def __call__(self, stream: trio.abc.Stream, /) -> Awaitable[None]: ...


HandlerFactory = Callable[[], CallHandler]


# --- the server's commands as a byte stream ---------------------------------------------


class CommandSplitter:
    """Splits what a client sends into commands the way FreeSWITCH's ``read_packet`` does:
    header lines up to a blank line, then ``Content-Length`` bytes of body if announced."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def __iter__(self) -> Iterator[bytes]:
        while (command := self._next()) is not None:
            yield command

    def _next(self) -> bytes | None:
        buf = self._buf
        start = 0
        while start < len(buf) and buf[start] in b"\r\n":
            start += 1
        end = _COMMAND_END.search(buf, start)
        if end is None:
            return None
        length = _CONTENT_LENGTH.search(buf, start, end.start() + 1)
        stop = end.end() + (int(length.group(1)) if length else 0)
        if len(buf) < stop:
            return None
        command = bytes(buf[:stop])
        del buf[:stop]
        return command


# --- the script ------------------------------------------------------------------------


@attrs.frozen
class Feed:
    """Bytes FreeSWITCH sent (empty: it closed the socket)."""

    t: float
    data: bytes
    lineno: int


@attrs.frozen
class Expect:
    """A command the server sent, as recorded."""

    t: float
    command: bytes
    lineno: int  # the trace line where the command starts


def build_script(trace: Trace) -> list[Feed | Expect]:
    """The trace as steps; send lines are re-split into commands (a send_all may hold several)."""
    script: list[Feed | Expect] = []
    splitter = CommandSplitter()
    first_line = 0
    for line in trace.esl_lines:
        if line.dir == "recv":
            script.append(Feed(line.t, line.data, line.lineno))
            continue
        if not splitter.buffered:
            first_line = line.lineno
        splitter.feed(line.data)
        for command in splitter:
            script.append(Expect(line.t, command, first_line))
            first_line = line.lineno
    if splitter.buffered:
        script.append(Expect(trace.esl_lines[-1].t, splitter.take_rest(), first_line))
    return script


# --- generated UUIDs, matched by role ----------------------------------------------------


@attrs.define
class UuidRoles:
    """The pairing recorded UUID -> the UUID the server used in its place (keys lower-case)."""

    forward: dict[bytes, bytes] = attrs.field(factory=dict)
    reverse: dict[bytes, bytes] = attrs.field(factory=dict)

    def apply(self, data: bytes) -> bytes:
        if not self.forward:
            return data
        return _UUID.sub(lambda m: self.forward.get(m.group().lower(), m.group()), data)

    def match(self, recorded: bytes, actual: bytes) -> bool:
        """True when the two differ at most in UUIDs paired consistently; learns the pairs."""
        if _UUID.split(recorded) != _UUID.split(actual):
            return False
        learned: dict[bytes, bytes] = {}
        learned_reverse: dict[bytes, bytes] = {}
        for rec_m, act_m in zip(_UUID.finditer(recorded), _UUID.finditer(actual), strict=True):
            rec, act = rec_m.group().lower(), act_m.group()
            known = self.forward.get(rec) or learned.get(rec)
            owner = self.reverse.get(act.lower()) or learned_reverse.get(act.lower())
            if (known is not None and known.lower() != act.lower()) or (
                owner is not None and owner != rec
            ):
                return False
            learned[rec] = act
            learned_reverse[act.lower()] = rec
        self.forward.update(learned)
        self.reverse.update(learned_reverse)
        return True

    def match_lines(self, recorded: bytes, actual: bytes) -> None:
        """For a command that differs: learn from the lines that still correspond.

        A changed app argument must not hide the pairing of the Event-UUID on the next line,
        or every later event of that execution would look foreign to the server.
        """
        rec_lines, act_lines = recorded.split(b"\n"), actual.split(b"\n")
        matcher = difflib.SequenceMatcher(
            None,
            [_UUID.sub(b"<uuid>", line) for line in rec_lines],
            [_UUID.sub(b"<uuid>", line) for line in act_lines],
            autojunk=False,
        )
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                for rec, act in zip(rec_lines[i1:i2], act_lines[j1:j2], strict=True):
                    self.match(rec, act)

    @property
    def generated(self) -> int:
        """How many recorded UUIDs stood for a different value in this run."""
        return sum(1 for rec, act in self.forward.items() if rec != act.lower())


# --- the result ------------------------------------------------------------------------

Kind = Literal["differs", "missing", "extra", "handler-error"]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


@attrs.frozen
class Difference:
    kind: Kind
    lineno: int | None  # the trace line of the recorded command
    expected: bytes | None = None
    actual: bytes | None = None
    detail: str = ""

    def render(self) -> str:
        where = f"trace line {self.lineno}" if self.lineno else "after the last line"
        if self.kind == "differs":
            assert self.expected is not None and self.actual is not None
            diff = difflib.unified_diff(
                _diff_lines(self.expected),
                _diff_lines(self.actual),
                f"recorded (trace line {self.lineno})",
                "sent by the server",
                lineterm="",
            )
            return f"{where}: the server sent a different command\n" + "\n".join(diff)
        if self.kind == "missing":
            return (f"{where}: the server did not send this command ({self.detail})\n"
                    + _indent(self.expected or b""))
        if self.kind == "extra":
            return f"{where}: the server sent a command the recording does not have\n" + _indent(
                self.actual or b""
            )
        return f"the handler raised an exception:\n{self.detail}"


def _diff_lines(data: bytes) -> list[str]:
    """The command's lines, its terminator spelled out (a missing blank line is a difference)."""
    text = _text(data)
    body = text.rstrip("\r\n")
    return [*body.split("\n"), f"<end: {text[len(body):]!r}>"]


def _indent(data: bytes) -> str:
    return "\n".join("    " + line for line in _text(data).rstrip("\n").split("\n"))


@attrs.define
class ReplayResult:
    recorded: int = 0
    matched: int = 0
    by_role: int = 0
    differences: list[Difference] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def render(self, source: str = "trace") -> str:
        verdict = "OK" if self.ok else f"{len(self.differences)} difference(s)"
        lines = [
            f"replay {source}: {verdict} — {self.matched}/{self.recorded} recorded commands "
            f"matched ({self.by_role} generated UUIDs matched by role)"
        ]
        lines.extend(d.render() for d in self.differences)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n\n".join(lines)


# --- the player ------------------------------------------------------------------------


class _Player:
    def __init__(
        self,
        fs: trio.abc.HalfCloseableStream,
        commands: trio.MemoryReceiveChannel[bytes],
        result: ReplayResult,
        slack: float,
    ) -> None:
        self.fs = fs
        self.commands = commands
        self.result = result
        self.slack = slack
        self.roles = UuidRoles()
        self.start = trio.current_time()
        # How far the server runs behind the recording; later lines shift by as much.
        self.lag = 0.0
        self.fs_open = True
        self.server_gone = False

    def _at(self, t: float) -> float:
        return self.start + self.lag + t

    async def play(self, script: Sequence[Feed | Expect]) -> None:
        for step in script:
            if isinstance(step, Feed):
                await self._feed(step)
            else:
                await self._expect(step)

    async def _feed(self, step: Feed) -> None:
        await trio.sleep_until(self._at(step.t))
        if not self.fs_open or self.server_gone:
            return
        try:
            if step.data:
                await self.fs.send_all(self.roles.apply(step.data))
            else:
                await self.fs.send_eof()
                self.fs_open = False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.server_gone = True
            self.result.notes.append(f"the server closed the connection before trace line "
                                     f"{step.lineno}")

    async def _expect(self, step: Expect) -> None:
        actual, why = await self._next_command(self._at(step.t) + self.slack)
        if actual is None:
            self.result.differences.append(Difference("missing", step.lineno, step.command,
                                                      detail=why))
            return
        elapsed = trio.current_time() - self.start
        self.lag = max(self.lag, elapsed - step.t)
        if self.roles.match(step.command, actual):
            self.result.matched += 1
        else:
            self.roles.match_lines(step.command, actual)
            expected = self.roles.apply(step.command)
            self.result.differences.append(Difference("differs", step.lineno, expected, actual))

    async def _next_command(self, deadline: float) -> tuple[bytes | None, str]:
        with trio.move_on_at(deadline):
            try:
                return await self.commands.receive(), ""
            except trio.EndOfChannel:
                return None, "the connection was closed"
        return None, f"nothing sent within {self.slack:g}s of its recorded time"

    async def finish(self, handler_done: trio.Event, grace: float) -> None:
        with trio.move_on_after(grace):
            await handler_done.wait()
        await self.fs.aclose()  # FreeSWITCH ends the call's socket
        with trio.move_on_after(grace):
            await handler_done.wait()
        if not handler_done.is_set():
            self.result.notes.append(f"the handler did not return within {grace:g}s of EOF")
        self._extras()

    def _extras(self) -> None:
        while True:
            try:
                command = self.commands.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            self.result.differences.append(Difference("extra", None, actual=command))


async def _collect_commands(
    fs: trio.abc.Stream, channel: trio.MemorySendChannel[bytes]
) -> None:
    splitter = CommandSplitter()
    async with channel:
        while True:
            try:
                data = await fs.receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            if not data:
                break
            splitter.feed(data)
            for command in splitter:
                channel.send_nowait(command)
        if splitter.buffered:
            channel.send_nowait(splitter.take_rest())


async def _run_handler(
    handler: CallHandler, stream: trio.abc.Stream, result: ReplayResult, done: trio.Event
) -> None:
    try:
        await handler(stream)
    except Exception:  # reported as a difference: the recorded call did not crash
        result.differences.append(Difference("handler-error", None, detail=traceback.format_exc()))
    finally:
        done.set()


async def replay(
    trace: Trace,
    handler: CallHandler,
    *,
    slack: float = DEFAULT_SLACK,
    grace: float = DEFAULT_GRACE,
) -> ReplayResult:
    """Play ``trace`` against ``handler``; run it on MockClock(autojump_threshold=0)."""
    if trace.mode != "outbound":
        raise ValueError("replay plays outbound traces (FreeSWITCH dialling the server)")
    script = build_script(trace)
    result = ReplayResult(recorded=sum(isinstance(step, Expect) for step in script))
    fs, server = trio.testing.memory_stream_pair()
    send, receive = trio.open_memory_channel[bytes](math.inf)
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_handler, handler, server, result, done)
        nursery.start_soon(_collect_commands, fs, send)
        player = _Player(fs, receive, result, slack)
        await player.play(script)
        await player.finish(done, grace)
        nursery.cancel_scope.cancel()
    result.by_role = player.roles.generated
    return result


def server_handler() -> CallHandler:
    """The real per-call handler, with an app built for replay (no external services)."""
    from callcontrol.server import App, handle_call  # noqa: PLC0415 (keeps the CLI fast)

    app = App.for_replay()

    async def handle(stream: trio.abc.Stream) -> None:
        await handle_call(stream, app)

    return handle


def replay_file(
    path: str, factory: HandlerFactory = server_handler, **options: float
) -> ReplayResult:
    """Read and replay a trace on MockClock (a fresh trio run)."""
    trace = read_trace(path)
    if trace.mode != "outbound":
        raise TraceFormatError(1, "replay plays outbound traces (FreeSWITCH dialling us)", path)

    async def main() -> ReplayResult:
        return await replay(trace, factory(), **options)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def run_replay(args: argparse.Namespace, *, factory: HandlerFactory = server_handler) -> int:
    from callcontrol.logs import configure_logging  # noqa: PLC0415

    # The server's own logs go to stderr, warnings only: the report is on stdout.
    configure_logging(level=logging.WARNING)
    try:
        result = replay_file(args.trace, factory)
    except TraceFormatError as exc:
        print(f"callcontrol replay: {exc}", file=sys.stderr)
        return 2
    print(result.render(args.trace))
    return 0 if result.ok else 1
