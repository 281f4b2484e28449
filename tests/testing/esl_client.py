"""A tiny Event Socket client for the simulator's tests: send bytes, collect frames."""

from __future__ import annotations

import trio

from callcontrol.esl import Frame, FrameReader


class Client:
    """Frames are collected in arrival order in ``frames``; ``reply`` waits for the next
    command/reply or api/response, so events that arrive first stay in ``frames``."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reader = FrameReader()
        self.frames: list[tuple[float, Frame]] = []
        self.closed = False
        self._taken = 0

    async def _read_one(self) -> Frame | None:
        while True:
            frame = self.reader.next_frame()
            if frame is not None:
                self.frames.append((trio.current_time(), frame))
                return frame
            data = await self.stream.receive_some(65536)
            if not data:
                self.closed = True
                return None
            self.reader.feed(data)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def next_frame(self) -> Frame:
        if self._taken < len(self.frames):
            self._taken += 1
            return self.frames[self._taken - 1][1]
        frame = await self._read_one()
        if frame is None:
            raise EOFError("connection closed")
        self._taken += 1
        return frame

    async def reply(self) -> Frame:
        """The next command/reply or api/response (events before it stay in ``frames``)."""
        while True:
            frame = await self.next_frame()
            if frame.content_type in ("command/reply", "api/response") and not (
                frame.has_event() and frame.content_type == "command/reply"
                and "Event-Name" in frame.headers
            ):
                return frame
            if frame.content_type == "command/reply":
                return frame

    async def command(self, data: bytes) -> Frame:
        await self.send(data)
        return await self.reply()

    async def drain(self, seconds: float) -> list[Frame]:
        """Read everything that arrives during ``seconds`` of (mock) time."""
        out: list[Frame] = []
        with trio.move_on_after(seconds):
            while True:
                frame = await self.next_frame()
                out.append(frame)
        return out

    async def until_closed(self) -> list[Frame]:
        out: list[Frame] = []
        while True:
            try:
                out.append(await self.next_frame())
            except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
                return out

    def events(self) -> list[str]:
        return [f.event.name for _, f in self.frames if f.is_event]
