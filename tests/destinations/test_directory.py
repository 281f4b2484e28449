"""The directory on a real PostgreSQL: loading, caching (MockClock), invalidation, DND."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio
import trio.testing

from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.destinations import (
    Ambiguous,
    DestinationType,
    Directory,
    FallbackAction,
    Matched,
    MatchKind,
    availability,
    is_do_not_disturb,
)
from callcontrol.testing.database import (
    StockPBX,
    add_destination,
    add_domain,
    add_extension,
    add_secretary,
    set_do_not_disturb,
    set_secretary,
)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_call_naming_no_secretary_sees_the_domain_wide_destinations(
    db: Database,
) -> None:
    domain = await add_domain(db)
    await add_destination(db, domain, "Atendimento", "ring_group", "9000", is_default=True,
                          aliases=["atendimento", "recepção"])  # fmt: skip
    await add_destination(db, domain, "Suporte", "queue", "5001", aliases=["suporte técnico"])
    directory = Directory(db)

    for secretary in (None, uuid.uuid4()):  # no secretary line, or one nobody configured
        anyone = await directory.find(domain, secretary, "qualquer atendente")
        assert isinstance(anyone, Matched) and anyone.kind is MatchKind.ANYONE
        assert anyone.destination.name == "Atendimento"
        assert anyone.destination.destination_type is DestinationType.RING_GROUP
        support = await directory.find(domain, secretary, "SUPORTE TECNICO")
        assert isinstance(support, Matched) and support.destination.number == "5001"
        assert support.destination.destination_type is DestinationType.QUEUE


async def test_the_default_named_in_the_secretary_settings_wins_over_is_default(
    db: Database,
) -> None:
    domain = await add_domain(db)
    secretary = await add_secretary(db, domain)
    await add_destination(db, domain, "Atendimento", "ring_group", "9000", is_default=True)
    recepcao = await add_destination(db, domain, "Recepção", "extension", "1000")
    financeiro = await add_destination(db, domain, "Financeiro", "extension", "1010")
    await set_secretary(db, domain, default_destination_uuid=recepcao)
    await db.execute("UPDATE callcontrol_secretaries SET default_destination_uuid = %s"
                     " WHERE secretary_uuid = %s", (financeiro, secretary))  # fmt: skip

    domain_default = await Directory(db).default(domain)
    assert domain_default is not None and domain_default.name == "Recepção"
    mine = await Directory(db).default(domain, secretary)
    assert mine is not None and mine.name == "Financeiro"


async def test_rows_are_read_with_all_their_settings(db: Database) -> None:
    domain = await add_domain(db)
    secretary = await add_secretary(db, domain)
    row_uuid = await add_destination(
        db, domain, "Financeiro", "extension", "1010",
        secretary_uuid=secretary, aliases=["boleto", "cobrança"], department="Financeiro",
        ring_timeout_seconds=20, max_retries=2, retry_delay_seconds=10,
        fallback_action="voicemail", priority=5,
        working_hours={"schedule": {"mon": ["08:00-18:00"]}},
    )  # fmt: skip
    destination = await Directory(db).get(domain, secretary, row_uuid)
    assert destination is not None
    assert destination.aliases == ("boleto", "cobrança")
    assert (destination.ring_timeout_seconds, destination.max_retries) == (20, 2)
    assert destination.retry_delay_seconds == 10
    assert destination.fallback_action is FallbackAction.VOICEMAIL
    assert destination.working_hours is not None
    assert str(destination.working_hours.timezone) == "America/Sao_Paulo"
    assert availability(destination).is_open in (True, False)


async def test_only_enabled_rows_of_this_secretary_and_domain_wide_ones(db: Database) -> None:
    domain = await add_domain(db)
    other_domain = await add_domain(db, "outra.com.br")
    mine = await add_secretary(db, domain)
    theirs = await add_secretary(db, domain)
    await add_destination(db, domain, "Mine", secretary_uuid=mine)
    await add_destination(db, domain, "Everyone")
    await add_destination(db, domain, "Theirs", secretary_uuid=theirs)
    await add_destination(db, domain, "Off", secretary_uuid=mine, is_enabled=False)
    await add_destination(db, other_domain, "Elsewhere", secretary_uuid=mine)

    names = {d.name for d in await Directory(db).destinations(domain, mine)}
    assert names == {"Mine", "Everyone"}
    assert {d.name for d in await Directory(db).destinations(domain)} == {"Everyone"}


async def test_hostile_or_broken_rows_are_left_out_and_the_rest_served(db: Database) -> None:
    domain = await add_domain(db)
    await add_destination(db, domain, "Good", "extension", "1001")
    await add_destination(
        db, domain, "Bad hours", "extension", "1002", working_hours={"schedule": {"x": "1"}}
    )
    assert [d.name for d in await Directory(db).destinations(domain)] == ["Good"]


async def test_ambiguous_request_returns_both_candidates(db: Database) -> None:
    domain = await add_domain(db)
    await add_destination(db, domain, "Suporte técnico", "queue", "5001")
    await add_destination(db, domain, "Suporte comercial", "queue", "5002")
    result = await Directory(db).find(domain, None, "suporte")
    assert isinstance(result, Ambiguous)
    assert result.question() == "Suporte comercial ou Suporte técnico?"


async def test_cache_lasts_five_minutes_then_reloads(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    domain = await add_domain(db)
    await add_destination(db, domain, "Antigo")
    directory = Directory(db)
    assert [d.name for d in await directory.destinations(domain)] == ["Antigo"]

    await db.execute("UPDATE v_voice_transfer_destinations SET name = 'Novo'")
    await trio.sleep(299)
    assert [d.name for d in await directory.destinations(domain)] == ["Antigo"]
    await trio.sleep(1)
    assert [d.name for d in await directory.destinations(domain)] == ["Novo"]


async def test_invalidate_reloads_at_once(db: Database) -> None:
    domain = await add_domain(db)
    other = await add_domain(db, "outra.com.br")
    await add_destination(db, domain, "Antigo")
    await add_destination(db, other, "Outro")
    directory = Directory(db)
    await directory.destinations(domain)
    await directory.destinations(other)
    await db.execute("UPDATE v_voice_transfer_destinations SET name = name || ' 2'")

    directory.invalidate(domain)
    assert [d.name for d in await directory.destinations(domain)] == ["Antigo 2"]
    assert [d.name for d in await directory.destinations(other)] == ["Outro"]
    directory.invalidate()
    assert [d.name for d in await directory.destinations(other)] == ["Outro 2"]


class CountingDatabase(Database):
    loads = 0

    async def fetch_all(self, *args: Any, **kwargs: Any) -> Any:
        type(self).loads += 1
        return await super().fetch_all(*args, **kwargs)


async def test_concurrent_lookups_share_one_load(db_url: str) -> None:
    db = await CountingDatabase.open(db_url, PoolOptions(max_size=4))
    try:
        domain = await add_domain(db)
        await add_destination(db, domain, "Suporte")
        directory = Directory(db)
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(directory.destinations, domain)
        assert CountingDatabase.loads == 1
    finally:
        await db.close()


async def test_stale_entry_is_served_while_the_database_is_down(
    db_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_database(db_url, PoolOptions(inline=True)) as db:
        domain = await add_domain(db)
        await add_destination(db, domain, "Suporte")
        directory = Directory(db)
        await directory.destinations(domain)
    # the pool is closed now: every query fails, yet the stale entry still answers
    await trio.sleep(301)
    assert [d.name for d in await directory.destinations(domain)] == ["Suporte"]


@pytest.mark.parametrize("fusionpbx_schema", [StockPBX("5.5.7"), StockPBX("5.4.4")], ids=str)
async def test_do_not_disturb_is_read_from_v_extensions(db: Database) -> None:
    domain = await add_domain(db)
    other = await add_domain(db, "outra.com.br")
    await add_extension(db, domain, "1001", do_not_disturb=True)
    await add_extension(db, domain, "1002", do_not_disturb=False)
    await add_extension(db, domain, "1003", do_not_disturb=None)
    await add_extension(db, other, "1002", do_not_disturb=True)

    assert await is_do_not_disturb(db, domain, "1001") is True
    assert await is_do_not_disturb(db, domain, "1002") is False
    assert await is_do_not_disturb(db, domain, "1003") is False
    assert await is_do_not_disturb(db, domain, "9999") is False
    await set_do_not_disturb(db, domain, "1002", True)
    assert await is_do_not_disturb(db, domain, "1002") is True


async def test_fusionpbx_4_dnd_marker_in_dial_string_counts(db: Database) -> None:
    domain = await add_domain(db)
    await add_extension(db, domain, "1001", do_not_disturb=None, dial_string="error/user_busy")
    assert await is_do_not_disturb(db, domain, "1001") is True
    assert uuid.UUID(str(domain))
