"""A call's socket as trio's ``SocketStream``, with the two hot methods made cheap.

Every call's socket receives a chunk of events tens of times and writes a command about a
dozen times. trio's own ``SocketStream`` reads *before* it waits: each chunk costs a ``recv``
that fails with EAGAIN (an exception raised and caught), then the wait, then the real
``recv``, under two context managers; its ``send_all`` yields to the scheduler after every
write. Here a read waits for the socket to be readable first and then reads once, and a write
is written at once, waiting only when the kernel's buffer is full. Both still deliver a
pending cancellation (``checkpoint_if_cancelled``) and translate socket errors the way trio
does (``ClosedResourceError`` for a closed socket, ``BrokenResourceError`` otherwise).

Linux (and other POSIX) only: the socket's descriptor is read with ``os.read`` and written
with ``os.write``, which on a connected TCP socket are ``recv`` and ``send`` without flags.
"""

from __future__ import annotations

import errno
import os

import trio

DEFAULT_RECEIVE_SIZE = 65536
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})


def _translated(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


class EslSocketStream(trio.abc.HalfCloseableStream):
    """A ``trio.SocketStream`` (``inner``) whose ``receive_some`` waits, then reads once, and
    whose ``send_all`` writes without a schedule point of its own; the rest is the inner
    stream's (trio's ``SocketStream`` is final, so this wraps it)."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.socket = inner.socket

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        fd = self.socket.fileno()
        if fd == -1:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("socket was already closed")
        while True:
            # raises ClosedResourceError when the socket is closed meanwhile (notify_closing)
            await trio.lowlevel.wait_readable(fd)
            try:
                return os.read(fd, max_bytes)
            except BlockingIOError:
                continue  # woken without data after all
            except OSError as exc:
                raise _translated(exc) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.socket.did_shutdown_SHUT_WR:
            raise trio.ClosedResourceError("can't send data after sending EOF")
        await trio.lowlevel.checkpoint_if_cancelled()
        fd = self.socket.fileno()
        if fd == -1:
            raise trio.ClosedResourceError("socket was already closed")
        with memoryview(data) as view:
            total, size = 0, len(view)
            while total < size:
                try:
                    total += os.write(fd, view[total:] if total else view)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(fd)
                except OSError as exc:
                    raise _translated(exc) from exc
