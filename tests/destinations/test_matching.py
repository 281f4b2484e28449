"""What the caller said -> which destination (or a question, or the default)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from callcontrol.destinations import (
    Ambiguous,
    Destination,
    DestinationType,
    Matched,
    MatchKind,
    NoMatch,
    match,
    normalize,
)

DOMAIN = uuid.uuid4()


def dest(name: str, *, aliases: tuple[str, ...] = (), department: str | None = None,
         priority: int = 100, default: bool = False) -> Destination:  # fmt: skip
    return Destination(
        uuid=uuid.uuid4(),
        domain_uuid=DOMAIN,
        name=name,
        destination_type=DestinationType.EXTENSION,
        number="1001",
        aliases=aliases,
        department=department,
        priority=priority,
        is_default=default,
    )


ATENDIMENTO = dest("Atendimento", aliases=("recepção",), priority=10, default=True)
JOAO = dest("João Pedro", aliases=("jp", "joão"), department="Comercial")
FINANCEIRO = dest("Maria", aliases=("boleto",), department="Setor Financeiro")
TECNICO = dest("Suporte técnico", department="Suporte")
COMERCIAL = dest("Suporte comercial", department="Vendas")
ALL = [ATENDIMENTO, JOAO, FINANCEIRO, TECNICO, COMERCIAL]


def test_normalize_ignores_case_accents_and_punctuation() -> None:
    assert normalize("  João-PEDRO! ") == "joao pedro"
    assert normalize("Recepção") == normalize("RECEPCAO")


def test_exact_alias_comes_first() -> None:
    assert match("boleto", ALL) == Matched(FINANCEIRO, MatchKind.ALIAS, "boleto")
    assert match("JOAO", ALL) == Matched(JOAO, MatchKind.ALIAS, "JOAO")


def test_name_then_department() -> None:
    assert match("joão pedro", ALL) == Matched(JOAO, MatchKind.NAME, "joão pedro")
    assert match("comercial", ALL) == Matched(JOAO, MatchKind.DEPARTMENT, "comercial")


def test_filler_words_do_not_matter() -> None:
    result = match("quero falar com o setor financeiro, por favor", ALL)
    assert result == Matched(FINANCEIRO, MatchKind.DEPARTMENT, result.said)  # type: ignore[union-attr]
    partial = match("financeiro", ALL)
    assert isinstance(partial, Matched) and partial.destination is FINANCEIRO


def test_a_word_shared_by_two_destinations_is_a_question() -> None:
    result = match("suporte técnico", ALL)
    assert isinstance(result, Matched) and result.destination is TECNICO
    ambiguous = match("o pessoal do suporte", ALL)
    assert isinstance(ambiguous, Matched)  # "Suporte" is TECNICO's department: exact wins
    vague = match("quero o suporte urgente", [TECNICO, COMERCIAL])
    assert isinstance(vague, Ambiguous)
    assert set(vague.candidates) == {TECNICO, COMERCIAL}
    assert vague.question() == "Suporte comercial ou Suporte técnico?"


def test_priority_breaks_ties() -> None:
    preferred = dest("Suporte nível 1", priority=1)
    other = dest("Suporte nível 2", priority=50)
    result = match("suporte", [other, preferred])
    assert result == Matched(preferred, MatchKind.PARTIAL, "suporte")


def test_anyone_and_no_match_go_to_the_default() -> None:
    assert match("qualquer atendente", ALL) == Matched(
        ATENDIMENTO, MatchKind.ANYONE, "qualquer atendente"
    )
    assert match("qualquer pessoa", ALL).destination is ATENDIMENTO  # type: ignore[union-attr]
    assert match("", ALL).kind is MatchKind.ANYONE  # type: ignore[union-attr]
    assert match("astronauta", ALL) == Matched(ATENDIMENTO, MatchKind.DEFAULT, "astronauta")
    assert match("astronauta", [JOAO]) == NoMatch("astronauta")


def test_partial_words_match_by_prefix() -> None:
    result = match("financ", ALL)
    assert isinstance(result, Matched) and result.destination is FINANCEIRO
    assert match("jo", ALL).kind is MatchKind.DEFAULT  # type: ignore[union-attr]


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzçãáéíóúê ", min_size=3, max_size=20).filter(
    lambda s: len(normalize(s).replace(" ", "")) >= 3
)


def accent_noise(text: str, data: st.DataObject) -> str:
    swaps = {"a": "ÁàÃa", "e": "Éê", "c": "Ç", "o": "Õó", "i": "Í", "u": "Ú"}
    return "".join(data.draw(st.sampled_from([ch, ch.upper(), *swaps.get(ch, "")])) for ch in text)


@given(st.lists(names, min_size=1, max_size=6, unique_by=normalize), st.data())
def test_a_name_said_any_way_finds_its_destination(
    name_list: list[str], data: st.DataObject
) -> None:
    destinations = [dest(n) for n in name_list]
    target = data.draw(st.sampled_from(destinations))
    said = accent_noise(normalize(target.name), data)
    result = match(said, destinations)
    if isinstance(result, Matched):
        assert result.destination is target
    else:  # names made only of filler words can collide with each other
        assert isinstance(result, Ambiguous) and target in result.candidates


@given(st.text(max_size=60), st.lists(names, max_size=5))
def test_any_text_gives_a_result_from_the_directory(said: str, name_list: list[str]) -> None:
    destinations = [dest(n, priority=i % 2) for i, n in enumerate(name_list)]
    result = match(said, destinations)
    if isinstance(result, Matched):
        assert result.destination in destinations
    elif isinstance(result, Ambiguous):
        assert len(result.candidates) >= 2
        assert {c.priority for c in result.candidates} == {result.candidates[0].priority}
        assert all(c in destinations for c in result.candidates)
    assert match(said, destinations) == result  # deterministic
