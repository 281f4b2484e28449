"""Header blocks, parsed lazily.

A block is kept as the bytes FreeSWITCH sent. Most frames are only *routed* (content type,
event name, a UUID or two), so lines are split only when someone asks for a header that the
fast lookup cannot answer, and values are percent-decoded only when read. That design, not
micro-tuning, is what makes routing several times faster than decoding everything.

When a block is decoded, it is decoded whole: the ~100 lines of an event are split with a
few C-level string operations instead of a Python loop per line (see ``_fast_pairs``).
Those operations give the strict line parser's answer only for blocks shaped the way
FreeSWITCH writes them (one ``Name: value`` per line, values URL-encoded so they hold no
colon, space or newline); every other block takes the strict parser, which is the reference.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView

from callcontrol.esl._errors import ProtocolError
from callcontrol.esl._urlcode import url_decode


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def parse_header_lines(block: bytes, *, strict: bool = True) -> list[tuple[str, str]]:
    """Split ``Name: value`` lines (values left encoded). Accepts CRLF as well as LF.

    The reference parser: the fast paths below must give exactly its answer or step aside.
    """
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


# --- the fast path ---------------------------------------------------------------------------

# Deleting every other byte leaves a block's "shape": its colons, whitespace and percent signs.
_NOT_SHAPE = bytes(b for b in range(256) if b not in b":\n \t\r\x0b\x0c%")


def _simple_lines(block: bytes) -> int:
    """How many lines ``block`` has if it is in FreeSWITCH's own shape, else 0.

    FreeSWITCH's shape: ASCII; every line ``Name: value`` where the name holds no ``%``, and
    neither name nor value holds a colon or any whitespace (values are URL-encoded). For
    such a block the strict parser's pairs are exactly the pieces between the ``": "`` and
    ``"\\n"`` separators, which ``_split`` cuts in one go (``_fast_pairs`` checks that no name
    is empty).
    """
    if not block.isascii():
        return 0
    lines = block.count(b"\n") + 1
    shape = block.translate(None, _NOT_SHAPE)
    if b"%" in shape:
        if shape.startswith(b"%") or b"\n%" in shape:  # a '%' before a colon: in a name
            return 0
        shape = shape.replace(b"%", b"")
    # one colon and one whitespace byte per line, in that order, and adjacent
    if shape != b": \n" * (lines - 1) + b": " or block.count(b": ") != lines:
        return 0
    return lines


def _split(text: str) -> tuple[list[str], list[str]]:
    parts = text.replace(": ", "\n").split("\n")
    return parts[0::2], parts[1::2]


def _fast_pairs(block: bytes, *, decode: bool) -> tuple[list[str], list[str]] | None:
    """(names, values) of a block in FreeSWITCH's shape, or None for any other block.

    With ``decode``, the values come back percent-decoded. The whole block is decoded at
    once: names hold no ``%`` and the separators are not hex digits, so only values change,
    and UTF-8 decoding restarts at every ASCII byte, so decoding the values joined by
    separators equals decoding each one. Should a decoded value contain a separator itself
    (an SDP's ``%0D%0A``), the cut would be off by one, which the count of pieces shows; those
    blocks are cut first and their values decoded one by one.
    """
    lines = _simple_lines(block)
    if not lines:
        return None
    text = block.decode("ascii")
    if decode and "%" in text:
        names, values = _split(url_decode(text))
        if len(names) != lines or len(values) != lines:
            names, values = _split(text)
            values = [url_decode(value) for value in values]
    else:
        names, values = _split(text)
    # the strict parser refuses an empty name (a line starting with the colon)
    return None if "" in names else (names, values)


# Below this size the strict parser is as fast: it is a few lines.
_SMALL_BLOCK = 256


def split_header_block(block: bytes) -> list[tuple[str, str]]:
    """``parse_header_lines(block)``, fast for the blocks FreeSWITCH writes."""
    fast = None if len(block) < _SMALL_BLOCK else _fast_pairs(block, decode=False)
    if fast is None:
        return parse_header_lines(block)
    return list(zip(*fast, strict=True))


def _first_values(names: list[str], values: list[str]) -> dict[str, str]:
    fields = dict(zip(names, values, strict=True))
    if len(fields) != len(names):  # a repeated header (Hangup-Cause): the first value wins
        for name, value in zip(reversed(names), reversed(values), strict=True):
            fields[name] = value
    return fields


class Headers(Mapping[str, str]):
    """Read-only mapping of a header block; values are decoded when read.

    Repeated headers (FreeSWITCH repeats ``Hangup-Cause``) keep every value: ``[]`` and ``get``
    give the first, ``get_all`` gives all. ``raw_items`` gives the pairs as sent, for re-encoding.

    Two views are built on demand: the raw pairs (``raw``, ``get_all``, ``raw_items``) and the
    decoded first value of every name (the Mapping side), each straight from the block.
    """

    __slots__ = ("_block", "_decoded", "_fields", "_index", "_pairs")

    def __init__(self, block: bytes, *, decoded: bool = False) -> None:
        self._block = block
        self._decoded = decoded
        self._pairs: list[tuple[str, str]] | None = None
        self._index: dict[str, int] | None = None
        self._fields: dict[str, str] | None = None

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], *, decoded: bool) -> Headers:
        headers = cls(b"", decoded=decoded)
        headers._pairs = pairs
        return headers

    @classmethod
    def parsed(cls, block: bytes) -> Headers:
        """The headers of ``block``, split now: a malformed block raises ProtocolError here."""
        headers = cls(block)
        headers._ensure()
        return headers

    def _ensure(self) -> list[tuple[str, str]]:
        if self._pairs is None:
            self._pairs = split_header_block(self._block)
        return self._pairs

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            index: dict[str, int] = {}
            for i, (name, _) in enumerate(self._ensure()):
                index.setdefault(name, i)
            self._index = index
        return self._index

    def _first(self) -> dict[str, str]:
        """Every name with its first value, decoded (the Mapping's contents)."""
        if self._fields is None:
            fast = None
            if len(self._block) >= _SMALL_BLOCK and not self._decoded:
                fast = _fast_pairs(self._block, decode=True)
            if fast is None:
                pairs = self._ensure()
                names = [name for name, _ in pairs]
                if self._decoded:
                    values = [value for _, value in pairs]
                else:
                    values = [url_decode(value) for _, value in pairs]
                fast = names, values
            self._fields = _first_values(*fast)
        return self._fields

    def raw(self, name: str) -> str | None:
        """The value as sent (still URL-encoded for plain events), or None."""
        i = self._lookup().get(name)
        return None if i is None else self._ensure()[i][1]

    def __getitem__(self, name: str) -> str:
        if self._fields is None and self._pairs is not None:
            # already split (every outer block is): decode just this value
            value = self.raw(name)
            if value is None:
                raise KeyError(name)
            return value if self._decoded else url_decode(value)
        return self._first()[name]

    def get_all(self, name: str) -> list[str]:
        values = [v for n, v in self._ensure() if n == name]
        return values if self._decoded else [url_decode(v) for v in values]

    def raw_items(self) -> list[tuple[str, str]]:
        return list(self._ensure())

    # The views of the decoded dict itself: ``dict(headers.items())`` then copies in C.
    def keys(self) -> KeysView[str]:
        return self._first().keys()

    def values(self) -> ValuesView[str]:
        return self._first().values()

    def items(self) -> ItemsView[str, str]:
        return self._first().items()

    def __iter__(self) -> Iterator[str]:
        return iter(self._first())

    def __len__(self) -> int:
        return len(self._first())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in (self._lookup() if self._fields is None else self._fields)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"
