"""HTML written by the pages, with every value escaped unless it is markup we wrote ourselves.

``render(template, **values)`` formats a literal template with ``{name}`` fields; each value is
passed through ``html.escape`` (quotes too, so a value is safe inside an attribute) unless it is
already ``Markup`` (the output of another ``render``). So a caller's name holding ``<script>``
arrives on the page as text, whatever template it goes through, and the only way to put raw
HTML on a page is to write it in a template here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any


class Markup(str):
    """HTML that needs no more escaping: a rendered template."""

    __slots__ = ()


def escape(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def render(template: str, /, **values: Any) -> Markup:
    return Markup(template.format(**{k: escape(v) for k, v in values.items()}))


def join(parts: Iterable[Any]) -> Markup:
    return Markup("".join(escape(p) for p in parts))
