"""Which secretary's settings a call gets, on every shape of PBX (stock 5.5/5.4, with and
without the separate voice-secretary app)."""

from __future__ import annotations

import uuid

import pytest

from callcontrol.db import Database
from callcontrol.secretary_settings import load_secretary, secretary_uuid_of
from callcontrol.testing.database import (
    EVERY_PBX,
    StockPBX,
    add_domain,
    add_voice_secretary_app_row,
    set_secretary,
)

WITH_APP = [p for p in EVERY_PBX if p.secretary_app]


@pytest.mark.parametrize(
    "text", [None, "", "00000000-0000-0000-0000-000000000000", "not-a-uuid", "${x}"]
)
def test_no_line_nil_or_malformed_uuid_mean_the_domains_secretary(text: str | None) -> None:
    assert secretary_uuid_of(text) is None


def test_a_real_uuid_names_a_secretary() -> None:
    value = uuid.uuid4()
    assert secretary_uuid_of(str(value)) == value


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_no_line_or_an_unknown_secretary_gets_the_domain_row(db: Database) -> None:
    domain = await add_domain(db)
    other = await add_domain(db, "outra.com.br")
    await set_secretary(db, domain, company_name="Clínica", greeting="Clínica, bom dia!")
    await set_secretary(db, other, company_name="Outra")
    for secretary in (None, uuid.uuid4()):
        settings = await load_secretary(db, domain, secretary)
        assert (settings.company_name, settings.greeting) == ("Clínica", "Clínica, bom dia!")
        assert settings.source == "domain"


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_nothing_configured_is_the_servers_defaults(db: Database) -> None:
    settings = await load_secretary(db, await add_domain(db), uuid.uuid4())
    assert settings.company_name is None and settings.source == "defaults"
    assert (await load_secretary(db, None, None)).source == "defaults"


async def test_a_secretarys_own_row_wins_and_the_domain_row_fills_the_gaps(db: Database) -> None:
    domain = await add_domain(db)
    secretary = uuid.uuid4()
    await set_secretary(db, domain, company_name="Clínica", voice="marin", transfer_enabled=True)
    await set_secretary(db, domain, secretary, instructions="Fale só de exames.",
                        transfer_enabled=False)  # fmt: skip
    settings = await load_secretary(db, domain, secretary)
    assert settings.company_name == "Clínica" and settings.voice == "marin"
    assert settings.instructions == "Fale só de exames."
    assert settings.transfer_enabled is False
    assert settings.source == "own+domain"


@pytest.mark.parametrize("fusionpbx_schema", WITH_APP, ids=str)
async def test_the_other_apps_row_is_read_when_that_app_is_installed(db: Database) -> None:
    domain = await add_domain(db)
    secretary = uuid.uuid4()
    await set_secretary(db, domain, company_name="Domínio", greeting="Olá!")
    await add_voice_secretary_app_row(db, domain, secretary, company_name="Clínica do App",
                                      personality_prompt="Seja breve.")  # fmt: skip
    settings = await load_secretary(db, domain, secretary)
    assert settings.company_name == "Clínica do App"
    assert settings.instructions == "Seja breve."
    assert settings.greeting == "Olá!"  # from the domain row
    assert settings.source == "app+domain"


@pytest.mark.parametrize("fusionpbx_schema", WITH_APP, ids=str)
async def test_a_disabled_or_another_domains_app_secretary_is_not_used(
    db: Database, fusionpbx_schema: StockPBX
) -> None:
    domain = await add_domain(db)
    other = await add_domain(db, "outra.com.br")
    off, theirs = uuid.uuid4(), uuid.uuid4()
    await add_voice_secretary_app_row(db, domain, off, company_name="Off", enabled=False)
    await add_voice_secretary_app_row(db, other, theirs, company_name="Theirs")
    await set_secretary(db, domain, company_name="Clínica")
    assert (await load_secretary(db, domain, off)).company_name == "Clínica"
    assert (await load_secretary(db, domain, theirs)).company_name == "Clínica"
