"""The trio shell shared by the JSON-over-websocket providers.

One reader task turns server messages into domain events through the provider's sans-IO
translator and hands them to the session through a bounded channel: when the session is slow, the
reader stops reading and the websocket's own flow control pushes back on the server, instead of
audio piling up in memory here. Sends after the connection is gone are dropped; the session
learns of the end from the single ``Closed`` event.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from callcontrol.ai.provider import Closed, ProviderError, ProviderEvent, ProviderUnavailable

EVENT_BUFFER = 256  # ~5 s of 20 ms audio deltas before the reader applies backpressure
MAX_MESSAGE_SIZE = 16 * 1024 * 1024


@asynccontextmanager
async def connect(
    url: str,
    headers: Iterable[tuple[str, str]],
    *,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[WebSocketConnection]:
    """Open the websocket, turning every way of failing to connect into ``ProviderUnavailable``."""
    async with AsyncExitStack() as stack:
        try:
            ws = await stack.enter_async_context(
                open_websocket_url(
                    url,
                    ssl_context,
                    extra_headers=[(k.encode(), v.encode()) for k, v in headers],
                    max_message_size=MAX_MESSAGE_SIZE,
                    connect_timeout=connect_timeout,
                    disconnect_timeout=2,
                )
            )
        except (HandshakeError, OSError) as exc:
            raise ProviderUnavailable(f"cannot connect to {_safe_url(url)}: {exc!r}") from exc
        yield ws


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

    # subclasses implement this: one server message -> zero or more domain events
    def translate(self, message: dict[str, Any]) -> list[ProviderEvent]:
        raise NotImplementedError

    def events(self) -> AsyncIterator[ProviderEvent]:
        return self._event_rx

    def next_event_id(self) -> str:
        self._counter += 1
        return f"cc_{self._counter}"

    async def send_event(self, event: dict[str, Any]) -> None:
        if self._closed:
            self._log.debug("ai.send_dropped", type=event.get("type"), why="closed")
            return
        try:
            await self._ws.send_message(json.dumps(event, ensure_ascii=False))
        except ConnectionClosed:
            self._closed = True
            self._log.info("ai.send_dropped", type=event.get("type"), why="connection_closed")

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
            closed = await self._read_until_closed()
            if self.server_close_reason:
                closed = Closed(self.server_close_reason, closed.code)
            self._closed = True
            self._log.info("ai.closed", reason=closed.reason, code=closed.code)
            await self._event_tx.send(closed)

    async def _read_until_closed(self) -> Closed:
        while True:
            try:
                raw = await self._ws.get_message()
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
