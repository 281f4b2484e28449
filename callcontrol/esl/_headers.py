"""Header blocks, parsed lazily.

A block is kept as the bytes FreeSWITCH sent. Most frames are only *routed* (content type,
event name, a UUID or two), so lines are split only when someone asks for a header that the
fast lookup cannot answer, and values are percent-decoded only when read. That design, not
micro-tuning, is what makes routing several times faster than decoding everything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from callcontrol.esl._errors import ProtocolError
from callcontrol.esl._urlcode import url_decode


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def parse_header_lines(block: bytes, *, strict: bool = True) -> list[tuple[str, str]]:
    """Split ``Name: value`` lines (values left encoded). Accepts CRLF as well as LF."""
    pairs: list[tuple[str, str]] = []
    if not block:
        return pairs
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            if strict:
                raise ProtocolError(f"malformed header line {line[:80]!r}")
            continue
        pairs.append((_text(name), _text(value[1:] if value.startswith(b" ") else value)))
    return pairs


def find_raw(block: bytes, name: bytes) -> bytes | None:
    """The first raw value of header ``name`` (given as ``b"Name: "``) without parsing the block."""
    if block.startswith(name):
        start = len(name)
    else:
        at = block.find(b"\n" + name)
        if at < 0:
            return None
        start = at + 1 + len(name)
    end = block.find(b"\n", start)
    value = block[start:] if end < 0 else block[start:end]
    return value[:-1] if value.endswith(b"\r") else value


class Headers(Mapping[str, str]):
    """Read-only mapping of a header block; values are decoded when read.

    Repeated headers (FreeSWITCH repeats ``Hangup-Cause``) keep every value: ``[]`` and ``get``
    give the first, ``get_all`` gives all. ``raw_items`` gives the pairs as sent, for re-encoding.
    """

    __slots__ = ("_block", "_decoded", "_index", "_pairs")

    def __init__(self, block: bytes, *, decoded: bool = False) -> None:
        self._block = block
        self._decoded = decoded
        self._pairs: list[tuple[str, str]] | None = None
        self._index: dict[str, int] | None = None

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], *, decoded: bool) -> Headers:
        headers = cls(b"", decoded=decoded)
        headers._pairs = pairs
        return headers

    def _ensure(self) -> list[tuple[str, str]]:
        if self._pairs is None:
            self._pairs = parse_header_lines(self._block)
        return self._pairs

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            index: dict[str, int] = {}
            for i, (name, _) in enumerate(self._ensure()):
                index.setdefault(name, i)
            self._index = index
        return self._index

    def raw(self, name: str) -> str | None:
        """The value as sent (still URL-encoded for plain events), or None."""
        i = self._lookup().get(name)
        return None if i is None else self._ensure()[i][1]

    def __getitem__(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise KeyError(name)
        return value if self._decoded else url_decode(value)

    def get_all(self, name: str) -> list[str]:
        values = [v for n, v in self._ensure() if n == name]
        return values if self._decoded else [url_decode(v) for v in values]

    def raw_items(self) -> list[tuple[str, str]]:
        return list(self._ensure())

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._lookup()

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"
