"""The trio shell shared by the JSON-over-websocket providers.

One reader task turns server messages into domain events through the provider's sans-IO
translator and hands them to the session through a bounded channel: when the session is slow, the
reader stops reading and the websocket's own flow control pushes back on the server, instead of
audio piling up in memory here. Sends after the connection is gone are dropped; the session
learns of the end from the single ``Closed`` event.

Failing fast (a caller is waiting in silence while we wait): the ``Closed`` event goes out the
moment the close, an abrupt drop or a send stalled for ``SEND_STALL_SECONDS`` is seen, and the
websocket's teardown never holds the call for more than ``CLOSE_GRACE_SECONDS``. trio-websocket's
own ``open_websocket_url`` does not bound it: after a peer's close its reader waits for the
server's TCP close, whatever ``disconnect_timeout`` says (measured on the real switch: 10 s, the
peer's close timeout, while a sender kept sending audio).

The wire goes through two points only, ``send_frame`` and ``receive_frame`` (used by
``JsonWebsocketProvider.send_text``/``receive_text`` and by GPT-Live's session start), plus
``StreamOpener`` below the websocket. ``serve --record`` sets the call's ``wire_tap``, which sees
each frame there, the connection's opening and its end: what the trace's ``ai_*`` lines hold.
The handshake's headers (the API key) are below these points and are never seen by a tap.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from callcontrol.ai.provider import Closed, ProviderError, ProviderEvent, ProviderUnavailable

EVENT_BUFFER = 256  # ~5 s of 20 ms audio deltas before the reader applies backpressure
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
# A send that has not gone out in this time means the server stopped reading: the kernel's send
# buffer (tens of KB, seconds of audio) is already full. The call cannot go on with it.
SEND_STALL_SECONDS = 0.5
# The polite close handshake takes one round trip; a peer that does not answer in this time is
# cut off (the TCP stream closed) so the fallback prompt is not kept waiting.
CLOSE_GRACE_SECONDS = 0.25

# (host, port, tls) -> a byte stream to the server. The default opens TCP (and TLS for wss://);
# tests give ScriptedRealtime's in-memory pipe, a replayer could give a recorded one.
StreamOpener = Callable[[str, int, bool], Awaitable[trio.abc.Stream]]


class WireTap(Protocol):
    """Sees what crosses the AI's websocket (the recorder of ``serve --record``)."""

    def frame(self, direction: Literal["ai_send", "ai_recv"], data: str | bytes) -> None: ...

    def event(self, direction: Literal["ai_open", "ai_close", "ai_resolve"],
              **fields: Any) -> None: ...  # fmt: skip


# The call's tap, if its trace is being recorded (set per call, inherited by its tasks).
wire_tap: ContextVar[WireTap | None] = ContextVar("callcontrol_ai_wire_tap", default=None)


async def send_frame(ws: WebSocketConnection, text: str) -> None:
    tap = wire_tap.get()
    if tap is not None:
        tap.frame("ai_send", text)
    await ws.send_message(text)


async def receive_frame(ws: WebSocketConnection, *, ours_closed: bool = False) -> str | bytes:
    """The next message; ``ours_closed``: we closed the connection, so its end is ours."""
    tap = wire_tap.get()
    try:
        message = await ws.get_message()
    except ConnectionClosed as exc:
        if tap is not None:
            reason = exc.reason
            tap.event("ai_close", code=None if reason is None else int(reason.code),
                      reason=None if reason is None else reason.reason,
                      by="us" if ours_closed else "peer")  # fmt: skip
        raise
    if tap is not None:
        tap.frame("ai_recv", message)
    return message


def tcp_opener(ssl_context: ssl.SSLContext | None = None) -> StreamOpener:
    async def open_stream(host: str, port: int, tls: bool) -> trio.abc.Stream:
        if not tls:
            return await trio.open_tcp_stream(host, port)
        context = ssl_context or ssl.create_default_context()
        return await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context,
                                                   https_compatible=True)  # fmt: skip

    return open_stream


def _target(url: str) -> tuple[str, int, bool, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ProviderUnavailable(f"not a websocket URL: {_safe_url(url)}")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, tls, resource


@asynccontextmanager
async def connect(
    url: str,
    headers: Iterable[tuple[str, str]],
    *,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    opener: StreamOpener | None = None,
) -> AsyncIterator[WebSocketConnection]:
    """Open the websocket, turning every way of failing to connect into ``ProviderUnavailable``;
    on exit, close it within ``CLOSE_GRACE_SECONDS`` whatever the peer does."""
    tap = wire_tap.get()
    try:
        async with _connect(url, headers, connect_timeout=connect_timeout,
                            ssl_context=ssl_context, opener=opener) as ws:  # fmt: skip
            if tap is not None:
                tap.event("ai_open", url=_safe_url(url))
                tap = None  # what follows is the call's, not the opening's
            yield ws
    except ProviderUnavailable as exc:
        if tap is not None:
            tap.event("ai_open", url=_safe_url(url), error=str(exc))
        raise


@asynccontextmanager
async def _connect(
    url: str,
    headers: Iterable[tuple[str, str]],
    *,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None,
    opener: StreamOpener | None,
) -> AsyncIterator[WebSocketConnection]:
    host, port, tls, resource = _target(url)
    host_header = host if port in (80, 443) else f"{host}:{port}"
    open_stream = opener or tcp_opener(ssl_context)
    opened = False
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(connect_timeout):
                    stream = await open_stream(host, port, tls)
                    ws = await wrap_client_stream(
                        nursery, stream, host_header, resource,  # type: ignore[arg-type]
                        extra_headers=[(k.encode(), v.encode()) for k, v in headers],
                        max_message_size=MAX_MESSAGE_SIZE,
                    )  # fmt: skip
            except (OSError, trio.TooSlowError) as exc:
                raise ProviderUnavailable(f"cannot connect to {_safe_url(url)}: {exc!r}") from exc
            opened = True
            try:
                yield ws
            finally:
                await _teardown(ws, stream)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A rejected handshake surfaces in trio-websocket's reader task, i.e. in our nursery.
        refused = group.subgroup(HandshakeError)
        if not opened and refused is not None:
            first = refused.exceptions[0]
            raise ProviderUnavailable(f"cannot connect to {_safe_url(url)}: {first!r}") from first
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def _teardown(ws: WebSocketConnection, stream: trio.abc.Stream) -> None:
    # Shielded: a call cancelled by the caller's hangup still closes its websocket, bounded.
    with trio.CancelScope(shield=True):
        with trio.move_on_after(CLOSE_GRACE_SECONDS):
            await ws.aclose(1000, "call ended")
        # After a peer's close, aclose returns at once and leaves the TCP stream to the server;
        # closing it here ends trio-websocket's reader instead of waiting for the server.
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def reader_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for the reader whose body exceptions come out unwrapped.

    The call session catches ``ProviderUnavailable`` and its own errors by type; a strict
    ExceptionGroup around a single error from the ``async with`` body would defeat that.
    """
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def _safe_url(url: str) -> str:
    # Some gateways take the key as a query parameter; never echo a query string.
    return url.split("?", 1)[0]


class JsonWebsocketProvider:
    """Base for providers: JSON commands out, translated domain events in."""

    def __init__(self, ws: WebSocketConnection, log: Any) -> None:
        self._ws = ws
        self._log = log
        self._event_tx, self._event_rx = trio.open_memory_channel[ProviderEvent](EVENT_BUFFER)
        self._closed = False
        self._counter = 0
        # a protocol-level goodbye (e.g. GPT-Live's session.closed) explains the close that follows
        self.server_close_reason: str | None = None
        self._failure: Closed | None = None  # seen on our side (a stalled send) before the reader
        self._read_scope: trio.CancelScope | None = None

    # subclasses implement this: one server message -> zero or more domain events
    def translate(self, message: dict[str, Any]) -> list[ProviderEvent]:
        raise NotImplementedError

    def events(self) -> AsyncIterator[ProviderEvent]:
        return self._event_rx

    def next_event_id(self) -> str:
        self._counter += 1
        return f"cc_{self._counter}"

    # -- the two wire points ----------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        await send_frame(self._ws, text)

    async def receive_text(self) -> str | bytes:
        return await receive_frame(self._ws, ours_closed=self._closed)

    # ----------------------------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> None:
        if self._closed:
            self._log.debug("ai.send_dropped", type=event.get("type"), why="closed")
            return
        try:
            with trio.move_on_after(SEND_STALL_SECONDS) as scope:
                await self.send_text(json.dumps(event, ensure_ascii=False))
        except ConnectionClosed:
            self._closed = True
            self._log.info("ai.send_dropped", type=event.get("type"), why="connection_closed")
            return
        if scope.cancelled_caught:
            self._log.error("ai.send_stalled", type=event.get("type"), seconds=SEND_STALL_SECONDS)
            self.fail(Closed(f"send stalled for {SEND_STALL_SECONDS:g} s"))

    def fail(self, closed: Closed) -> None:
        """The connection is unusable (seen on our side): end the event stream with ``closed``
        now, without waiting for the server to say anything."""
        self._closed = True
        if self._failure is None:
            self._failure = closed
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def emit(self, event: ProviderEvent) -> None:
        """Inject an event produced outside the reader (e.g. a resolved delegation)."""
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._event_tx.send(event)

    async def close(self) -> None:
        self._closed = True
        await self._ws.aclose(1000, "call ended")

    async def pump(self) -> None:
        """Read until the connection ends; always finishes with exactly one ``Closed``."""
        async with self._event_tx:
            closed = Closed("connection lost")
            with trio.CancelScope() as self._read_scope:
                if self._failure is None:
                    closed = await self._read_until_closed()
            if self._failure is not None:
                closed = self._failure
            elif self.server_close_reason:
                closed = Closed(self.server_close_reason, closed.code)
            self._closed = True
            self._log.info("ai.closed", reason=closed.reason, code=closed.code)
            await self._event_tx.send(closed)

    async def _read_until_closed(self) -> Closed:
        while True:
            try:
                raw = await self.receive_text()
            except ConnectionClosed as exc:
                return _closed_from(exc)
            for event in self._decode(raw):
                await self._event_tx.send(event)

    def _decode(self, raw: str | bytes) -> list[ProviderEvent]:
        try:
            message = json.loads(raw)
        except ValueError:
            return [ProviderError("bad_message", "server sent a message that is not JSON")]
        if not isinstance(message, dict):
            return [ProviderError("bad_message", "server sent a JSON value that is not an object")]
        try:
            return self.translate(message)
        except (KeyError, TypeError, ValueError) as exc:
            # A malformed event must not end the call; report it and keep reading.
            self._log.warning("ai.bad_event", type=message.get("type"), error=repr(exc))
            return [ProviderError("bad_event", f"cannot read {message.get('type')!r}: {exc!r}")]


def _closed_from(exc: ConnectionClosed) -> Closed:
    reason = exc.reason
    if reason is None:
        return Closed("connection lost")
    text = reason.name if not reason.reason else f"{reason.name}: {reason.reason}"
    return Closed(text, int(reason.code))
