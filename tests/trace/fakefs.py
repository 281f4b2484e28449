"""A tiny reactive FreeSWITCH for the trace tests, and a tiny call handler to record.

Both are independent of callcontrol.server and of callcontrol.testing's simulator, so these
tests pin the recorder and the player on their own.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Sequence

import trio

from callcontrol.esl import FrameReader, commands, serialize
from callcontrol.esl._frames import Frame
from callcontrol.trace.replay import CommandSplitter

A_UUID = "a0a0a0a0-0000-4000-8000-00000000000a"
CORE_UUID = "c0c0c0c0-0000-4000-8000-00000000000c"
_ORIGINATION = re.compile(r"origination_uuid=([0-9a-f-]{36})")


Pairs = list[tuple[str, str]]


def _pairs(name: str, unique_id: str, extra: Sequence[tuple[str, str]] = ()) -> Pairs:
    return [("Event-Name", name), ("Core-UUID", CORE_UUID), ("Unique-ID", unique_id), *extra]


def event(name: str, unique_id: str = A_UUID, extra: Sequence[tuple[str, str]] = (),
          body: bytes | None = None) -> bytes:
    return serialize.event_plain(_pairs(name, unique_id, extra), body)


def connect_reply() -> bytes:
    return serialize.connect_reply(
        _pairs("CHANNEL_DATA", A_UUID, [("Channel-Name", "loopback/9000-b"),
                                         ("Caller-Caller-ID-Number", "0000000000"),
                                         ("variable_domain_name", "default")])
    )


def _parse(command: bytes) -> tuple[str, dict[str, str]]:
    lines = command.decode().strip("\r\n").split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return lines[0], headers


class FakeFreeSwitch:
    """Answers one outbound connection's commands like FreeSWITCH 1.10 (for these tests)."""

    def __init__(self, stream: trio.abc.Stream, *, hangup_at: float | None = None,
                 job_seconds: float = 1.0, app_seconds: float = 1.0) -> None:
        self.stream = stream
        self.hangup_at = hangup_at
        self.job_seconds = job_seconds
        self.app_seconds = app_seconds
        self._lock = trio.Lock()
        self.received: list[bytes] = []

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.hangup_at is not None:
                nursery.start_soon(self._hangup_later)
            splitter = CommandSplitter()
            while data := await self._receive():
                splitter.feed(data)
                for command in splitter:
                    self.received.append(command)
                    if not await self._handle(command):
                        await self.stream.aclose()
                        nursery.cancel_scope.cancel()
                        return
            nursery.cancel_scope.cancel()

    async def _receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some())
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return b""

    async def send(self, data: bytes) -> None:
        async with self._lock:
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                await self.stream.send_all(data)

    async def _handle(self, command: bytes) -> bool:
        first, headers = _parse(command)
        verb = first.split(" ", 1)[0]
        if verb == "connect":
            await self.send(connect_reply())
        elif verb in ("event", "filter", "linger", "myevents"):
            await self.send(serialize.command_reply("+OK"))
        elif verb == "sendmsg":
            await self.send(serialize.command_reply("+OK"))
            self._nursery.start_soon(self._execute, headers)
        elif verb == "bgapi":
            job = headers.get("job-uuid") or str(uuid.uuid4())
            await self.send(serialize.bgapi_reply(job))
            self._nursery.start_soon(self._job, job, first)
        elif verb == "api":
            await self.send(serialize.api_response("+OK\n"))
        elif verb == "exit":
            await self.send(serialize.command_reply("+OK bye"))
            await self.send(serialize.disconnect_notice(A_UUID))
            return False
        else:
            await self.send(serialize.command_reply("-ERR command not found"))
        return True

    async def _execute(self, headers: dict[str, str]) -> None:
        app = headers.get("execute-app-name", "")
        info = [("Application", app), ("Application-UUID", headers.get("event-uuid", ""))]
        await self.send(event("CHANNEL_EXECUTE", extra=info))
        if app == "answer":
            await self.send(event("CHANNEL_ANSWER"))
        else:
            await trio.sleep(self.app_seconds)
        response = "FILE PLAYED" if app == "playback" else "_none_"
        await self.send(event("CHANNEL_EXECUTE_COMPLETE",
                              extra=[*info, ("Application-Response", response)]))

    async def _job(self, job: str, command: str) -> None:
        await trio.sleep(self.job_seconds)
        found = _ORIGINATION.search(command)
        output = f"+OK {found.group(1)}\n" if found else "+OK\n"
        extra = [("Job-UUID", job), ("Job-Owner-UUID", A_UUID), ("Job-Command", "originate")]
        await self.send(event("BACKGROUND_JOB", extra=extra, body=output.encode()))

    async def _hangup_later(self) -> None:
        assert self.hangup_at is not None
        await trio.sleep(self.hangup_at)
        cause = [("Hangup-Cause", "NORMAL_CLEARING")]
        await self.send(event("CHANNEL_HANGUP", extra=cause))
        await self.send(event("CHANNEL_HANGUP_COMPLETE", extra=cause))
        await self.send(serialize.linger_notice(A_UUID, "loopback/9000-b"))


class MiniConnection:
    """Just enough of a client to write test handlers: send bytes, wait for a frame."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reader = FrameReader()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def frame(self) -> Frame:
        while (frame := self.reader.next_frame()) is None:
            data = await self.stream.receive_some()
            if not data:
                raise EOFError
            self.reader.feed(bytes(data))
        return frame

    async def wait_event(self, name: str, key: str, value: str) -> Frame:
        while True:
            frame = await self.frame()
            if frame.has_event() and frame.event.name == name and frame.event.get(key) == value:
                return frame


async def agent_call(stream: trio.abc.Stream, *, app: str = "playback",
                     arg: str = "local_stream://moh", kill_agent: bool = True,
                     extra_api: str | None = None) -> None:
    """connect; originate an agent with our own UUIDs; play to the caller; kill the agent; exit.

    Every UUID it sends except the caller's is generated here, so a replay only passes when
    the player matches them by role and feeds the BACKGROUND_JOB / Application-UUID back.
    """
    conn = MiniConnection(stream)
    try:
        await conn.send(commands.connect())
        caller = (await conn.frame()).event.unique_id
        assert caller is not None
        await conn.send(commands.event("plain", ["CHANNEL_EXECUTE_COMPLETE", "BACKGROUND_JOB"]))
        await conn.frame()
        await conn.send(commands.filter_add("Unique-ID", caller))
        await conn.frame()
        agent, job = str(uuid.uuid4()), str(uuid.uuid4())
        await conn.send(commands.bgapi("originate", f"{{origination_uuid={agent}}}loopback/1001",
                                       "&park()", job_uuid=job))
        await conn.wait_event("BACKGROUND_JOB", "Job-UUID", job)
        app_uuid = str(uuid.uuid4())
        await conn.send(commands.execute(app, arg, event_uuid=app_uuid, event_lock=True))
        await conn.wait_event("CHANNEL_EXECUTE_COMPLETE", "Application-UUID", app_uuid)
        if kill_agent:
            await conn.send(commands.api("uuid_kill", agent))
            await conn.frame()
        if extra_api is not None:
            await conn.send(commands.api(extra_api))
            await conn.frame()
        await conn.send(commands.exit_())
        while True:
            await conn.frame()
    except EOFError:
        pass
    finally:
        await stream.aclose()
