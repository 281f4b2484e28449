"""FreeSWITCH's URL encoding of plain event header values.

FreeSWITCH escapes bytes below 0x20 or above 0x7E and the characters of ``SWITCH_URL_UNSAFE``
(switch_utils.h), and leaves an existing ``%XX`` (upper-case hex) sequence alone. ``+`` always
arrives as ``%2B``, so decoding is percent-decoding only — never ``+`` to space.
"""

from __future__ import annotations

from urllib.parse import unquote

_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_HEX_UPPER = frozenset(b"0123456789ABCDEF")


def _needs_escape(byte: int) -> bool:
    return byte < 0x20 or byte > 0x7E or byte in _UNSAFE


_ESCAPE = tuple(f"%{b:02X}" if _needs_escape(b) else chr(b) for b in range(256))


def _ascii_escapes() -> dict[str, str]:
    """``"4a"``/``"4A"`` → ``"J"`` for every byte below 0x80, in every mix of hex-digit case."""
    table: dict[str, str] = {}
    for byte in range(0x80):
        for high in {f"{byte >> 4:x}", f"{byte >> 4:X}"}:
            for low in {f"{byte & 15:x}", f"{byte & 15:X}"}:
                table[high + low] = chr(byte)
    return table


_ASCII_ESCAPES = _ascii_escapes()


def url_decode(value: str) -> str:
    """Decode a plain-event header value: ``unquote(value, errors="surrogateescape")``.

    Almost every escape FreeSWITCH writes is an ASCII byte (``%3A``, ``%20``, ``%40``), and an
    ASCII byte decodes to the character of the same code whatever surrounds it; those are
    looked up in a table, which is several times faster than ``unquote``. A UTF-8 byte
    (``%C3``) or a ``%`` that starts no escape goes to ``unquote`` itself, so the result is
    always exactly ``unquote``'s (tests/esl/test_fast_paths.py checks this).
    """
    if "%" not in value:
        return value
    head, *escaped = value.split("%")
    try:
        return head + "".join([_ASCII_ESCAPES[part[:2]] + part[2:] for part in escaped])
    except KeyError:
        return unquote(value, errors="surrogateescape")


def url_encode(value: str) -> str:
    """Encode ``value`` the way ``switch_url_encode`` does (no double encoding)."""
    raw = value.encode("utf-8", errors="surrogateescape")
    out: list[str] = []
    n = len(raw)
    i = 0
    while i < n:
        byte = raw[i]
        if (
            byte == 0x25  # '%' starting an existing %XX escape is kept as it is
            and i + 2 < n
            and raw[i + 1] in _HEX_UPPER
            and raw[i + 2] in _HEX_UPPER
        ):
            out.append("%")
        else:
            out.append(_ESCAPE[byte])
        i += 1
    return "".join(out)
