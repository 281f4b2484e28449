"""Header blocks, parsed lazily.

A block is kept as the bytes FreeSWITCH sent. Most frames are only *routed* (content type,
event name, a UUID or two), so lines are split only when someone asks for a header that the
routing keys do not answer, and values are percent-decoded only when read. Every block is
checked when its frame is read, though (``block_shape``, one translate), so that nothing
malformed is handed on.

When a block is decoded, it is decoded whole: the ~100 lines of an event are
percent-decoded and cut with a few C-level operations (one translate + ``binascii.a2b_qp``
+ one ``str.split`` for its pairs, see ``_decoded_parts``)
instead of a Python loop per line. Those operations give the strict line parser's answer
only for blocks shaped the way FreeSWITCH writes them (one ``Name: value`` per line, values
URL-encoded so they hold no colon, space or newline), and a2b_qp gives ``unquote``'s only
where every ``%`` starts an escape; every other block or value takes the strict parser and
``url_decode``, which are the reference (tests/esl/test_fast_paths.py holds them equal).
"""

from __future__ import annotations

import re
from binascii import a2b_qp
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from operator import itemgetter

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


# --- the fast path ---------------------------------------------------------------------------

# Deleting every other byte leaves a block's "shape": its colons, whitespace and percent signs,
# and the bytes FreeSWITCH never leaves unencoded in a value ('=', NUL, bytes over 0x7E), so
# that a block holding any of those is not in its shape and takes the strict parser.
_SHAPE_BYTES = frozenset(b":\n \t\r\x0b\x0c%=\0" + bytes(range(0x80, 0x100)))
_NOT_SHAPE = bytes(b for b in range(256) if b not in _SHAPE_BYTES)
# The shape of a block of up to 4096 lines in FreeSWITCH's shape, once its '%' are removed:
# comparing against a prefix of it allocates nothing. Longer blocks take the strict parser.
_SHAPES = b": \n" * 4096
# The shape of a plain event of up to 4096 lines: its head and blank line, ``": \n"`` a line
# then ``"\n"``, is the end of this as long as it (endswith: no slice of the shape to compare).
_SHAPES_END = _SHAPES + b"\n"
# in a shape, a '%' just before a colon is a name's (sre finds it ~2x faster than `in`)
_NAME_PERCENT = re.compile(b"%:")


# A colon not followed by its space (sre finds this faster than bytes.count(b": ") counts).
_LOOSE_COLON = re.compile(b":[^ ]")


def block_shape(block: bytes) -> tuple[int, int] | None:
    """(lines, percent signs) of ``block`` if it is in FreeSWITCH's own shape, else None.

    FreeSWITCH's shape: every line ``Name: value``, ASCII, where neither name nor value
    holds a colon, any whitespace, ``=`` or NUL (values are URL-encoded) and the name holds
    no ``%``. The strict parser accepts such a block unless a name is empty (a line that
    starts with its colon), and its pairs are exactly the pieces between the ``": "`` and
    ``"\\n"`` separators, which ``_cut`` cuts in one go, if every colon is followed by its
    space (the shape cannot tell: it has lost the bytes between them). Callers check those
    two where they need them.
    """
    shape = block.translate(None, _NOT_SHAPE)
    size = len(shape)
    # one colon and one whitespace byte per line, in that order, and nothing else ...
    if size % 3 == 2 and _SHAPES.startswith(shape):
        return size // 3 + 1, 0
    if b"%" not in shape:
        return None
    # ... but for the '%' of values: in such a shape a '%' just before a colon is a name's
    bare = shape.replace(b"%", b"")
    size = len(bare)
    if size % 3 != 2 or not _SHAPES.startswith(bare) or _NAME_PERCENT.search(shape):
        return None
    return size // 3 + 1, len(shape) - size


# In a shaped block every space follows a colon: dropping the spaces and making the colons
# line ends leaves ``name\nvalue\nname\nvalue...``, cut by one str.split("\n"). Both
# separators are single bytes: sre and str.replace look for ": " several times slower.
_CUT = bytes.maketrans(b":", b"\n")
# The same, ready for binascii.a2b_qp (quoted-printable, which decodes "=XX" as unquote
# decodes "%XX"): '%' becomes '=', and both separators NUL, which no '=' can join into a
# soft line break ("=" + line end, dropped by a2b_qp) as it could a line end.
_CUT_QP = bytes.maketrans(b"%:\n", b"=\0\0")


def _cut(block: bytes) -> list[str]:
    """``name, value, name, value, ...`` of a shaped block, values as sent."""
    return block.translate(_CUT, b" ").decode("utf-8", "surrogateescape").split("\n")


def _decoded_parts(block: bytes, shape: tuple[int, int]) -> list[str]:
    """``_cut`` of a block in FreeSWITCH's shape, colons with their spaces, values decoded.

    The block is ASCII and holds no ``=`` or NUL (its shape says so), so it is decoded at
    once: names hold no ``%`` and the separators are not hex digits, so only values change,
    and UTF-8 decoding restarts at every ASCII byte, so decoding the values joined by
    separators equals decoding each one.

    ``a2b_qp`` decodes it in C exactly as ``unquote`` would when every ``%`` starts an
    escape. Where a ``=`` starts none, a2b_qp keeps it (``unquote`` keeps a ``%``), or drops
    it at the very end, or drops one of ``==``: each escape makes 3 bytes 1, none of these
    shrinks the text by 2 per ``=``, so the length of the output tells them apart. Should a
    decoded value hold a NUL itself (``%00``), every such byte adds one piece, which the
    count of pieces shows; those blocks are cut first and their values decoded one by one.
    """
    lines, percents = shape
    cut = block.translate(_CUT_QP, b" ")
    if not percents:
        return cut.decode("ascii").split("\0")
    decoded = a2b_qp(cut)
    if len(decoded) + 2 * percents == len(cut):
        parts = decoded.decode("utf-8", "surrogateescape").split("\0")
        if len(parts) == 2 * lines:
            return parts
    parts = _cut(block)
    parts[1::2] = [url_decode(value) for value in parts[1::2]]
    return parts


def _fast_parts(block: bytes, *, decode: bool) -> list[str] | None:
    """Names and values, interleaved, of a block in FreeSWITCH's shape; None for any other."""
    shape = block_shape(block)
    if shape is None or _LOOSE_COLON.search(block):
        return None
    parts = _decoded_parts(block, shape) if decode else _cut(block)
    return None if "" in parts[0::2] else parts  # an empty name: the strict parser refuses it


def _fast_fields(block: bytes) -> dict[str, str] | None:
    """The decoded Mapping of a block in FreeSWITCH's shape, or None for any other block."""
    shape = block_shape(block)
    if shape is None or _LOOSE_COLON.search(block):
        return None
    fields = _first_values(_decoded_parts(block, shape))
    # an empty name is a key like any other here: one lookup instead of a scan of the block
    return None if "" in fields else fields


def _fast_pairs(block: bytes, *, decode: bool) -> tuple[list[str], list[str]] | None:
    """(names, values) of a block in FreeSWITCH's shape, or None for any other block."""
    parts = _fast_parts(block, decode=decode)
    return None if parts is None else (parts[0::2], parts[1::2])


# Below this size the strict parser is as fast: it is a few lines.
_SMALL_BLOCK = 256


def split_header_block(block: bytes) -> list[tuple[str, str]]:
    """``parse_header_lines(block)``, fast for the blocks FreeSWITCH writes."""
    parts = None if len(block) < _SMALL_BLOCK else _fast_parts(block, decode=False)
    if parts is None:
        return parse_header_lines(block)
    it = iter(parts)
    return list(zip(it, it, strict=True))


def _first_values(parts: list[str]) -> dict[str, str]:
    """``{name: value}`` of interleaved names and values; the first value of a name wins."""
    it = iter(parts)
    fields = dict(zip(it, it, strict=True))
    if 2 * len(fields) != len(parts):  # a repeated header (Hangup-Cause)
        names, values = parts[-2::-2], parts[::-2]
        for name, value in zip(names, values, strict=True):
            fields[name] = value
    return fields


class Headers(Mapping[str, str]):
    """Read-only mapping of a header block; values are decoded when read.

    Repeated headers (FreeSWITCH repeats ``Hangup-Cause``) keep every value: ``[]`` and ``get``
    give the first, ``get_all`` gives all. ``raw_items`` gives the pairs as sent, for re-encoding.

    Two views are built on demand: the raw pairs (``raw``, ``get_all``, ``raw_items``) and the
    decoded first value of every name (the Mapping side), each straight from the block.
    """

    __slots__ = ("_block", "_decoded", "_fields", "_index", "_pairs", "_shape")

    def __init__(self, block: bytes, *, decoded: bool = False) -> None:
        self._block = block
        self._decoded = decoded
        self._pairs: list[tuple[str, str]] | None = None
        self._index: dict[str, int] | None = None
        self._fields: dict[str, str] | None = None
        # block_shape() of a block already known to have no empty name, if known
        self._shape: tuple[int, int] | None = None

    @classmethod
    def shaped(cls, block: bytes, shape: tuple[int, int]) -> Headers:
        """The headers of a block in FreeSWITCH's shape without an empty name (checked)."""
        headers = cls(block)
        headers._shape = shape
        return headers

    @classmethod
    def of_plain_shape(cls, block: bytes, shape: bytes) -> Headers:
        """The headers of a plain event's head ``block``, checked when it was read.

        ``shape`` is the event's: its head's and its blank line's (``_SHAPES_END`` ends with
        it once its '%' are left out), and the head has no empty name. Its '%' are counted
        here, when the head is first decoded, not for every event read; a '%' in a name
        (the whole-block decoding would decode it too) leaves the block to the strict path.
        """
        if _NAME_PERCENT.search(shape):
            return cls(block)
        percents = shape.count(b"%")
        return cls.shaped(block, ((len(shape) - percents) // 3, percents))

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], *, decoded: bool) -> Headers:
        headers = cls(b"", decoded=decoded)
        headers._pairs = pairs
        return headers

    @classmethod
    def of_envelope(cls, block: bytes) -> Headers:
        """The headers of a block ``_reader._envelope`` accepted, split without checks.

        Such a block is ``Content-Length: N`` and ``Content-Type: T`` (one of each, or the
        type alone), T one of the known types: it is in FreeSWITCH's shape and holds no
        ``%``, so its values as sent are its decoded values.
        """
        it = iter(_cut(block))
        pairs = list(zip(it, it, strict=True))
        headers = cls(block, decoded=True)
        headers._pairs = pairs
        headers._fields = dict(pairs)
        return headers

    @classmethod
    def parsed(cls, block: bytes) -> Headers:
        """The headers of ``block``, split now: a malformed block raises ProtocolError here."""
        headers = cls(block)
        shape = None if len(block) < _SMALL_BLOCK else block_shape(block)
        if shape is not None and not _LOOSE_COLON.search(block):
            parts = _cut(block)
            if "" not in parts[0::2]:
                it = iter(parts)
                headers._pairs = list(zip(it, it, strict=True))
                headers._shape = shape  # known to be shaped: decoded whole when read
        headers._ensure()
        return headers

    def _ensure(self) -> list[tuple[str, str]]:
        if self._pairs is None:
            self._pairs = split_header_block(self._block)
        return self._pairs

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            pairs = self._ensure()
            # filled from the last pair back, so that the first index of a name wins
            names = map(itemgetter(0), reversed(pairs))
            self._index = dict(zip(names, range(len(pairs) - 1, -1, -1), strict=True))
        return self._index

    def _first(self) -> dict[str, str]:
        """Every name with its first value, decoded (the Mapping's contents)."""
        if self._fields is None:
            fields = None
            block = self._block
            if self._shape is not None:
                if not _LOOSE_COLON.search(block):
                    fields = _first_values(_decoded_parts(block, self._shape))
            elif self._decoded and self._pairs is not None:
                pairs = self._pairs
                fields = dict(pairs)
                if len(fields) != len(pairs):  # a repeated name: its first value wins
                    for name, value in reversed(pairs):
                        fields[name] = value
            elif len(block) >= _SMALL_BLOCK and not self._decoded:
                fields = _fast_fields(block)
            if fields is None:
                parts = [text for pair in self._ensure() for text in pair]
                if not self._decoded:
                    parts[1::2] = [url_decode(value) for value in parts[1::2]]
                fields = _first_values(parts)
            self._fields = fields
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
