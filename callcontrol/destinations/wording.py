"""Small pt-BR/English wording helpers shared by the sentences the server asks the AI to say.

Portuguese needs an article before a destination's name ("o suporte", "a recepção") and its
contraction after "de" ("do suporte", "da recepção"). Names carry no gender in the database, so
it is guessed from the ending, which is right for department names and most first names.
"""

from __future__ import annotations

from collections.abc import Sequence

_FEMININE_ENDINGS = ("a", "ção", "são", "dade", "agem", "ia", "ria")
_MASCULINE_EXCEPTIONS = frozenset({"dia", "sistema", "problema", "telefonema", "mapa"})


def is_feminine(name: str) -> bool:
    words = name.strip().split()
    if not words:
        return False
    first = words[0].casefold()
    if first in _MASCULINE_EXCEPTIONS:
        return False
    return first.endswith(_FEMININE_ENDINGS)


def with_article(name: str, *, capital: bool = False) -> str:
    """ "o Suporte", "a Recepção" (``capital`` to start a sentence)."""
    article = "a" if is_feminine(name) else "o"
    return f"{article.upper() if capital else article} {name}"


def of(name: str) -> str:
    """ "do Suporte", "da Recepção"."""
    return f"{'da' if is_feminine(name) else 'do'} {name}"


def join_alternatives(items: Sequence[str], conjunction: str = "ou") -> str:
    """ "A", "A ou B", "A, B ou C"."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
