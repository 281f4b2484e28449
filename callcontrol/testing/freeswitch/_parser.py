"""FreeSWITCH's side of the framing: client command blocks in, parsed commands out.

mod_event_socket's ``read_packet`` reads a first line, header lines up to a blank line, and a
body when the block carries ``Content-Length``; it accepts ``\\r\\n`` and skips blank lines
between blocks. Header values of a command are taken as sent (clients do not URL-encode
them), and header names are looked up case-insensitively, as ``switch_event_get_header`` does.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from callcontrol.esl import ProtocolError

MAX_CONTENT_LENGTH = 16 * 1024 * 1024


@attrs.frozen
class ClientCommand:
    """One command a client sent: ``line`` is the first line, e.g. ``api uuid_kill <u>``."""

    line: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    at: float = 0.0

    @property
    def verb(self) -> str:
        return self.line.split(" ", 1)[0].lower()

    @property
    def arg(self) -> str:
        parts = self.line.split(" ", 1)
        return parts[1].strip() if len(parts) > 1 else ""

    def header(self, name: str, default: str | None = None) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return default

    def header_all(self, name: str) -> list[str]:
        lower = name.lower()
        return [value for key, value in self.headers if key.lower() == lower]


class CommandParser:
    """Feed bytes from the client; iterate complete ``ClientCommand`` objects."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[str, tuple[tuple[str, str], ...], int] | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __iter__(self) -> Iterator[ClientCommand]:
        while (command := self._next()) is not None:
            yield command

    def _next(self) -> ClientCommand | None:
        if self._pending is None and not self._read_block():
            return None
        assert self._pending is not None
        line, headers, length = self._pending
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._pending = None
        return ClientCommand(line, headers, body)

    def _read_block(self) -> bool:
        while self._buf[:1] in (bytearray(b"\n"), bytearray(b"\r")):
            del self._buf[:1]
        text = self._buf.replace(b"\r\n", b"\n")
        end = text.find(b"\n\n")
        if end < 0:
            return False
        raw_end = _raw_offset(self._buf, end + 2)
        lines = text[:end].decode("utf-8", "surrogateescape").split("\n")
        del self._buf[:raw_end]
        headers = tuple(_header(line) for line in lines[1:] if line)
        length = 0
        for name, value in headers:
            if name.lower() == "content-length":
                if not value.strip().isdigit():
                    raise ProtocolError(f"invalid Content-Length {value!r}")
                length = int(value)
        if length > MAX_CONTENT_LENGTH:
            raise ProtocolError(f"Content-Length {length} exceeds {MAX_CONTENT_LENGTH}")
        self._pending = (lines[0].strip(), headers, length)
        return True


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


def _raw_offset(raw: bytearray, normalized: int) -> int:
    """Map an offset in the CRLF-normalised copy back to the raw buffer."""
    seen = 0
    i = 0
    while seen < normalized:
        if raw[i : i + 2] == b"\r\n":
            i += 2
        else:
            i += 1
        seen += 1
    return i
