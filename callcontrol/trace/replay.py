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

A trace recorded by ``serve --record`` (format 2, with the settings in its header) replays the
whole secretary flow (``replay_call``): the player is also the AI — the server's websocket
reaches it in memory (the provider's ``StreamOpener``), it sends the recorded ``ai_recv`` frames
at their times and compares what the server sends with the ``ai_send`` lines — and the recorded
generated values are given back in order (``callcontrol.generated.PlaybackSource``), so the
server makes the recorded decisions with the recorded UUIDs and ports. The flow's services run
on a real database; ``callcontrol replay`` rolls back everything it writes (``RollbackDatabase``).
Not replayed: the caller's audio (not in the trace: ``input_audio_buffer.append`` frames are
neither fed nor compared) and mod_audio_stream's websocket (a trace of that transport
replays its ESL side only).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import logging
import math
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs
import trio
import trio.testing

from callcontrol import generated
from callcontrol.trace.format import (
    GENERATED_KINDS,
    Trace,
    TraceFormatError,
    is_caller_audio,
    read_trace,
)

if TYPE_CHECKING:
    from trio_websocket import WebSocketConnection

    from callcontrol.ai.openai_live import ResolvedCall
    from callcontrol.ai.provider import ToolSpec
    from callcontrol.config import Settings

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


@attrs.frozen
class AiOpen:
    """The server opened the AI's websocket (``error``: and failed to)."""

    t: float
    lineno: int
    error: str | None = None


@attrs.frozen
class AiFeed:
    """A message the AI sent."""

    t: float
    data: bytes
    lineno: int
    binary: bool = False


@attrs.frozen
class AiExpect:
    """A message the server sent the AI, as recorded."""

    t: float
    data: bytes
    lineno: int


@attrs.frozen
class AiClose:
    """The websocket ended; ``by`` the AI (``peer``) or the server (``us``)."""

    t: float
    lineno: int
    code: int | None = None
    reason: str | None = None
    by: str = "peer"


@attrs.frozen
class ServerEvent:
    """What serve did to the call from outside it: ``shutting_down``, ``stop_now``,
    ``hand_back``."""

    t: float
    what: str
    lineno: int


Step = Feed | Expect | AiOpen | AiFeed | AiExpect | AiClose | ServerEvent


def _ai_step(line: Any) -> Step | None:
    fields = line.fields
    if line.dir == "ai_open":
        return AiOpen(line.t, line.lineno, fields.get("error"))
    if line.dir == "ai_recv":
        return AiFeed(line.t, line.data, line.lineno, bool(fields.get("binary")))
    if line.dir == "ai_send":
        return None if is_caller_audio(line.data) else AiExpect(line.t, line.data, line.lineno)
    if line.dir == "ai_close":
        return AiClose(line.t, line.lineno, fields.get("code"), fields.get("reason"),
                       str(fields.get("by", "peer")))  # fmt: skip
    if line.dir == "server":
        return ServerEvent(line.t, str(fields["what"]), line.lineno)
    return None  # gen, ai_resolve: given back by the sources, not played


def build_script(trace: Trace) -> list[Step]:
    """The trace as steps; send lines are re-split into commands (a send_all may hold several)."""
    script: list[Step] = []
    splitter = CommandSplitter()
    first_line = 0
    for line in trace.lines:
        if not line.esl:
            step = _ai_step(line)
            if step is not None:
                script.append(step)
            continue
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

Kind = Literal[
    "differs", "missing", "extra", "handler-error", "ai-differs", "ai-missing", "ai-extra",
    "generated",
]


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
        if self.kind == "ai-differs":
            assert self.expected is not None and self.actual is not None
            diff = difflib.unified_diff(
                _json_lines(self.expected), _json_lines(self.actual),
                f"recorded (trace line {self.lineno})", "sent to the AI by the server",
                lineterm="",
            )  # fmt: skip
            return f"{where}: the server told the AI something else\n" + "\n".join(diff)
        if self.kind == "ai-missing":
            return (f"{where}: the server did not send the AI this ({self.detail})\n"
                    + _indent(self.expected or b""))
        if self.kind == "ai-extra":
            return f"{where}: the server sent the AI what the recording does not have\n" + _indent(
                self.actual or b""
            )
        if self.kind == "generated":
            return f"generated values: {self.detail}"
        return f"the handler raised an exception:\n{self.detail}"


def _diff_lines(data: bytes) -> list[str]:
    """The command's lines, its terminator spelled out (a missing blank line is a difference)."""
    text = _text(data)
    body = text.rstrip("\r\n")
    return [*body.split("\n"), f"<end: {text[len(body):]!r}>"]


def _json_lines(data: bytes) -> list[str]:
    try:
        return json.dumps(json.loads(data), indent=1, ensure_ascii=False).split("\n")
    except ValueError:
        return _text(data).split("\n")


def _same_message(recorded: bytes, actual: bytes) -> bool:
    if recorded == actual:
        return True
    try:
        return bool(json.loads(recorded) == json.loads(actual))
    except ValueError:
        return False


def _indent(data: bytes) -> str:
    return "\n".join("    " + line for line in _text(data).rstrip("\n").split("\n"))


@attrs.define
class ReplayResult:
    recorded: int = 0
    matched: int = 0
    by_role: int = 0
    ai_recorded: int = 0
    ai_matched: int = 0
    differences: list[Difference] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def render(self, source: str = "trace") -> str:
        verdict = "OK" if self.ok else f"{len(self.differences)} difference(s)"
        ai = (f", {self.ai_matched}/{self.ai_recorded} messages to the AI matched"
              if self.ai_recorded else "")  # fmt: skip
        lines = [
            f"replay {source}: {verdict} — {self.matched}/{self.recorded} recorded commands "
            f"matched ({self.by_role} generated UUIDs matched by role){ai}"
        ]
        lines.extend(d.render() for d in self.differences)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n\n".join(lines)


# --- the player ------------------------------------------------------------------------


class RecordedAi:
    """The AI of a recorded call: the provider's ``StreamOpener`` (each connection the server
    opens is the next recorded ``ai_open``; a recorded failure fails the same way) and the
    GPT-Live delegation resolver (the recorded ``ai_resolve`` results, in order)."""

    def __init__(self, trace: Trace) -> None:
        self._opens = [line.fields.get("error") for line in trace.of("ai_open")]
        self._resolved = [line.fields.get("value") for line in trace.of("ai_resolve")]
        self._send, self.connections = trio.open_memory_channel[trio.abc.Stream](math.inf)
        self.unexpected_opens = 0

    async def open_stream(self, host: str, port: int, tls: bool) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        if not self._opens:
            self.unexpected_opens += 1
            raise OSError("the recorded call opened no more AI connections")
        error = self._opens.pop(0)
        if error is not None:
            raise OSError(f"as recorded: {error}")
        ours, theirs = trio.testing.memory_stream_pair()
        self._send.send_nowait(theirs)
        return ours

    async def resolve(
        self, conversation: Sequence[tuple[str, str]], tools: Sequence[ToolSpec]
    ) -> ResolvedCall | None:
        from callcontrol.ai.openai_live import ResolvedCall  # noqa: PLC0415

        await trio.lowlevel.checkpoint()
        value = self._resolved.pop(0) if self._resolved else None
        if not isinstance(value, Mapping):
            return None
        return ResolvedCall(str(value["name"]), str(value["raw_arguments"]))


class _Player:
    def __init__(
        self,
        fs: trio.abc.HalfCloseableStream,
        commands: trio.MemoryReceiveChannel[bytes],
        result: ReplayResult,
        slack: float,
        nursery: trio.Nursery | None = None,
        ai: RecordedAi | None = None,
        server: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self.fs = fs
        self.commands = commands
        self.result = result
        self.slack = slack
        self.nursery = nursery
        self.ai = ai
        self.ai_ws: WebSocketConnection | None = None
        self.ai_stream: trio.abc.Stream | None = None
        self.ai_messages: trio.MemoryReceiveChannel[bytes] | None = None
        self.roles = UuidRoles()
        self.start = trio.current_time()
        # How far the server runs behind the recording; later lines shift by as much.
        self.lag = 0.0
        self.fs_open = True
        self.server_gone = False

    def _at(self, t: float) -> float:
        return self.start + self.lag + t

    async def play(self, script: Sequence[Step]) -> None:
        for step in script:
            if isinstance(step, Feed):
                await self._feed(step)
            elif isinstance(step, Expect):
                await self._expect(step)
            elif isinstance(step, ServerEvent):
                if self.server is not None:
                    await trio.sleep_until(self._at(step.t))
                    self.server(step.what)
            elif self.ai is not None:
                await self._ai(step)

    # -- the AI's side

    async def _ai(self, step: AiOpen | AiFeed | AiExpect | AiClose) -> None:
        if isinstance(step, AiOpen):
            if step.error is None:
                await self._ai_accept(step)
        elif isinstance(step, AiFeed):
            await self._ai_feed(step)
        elif isinstance(step, AiExpect):
            await self._ai_expect(step)
        elif step.by == "peer":
            await self._ai_close(step)

    async def _ai_accept(self, step: AiOpen) -> None:
        from trio_websocket import wrap_server_stream  # noqa: PLC0415

        assert self.ai is not None and self.nursery is not None
        self.ai_ws = self.ai_messages = None
        with trio.move_on_at(self._at(step.t) + self.slack):
            stream = await self.ai.connections.receive()
            request = await wrap_server_stream(self.nursery, stream)
            self.ai_ws = await request.accept()
            self.ai_stream = stream
            send, self.ai_messages = trio.open_memory_channel[bytes](math.inf)
            self.nursery.start_soon(_collect_ai_messages, self.ai_ws, send)
            return
        self.result.differences.append(Difference(
            "ai-missing", step.lineno, b"(the AI's websocket)",
            detail=f"no connection within {self.slack:g}s of its recorded time"))  # fmt: skip

    async def _ai_feed(self, step: AiFeed) -> None:
        from trio_websocket import ConnectionClosed  # noqa: PLC0415

        await trio.sleep_until(self._at(step.t))
        if self.ai_ws is None:
            return
        try:
            await self.ai_ws.send_message(step.data if step.binary else step.data.decode())
        except ConnectionClosed:
            self.result.notes.append(f"the server had closed the AI's websocket before trace "
                                     f"line {step.lineno}")  # fmt: skip
            self.ai_ws = None

    async def _ai_expect(self, step: AiExpect) -> None:
        self.result.ai_recorded += 1
        actual: bytes | None = None
        why = "the AI's websocket was not open"
        if self.ai_messages is not None:
            why = f"nothing sent within {self.slack:g}s of its recorded time"
            with trio.move_on_at(self._at(step.t) + self.slack):
                try:
                    actual = await self.ai_messages.receive()
                except trio.EndOfChannel:
                    why = "the websocket was closed"
        if actual is None:
            self.result.differences.append(Difference("ai-missing", step.lineno, step.data,
                                                      detail=why))  # fmt: skip
        elif _same_message(step.data, actual):
            self.result.ai_matched += 1
        else:
            self.result.differences.append(Difference("ai-differs", step.lineno, step.data,
                                                      actual))  # fmt: skip

    async def _ai_close(self, step: AiClose) -> None:
        await trio.sleep_until(self._at(step.t))
        if self.ai_ws is None:
            return
        ws, self.ai_ws = self.ai_ws, None
        if step.code is None or step.code == 1006:  # dropped without a close frame
            assert self.ai_stream is not None
            await trio.aclose_forcefully(self.ai_stream)
            return
        with trio.move_on_after(self.slack):
            await ws.aclose(step.code, step.reason)

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
                break
            self.result.differences.append(Difference("extra", None, actual=command))
        while self.ai_messages is not None:
            try:
                message = self.ai_messages.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self.result.differences.append(Difference("ai-extra", None, actual=message))


async def _collect_ai_messages(
    ws: WebSocketConnection, channel: trio.MemorySendChannel[bytes]
) -> None:
    from trio_websocket import ConnectionClosed  # noqa: PLC0415

    async with channel:
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed:
                return
            if not is_caller_audio(message):
                channel.send_nowait(message if isinstance(message, bytes) else message.encode())


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
    ai: RecordedAi | None = None,
    server_events: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Play ``trace`` against ``handler``; run it on MockClock(autojump_threshold=0).

    ``ai``: the player also plays the AI's side, on the connections ``ai.open_stream`` gives the
    server (without it the trace's ``ai_*`` lines are ignored). ``server_events``: does to the
    app what a ``server`` line says serve did (SIGTERM, the hand-back)."""
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
        player = _Player(fs, receive, result, slack, nursery, ai, server_events)
        await player.play(script)
        await player.finish(done, grace)
        nursery.cancel_scope.cancel()
    result.by_role = player.roles.generated
    if ai is not None and ai.unexpected_opens:
        result.differences.append(Difference(
            "ai-extra", None, actual=b"(a websocket to the AI)",
            detail=f"{ai.unexpected_opens} more than recorded"))  # fmt: skip
    return result


# --- a whole recorded call: the secretary flow, its AI and its generated values ---------


def is_call_recording(trace: Trace) -> bool:
    """A trace ``serve --record`` wrote with format 2: it carries the call's settings."""
    return trace.header.version >= 2 and isinstance(trace.header.extra.get("settings"), Mapping)


def settings_of(trace: Trace) -> Settings:
    """The recorded call's settings; an API key stands in for the one it had (never recorded:
    the AI is the player, nothing leaves the process)."""
    from callcontrol.config import Settings, load_settings, parse_field  # noqa: PLC0415

    snapshot = dict(trace.header.extra["settings"])
    key_set = bool(snapshot.pop("openai_api_key_set", False))
    names = {field.name: field for field in attrs.fields(Settings)}
    defaults = load_settings({})
    typed: dict[str, Any] = {}
    for name, value in snapshot.items():
        if name not in names:
            continue  # a setting this version does not have
        default = getattr(defaults, name)
        needs_parsing = isinstance(value, str) and default is not None and not isinstance(
            default, str)
        typed[name] = parse_field(name, value) if needs_parsing else value
    typed["openai_api_key"] = "replay-no-key" if key_set else None
    return load_settings({}, **typed)


def playback_source(trace: Trace) -> generated.PlaybackSource:
    return generated.PlaybackSource({kind: trace.generated(kind) for kind in GENERATED_KINDS})


def secretary_handler(
    trace: Trace, db: Any, ai: RecordedAi, values: generated.PlaybackSource
) -> tuple[CallHandler, Callable[[str], None]]:
    """The server's handler with the secretary flow and its real services on ``db``, the AI
    and the generated values of the recording; and what does a ``server`` line to its app."""
    from callcontrol.ai.factory import open_provider  # noqa: PLC0415
    from callcontrol.destinations.directory import Directory  # noqa: PLC0415
    from callcontrol.handoff.service import HandoffService  # noqa: PLC0415
    from callcontrol.media.unicast import UnicastPorts  # noqa: PLC0415
    from callcontrol.metrics import Metrics  # noqa: PLC0415
    from callcontrol.secretary import secretary_flow  # noqa: PLC0415
    from callcontrol.server import App, handle_call  # noqa: PLC0415
    from callcontrol.services import Services  # noqa: PLC0415

    settings = settings_of(trace)
    directory = Directory(db)
    metrics = Metrics()
    services = Services(
        settings=settings, db=db, directory=directory,
        handoff=HandoffService(directory, db, settings, metrics), metrics=metrics,
        unicast_ports=UnicastPorts(settings.unicast_ports),
        open_provider=functools.partial(open_provider, opener=ai.open_stream, resolver=ai),
        # the caller's audio is not in the trace: its silence is not a lost stream
        media_lost_after=math.inf,
    )  # fmt: skip
    app = App(settings=settings, flow=secretary_flow, services=services)

    async def handle(stream: trio.abc.Stream) -> None:
        with generated.using(values):
            await handle_call(stream, app)

    def act(what: str) -> None:
        if what == "shutting_down":
            app.shutting_down.set()
        elif what == "stop_now":
            app.stop_now.set()
        else:
            for session in list(app.active.values()):
                session.hand_back()

    return handle, act


async def replay_call(
    trace: Trace, db: Any, *, slack: float = DEFAULT_SLACK, grace: float = DEFAULT_GRACE
) -> ReplayResult:
    """Replay a call ``serve --record`` recorded, on ``db`` (with the rows the call found)."""
    ai = RecordedAi(trace)
    values = playback_source(trace)
    handler, act = secretary_handler(trace, db, ai, values)
    result = await replay(trace, handler, ai=ai, server_events=act, slack=slack,
                          grace=grace)
    if values.missing:
        hint = (" (a recorded unicast port is taken on this machine: the server bound the next "
                "pair)" if "port" in values.missing else "")  # fmt: skip
        result.differences.append(Difference(
            "generated", None, detail=f"the server asked for more values than recorded: "
            f"{values.missing}{hint}"))  # fmt: skip
    if values.unused:
        result.differences.append(Difference(
            "generated", None, detail=f"recorded values the server never asked for: "
            f"{values.unused}"))  # fmt: skip
    return result


def server_handler() -> CallHandler:
    """The real per-call handler, with an app built for replay (no external services)."""
    from callcontrol.server import App, handle_call  # noqa: PLC0415 (keeps the CLI fast)

    app = App.for_replay()

    async def handle(stream: trio.abc.Stream) -> None:
        await handle_call(stream, app)

    return handle


def replay_file(
    path: str,
    factory: HandlerFactory = server_handler,
    *,
    slack: float = DEFAULT_SLACK,
    grace: float = DEFAULT_GRACE,
) -> ReplayResult:
    """Read and replay a trace on MockClock (a fresh trio run)."""
    trace = read_trace(path)
    if trace.mode != "outbound":
        raise TraceFormatError(1, "replay plays outbound traces (FreeSWITCH dialling us)", path)

    async def main() -> ReplayResult:
        return await replay(trace, factory(), slack=slack, grace=grace)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def replay_call_file(path: str, database_url: str) -> ReplayResult:
    """Replay a recorded call on the database at ``database_url``, writing nothing to it."""
    from callcontrol.db.rollback import open_rollback_database  # noqa: PLC0415

    trace = read_trace(path)

    async def main() -> ReplayResult:
        async with open_rollback_database(database_url) as db:
            return await replay_call(trace, db)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def run_replay(args: argparse.Namespace, *, factory: HandlerFactory = server_handler) -> int:
    from callcontrol.db.database import DatabaseUnavailable  # noqa: PLC0415
    from callcontrol.logs import configure_logging  # noqa: PLC0415

    # The server's own logs go to stderr, warnings only: the report is on stdout.
    configure_logging(level=logging.WARNING)
    try:
        trace = read_trace(args.trace)
        if is_call_recording(trace):
            url = getattr(args, "database", None) or _database_url()
            if not url:
                print("callcontrol replay: a call recorded by serve --record replays its flow "
                      "on the database it used\n  fix: pass --database URL (or set "
                      "DATABASE_URL); nothing is written to it", file=sys.stderr)  # fmt: skip
                return 2
            result = replay_call_file(args.trace, url)
        else:
            result = replay_file(args.trace, factory)
    except TraceFormatError as exc:
        print(f"callcontrol replay: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"callcontrol replay: {exc}", file=sys.stderr)
        return 2
    print(result.render(args.trace))
    return 0 if result.ok else 1


def _database_url() -> str | None:
    from callcontrol.config import load_settings  # noqa: PLC0415

    return load_settings().database_url
