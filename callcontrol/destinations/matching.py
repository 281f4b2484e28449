"""Which destination did the caller (or the AI) mean?

Levels, first hit wins: an alias said exactly, the name, the department (or role), then a
partial match on words. Comparison ignores case, accents, punctuation and filler words
("quero falar com o setor financeiro" means "financeiro"). Several hits at one level are settled
by priority (lower wins); hits that tie on priority are returned as ``Ambiguous`` so the AI can
ask "Suporte técnico ou Suporte comercial?". "Qualquer atendente", an empty request and a
request that matches nothing go to the default destination.
"""

from __future__ import annotations

import enum
import functools
import unicodedata
from collections.abc import Callable, Iterable, Sequence

import attrs

from callcontrol.destinations.model import Destination
from callcontrol.destinations.wording import join_alternatives


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FILLER = _word_set(
    """
    o a os as um uma uns umas de do da dos das d com para pra pro pros no na nos nas e em ao aos
    por favor quero queria gostaria preciso posso falar fala ligar transferir transfere transfira
    me passa passe passar chamar setor departamento area equipe time pessoal ramal
    the to with please department team
    """
)
_ANYONE = _word_set(
    """
    qualquer alguem atendente atendentes pessoa pessoas humano humana humanos operador operadora
    gente algum alguma anyone someone any person human agent somebody
    """
)
_PREFIX_MIN = 4  # "financ" finds "financeiro"; shorter stems match too much


class MatchKind(enum.StrEnum):
    ALIAS = "alias"
    NAME = "name"
    DEPARTMENT = "department"
    PARTIAL = "partial"
    ANYONE = "anyone"  # the caller asked for anybody: the default destination
    DEFAULT = "default"  # nothing matched: the default destination


@attrs.frozen
class Matched:
    destination: Destination
    kind: MatchKind
    said: str


@attrs.frozen
class Ambiguous:
    candidates: tuple[Destination, ...]
    kind: MatchKind
    said: str

    def question(self, language: str = "pt-BR") -> str:
        names = join_alternatives(
            [c.name for c in self.candidates], "or" if language.startswith("en") else "ou"
        )
        return f"{names}?"


@attrs.frozen
class NoMatch:
    """Nothing matched and the secretary has no default destination."""

    said: str


MatchResult = Matched | Ambiguous | NoMatch


# Pure functions of the text, asked again for every destination's fields on every request
# (a handoff normalised 3 texts per destination): each text is worked out once.
@functools.lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Lower case, no accents, words separated by one space: "João-Pedro!" -> "joao pedro"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join("".join(ch if ch.isalnum() else " " for ch in plain).split())


@functools.lru_cache(maxsize=4096)
def words(text: str) -> tuple[str, ...]:
    """The meaningful words of ``text``; all of them when every word is filler."""
    every = tuple(normalize(text).split())
    meaningful = tuple(w for w in every if w not in _FILLER)
    return meaningful or every


def match(said: str, destinations: Sequence[Destination]) -> MatchResult:
    """Resolve what was said against ``destinations`` (already filtered to one secretary)."""
    key = words(said)
    exact_levels: list[tuple[MatchKind, Callable[[Destination], Iterable[str | None]]]] = [
        (MatchKind.ALIAS, lambda d: d.aliases),
        (MatchKind.NAME, lambda d: (d.name,)),
        (MatchKind.DEPARTMENT, lambda d: (d.department, d.role)),
    ]
    if key:
        for kind, fields in exact_levels:
            hits = [d for d in destinations if any(_same(key, f) for f in fields(d))]
            if hits:
                return _settle(hits, kind, said)
    wanted = tuple(w for w in key if w not in _ANYONE)
    if not wanted:
        return _default(destinations, MatchKind.ANYONE, said)
    hits = _partial(wanted, destinations)
    if hits:
        return _settle(hits, MatchKind.PARTIAL, said)
    return _default(destinations, MatchKind.DEFAULT, said)


def default_destination(destinations: Sequence[Destination]) -> Destination | None:
    defaults = sorted((d for d in destinations if d.is_default), key=_order)
    return defaults[0] if defaults else None


def _same(key: tuple[str, ...], field: str | None) -> bool:
    return bool(field) and words(field or "") == key


def _partial(wanted: tuple[str, ...], destinations: Sequence[Destination]) -> list[Destination]:
    """Destinations sharing the most words with the request (at least one)."""
    best, hits = 0, []
    for destination in destinations:
        score = _score(wanted, destination)
        if score > best:
            best, hits = score, [destination]
        elif score == best and score:
            hits.append(destination)
    return hits


def _score(wanted: tuple[str, ...], destination: Destination) -> int:
    fields = [destination.name, *destination.aliases, destination.department, destination.role]
    vocabulary = {w for f in fields if f for w in words(f)}
    return sum(1 for w in wanted if any(_word_matches(w, v) for v in vocabulary))


def _word_matches(a: str, b: str) -> bool:
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= _PREFIX_MIN and longer.startswith(shorter)


def _order(destination: Destination) -> tuple[int, str]:
    return destination.priority, normalize(destination.name)


def _settle(hits: list[Destination], kind: MatchKind, said: str) -> Matched | Ambiguous:
    hits = sorted(set(hits), key=_order)
    top = [d for d in hits if d.priority == hits[0].priority]
    if len(top) == 1:
        return Matched(top[0], kind, said)
    return Ambiguous(tuple(top), kind, said)


def _default(destinations: Sequence[Destination], kind: MatchKind, said: str) -> MatchResult:
    default = default_destination(destinations)
    return NoMatch(said) if default is None else Matched(default, kind, said)
