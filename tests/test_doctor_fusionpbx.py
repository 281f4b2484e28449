"""``callcontrol doctor``'s FusionPBX checks, on the stock 5.5 and 5.4 schemas of the real
PostgreSQL: the tables and their release's shape, each domain's destinations and default, the
dialplan entry, rows pointing at nil or unknown domains, voicemail boxes."""

from __future__ import annotations

import argparse
import io
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio

from callcontrol.cli import main
from callcontrol.config import load_settings
from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.doctor import Check, check_fusionpbx, run_doctor
from callcontrol.testing.database import (
    EVERY_PBX,
    NIL_SECRETARY,
    StockPBX,
    add_destination,
    add_dialplan,
    add_domain,
    add_extension,
    add_queue,
    add_ring_group,
    add_voicemail,
    isolated_database_url,
    set_secretary,
)

T = TypeVar("T")
EVERY = pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
LISTEN = "127.0.0.1:8022"


def seed(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_database(url, PoolOptions(min_size=1, max_size=1, inline=True)) as db:
            return await work(db)

    return trio.run(run)


def checks(url: str, listen: str = LISTEN) -> dict[str, Check]:
    found = check_fusionpbx(load_settings({"DATABASE_URL": url, "CALLCONTROL_ESL_LISTEN": listen}))
    named = {c.name: c for c in found}
    assert len(named) == len(found)
    return named


def line(check: Check) -> str:
    return check.render().splitlines()[0]


@EVERY
def test_tables_and_the_release_shape(db_url: str, fusionpbx_schema: StockPBX) -> None:
    tables = checks(db_url)["fusionpbx tables"]
    shape = ("FusionPBX 5.4 shape (text flags 'true'/'false')" if fusionpbx_schema.text_flags
             else "FusionPBX 5.5 shape (boolean flags)")  # fmt: skip
    also = ("; the voice-secretary app's v_voice_secretaries too"
            if fusionpbx_schema.secretary_app else "")  # fmt: skip
    assert line(tables) == f"OK    fusionpbx tables: 7 present, {shape}{also}"


def test_not_a_fusionpbx_database(database_url: str) -> None:
    with isolated_database_url(database_url, fusionpbx=None) as url:
        found = check_fusionpbx(load_settings({"DATABASE_URL": url}))
    assert [line(c) for c in found] == [
        "FAIL  fusionpbx tables: missing v_domains, v_extensions, v_ring_groups, "
        "v_call_center_queues, v_voicemails, v_dialplans, v_dialplan_details: this is not a "
        "FusionPBX database -- fix: set DATABASE_URL to the FusionPBX database (its password is "
        "database.0.password in /etc/fusionpbx/config.conf)"
    ]


def test_a_half_upgraded_schema_is_named_mixed(db_url: str) -> None:
    seed(db_url, lambda db: db.execute(
        "ALTER TABLE v_dialplans ALTER COLUMN dialplan_enabled TYPE text"))  # fmt: skip
    detail = checks(db_url)["fusionpbx tables"].detail
    assert "mixed flag types (v_extensions.enabled boolean, v_ring_groups.ring_group_enabled " \
        "boolean, v_dialplans.dialplan_enabled text" in detail


# -- domains --------------------------------------------------------------------------------


@EVERY
def test_a_domain_without_destinations_is_told_to_import(
    db_url: str, capsys: Any, monkeypatch: pytest.MonkeyPatch, fusionpbx_schema: StockPBX
) -> None:
    async def pbx(db: Database) -> uuid.UUID:
        domain = await add_domain(db, "empresa.com.br")
        await add_domain(db, "desligado.com.br", enabled=False)
        await add_ring_group(db, domain, "9000", "Recepção")
        await add_ring_group(db, domain, "9001", "Antigo", enabled=False)
        await add_queue(db, domain, "5001", "Suporte")
        await add_extension(db, domain, "1001", name="João")
        return domain

    domain = seed(db_url, pbx)
    found = checks(db_url)
    assert "domain desligado.com.br" not in found
    assert line(found["domain empresa.com.br"]) == (
        "WARN  domain empresa.com.br: 0 enabled destinations: the AI can transfer only to the "
        "domain's first ring group (else extension) -- fix: callcontrol destinations import "
        "--domain empresa.com.br"
    )

    # the fix it names, as the admin runs it
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["destinations", "import", "--domain", "empresa.com.br", "--yes"]) == 0
    capsys.readouterr()
    assert line(checks(db_url)["domain empresa.com.br"]) == (
        "OK    domain empresa.com.br: 3 enabled destination(s), default Recepção (ring_group 9000)"
    )

    # FusionPBX's admin later disables the ring group: the destination now rings nobody
    seed(db_url, lambda db: db.execute(
        "UPDATE v_ring_groups SET ring_group_enabled = 'false' WHERE domain_uuid = %s",
        (domain,)))  # fmt: skip
    assert checks(db_url)["domain empresa.com.br"].render().splitlines() == [
        "WARN  domain empresa.com.br: 3 enabled destination(s), default Recepção (ring_group "
        "9000); 1 point at nothing -- fix: enable the number in FusionPBX, or disable the "
        "destination (is_enabled = false)",
        "        - Recepção (ring_group 9000): disabled in FusionPBX, never rung",
    ]


@EVERY
def test_a_domain_without_a_default(db_url: str, fusionpbx_schema: StockPBX) -> None:
    async def pbx(db: Database) -> uuid.UUID:
        domain = await add_domain(db, "empresa.com.br")
        await add_queue(db, domain, "5001", "Suporte")
        await add_destination(db, domain, "Suporte", "queue", "5001")
        await add_destination(db, domain, "Fantasma", "extension", "1999")
        await add_destination(db, domain, "Velho", "queue", "5001", is_enabled=False,
                              is_default=True)  # fmt: skip
        return domain

    domain = seed(db_url, pbx)
    assert checks(db_url)["domain empresa.com.br"].render().splitlines() == [
        "WARN  domain empresa.com.br: 2 enabled destination(s), 0 default destination: 'anyone' "
        "and the no-AI path go to the first ring group (else extension) -- fix: callcontrol "
        "destinations import --domain empresa.com.br (makes the first ring group the default), "
        "or callcontrol destinations add --domain empresa.com.br ... --default",
        "        - Fantasma (extension 1999): not in FusionPBX, never rung",
    ]

    async def chosen_in_settings(db: Database) -> None:
        rows = await db.fetch_all(
            "SELECT transfer_destination_uuid AS u FROM v_voice_transfer_destinations"
            " WHERE name = 'Suporte'")  # fmt: skip
        await set_secretary(db, domain, default_destination_uuid=rows[0]["u"])

    seed(db_url, chosen_in_settings)
    assert line(checks(db_url)["domain empresa.com.br"]).startswith(
        "WARN  domain empresa.com.br: 2 enabled destination(s), default Suporte (queue 5001); "
        "1 point at nothing")


def test_no_domain_at_all(db_url: str) -> None:
    assert line(checks(db_url)["domains"]) == (
        "WARN  domains: FusionPBX has no enabled domain (v_domains) -- fix: create the domain in "
        "FusionPBX (Advanced > Domains)"
    )


# -- the dialplan entry ---------------------------------------------------------------------


@EVERY
def test_dialplan_entry(db_url: str, fusionpbx_schema: StockPBX) -> None:
    found = checks(db_url)["dialplan"]
    assert line(found) == (
        "WARN  dialplan: no dialplan entry hands calls to 127.0.0.1:8022 (no `socket` action in "
        "v_dialplan_details or v_dialplans): no call reaches callcontrol -- fix: `callcontrol "
        "fusionpbx install-dialplan --domain NAME` adds it to a domain (or add "
        "dialplan/fusionpbx/ai_secretary.dialplan-manager.xml by hand in Dialplan > Dialplan "
        "Manager; docs/dialplan.md)"
    )
    domain = seed(db_url, lambda db: add_domain(db, "empresa.com.br"))
    seed(db_url, lambda db: add_dialplan(db, domain, "old_ai", "8000", "127.0.0.1:9999 async full"))
    assert checks(db_url)["dialplan"].render().splitlines() == [
        "FAIL  dialplan: no socket entry points at CALLCONTROL_ESL_LISTEN 127.0.0.1:8022 -- fix: "
        "set the socket data to '127.0.0.1:8022 async full', or CALLCONTROL_ESL_LISTEN to the "
        "address the dialplan uses",
        "        - dialplan 'old_ai' (context empresa.com.br, number 8000): socket "
        "127.0.0.1:9999 async full",
    ]
    # the same address as the setting, as FusionPBX's form (details) and XML editor store it
    assert line(checks(db_url, "127.0.0.1:9999")["dialplan"]) == (
        "OK    dialplan: dialplan 'old_ai' (context empresa.com.br, number 8000): socket "
        "127.0.0.1:9999 async full"
    )
    seed(db_url, lambda db: add_dialplan(db, domain, "cc", "8001", "127.0.0.1:8022 async",
                                         details=False))  # fmt: skip
    assert line(checks(db_url)["dialplan"]) == (
        "FAIL  dialplan: dialplan 'cc' (context empresa.com.br, number 8001): socket "
        "'127.0.0.1:8022 async' lacks 'async full' (without full FreeSWITCH refuses api, bgapi "
        "and events: no transfer works) -- fix: set the socket data to '127.0.0.1:8022 async full'"
    )


def test_dialplan_entry_disabled_wildcard_and_several(db_url: str) -> None:
    domain = seed(db_url, lambda db: add_domain(db, "empresa.com.br"))
    seed(db_url, lambda db: add_dialplan(db, domain, "cc", "8000", "127.0.0.1:8022 async full",
                                         enabled=False, xml=False))  # fmt: skip
    assert line(checks(db_url)["dialplan"]) == (
        "WARN  dialplan: dialplan 'cc' (context empresa.com.br, number 8000) hands calls to "
        "127.0.0.1:8022 but is disabled -- fix: enable it in Dialplan > Dialplan Manager"
    )
    seed(db_url, lambda db: add_dialplan(db, domain, "cc2", "8002", "localhost:8022 async full"))
    found = checks(db_url, "0.0.0.0:8022")["dialplan"]
    assert found.render().splitlines() == [
        "OK    dialplan: dialplan 'cc2' (context empresa.com.br, number 8002): socket "
        "localhost:8022 async full",
    ]
    seed(db_url, lambda db: add_dialplan(db, domain, "cc3", "8003", "127.0.0.1:8022 async full"))
    assert checks(db_url)["dialplan"].render().splitlines() == [
        "OK    dialplan: dialplan 'cc2' (context empresa.com.br, number 8002): socket "
        "localhost:8022 async full",
        "        - also dialplan 'cc3' (context empresa.com.br, number 8003)",
    ]


# -- placeholder UUIDs ----------------------------------------------------------------------


@EVERY
def test_rows_pointing_at_nil_or_unknown_domains(db_url: str, fusionpbx_schema: StockPBX) -> None:
    assert line(checks(db_url)["placeholder uuids"]) == (
        "OK    placeholder uuids: every destination and secretary row names an existing domain"
    )
    gone = uuid.uuid4()

    async def pbx(db: Database) -> None:
        domain = await add_domain(db, "empresa.com.br")
        await add_destination(db, domain, "Bom", "queue", "5001")
        await add_destination(db, NIL_SECRETARY, "Atendimento", "ring_group", "9000")
        await add_destination(db, gone, "Suporte", "queue", "5001")
        await add_destination(db, domain, "Ninguém", "queue", "5001",
                              secretary_uuid=NIL_SECRETARY)  # fmt: skip
        await set_secretary(db, gone, company_name="Antiga")

    seed(db_url, pbx)
    assert checks(db_url)["placeholder uuids"].render().splitlines() == [
        "WARN  placeholder uuids: 4 row(s) no call can use -- fix: set domain_uuid to the "
        "domain's v_domains.domain_uuid (or delete the row: `callcontrol destinations import "
        "--domain X` adds the domain's own), and secretary_uuid to NULL or a real secretary",
        "        - destination Atendimento: domain_uuid is the nil UUID",
        "        - destination Ninguém: secretary_uuid is the nil UUID (no secretary has it: "
        "NULL means every one)",
        f"        - destination Suporte: domain_uuid {gone} is not in v_domains",
        f"        - secretary settings the domain's row: domain_uuid {gone} is not in v_domains",
    ]


# -- voicemail boxes ------------------------------------------------------------------------


@EVERY
def test_voicemail_boxes_of_voicemail_fallbacks(db_url: str, fusionpbx_schema: StockPBX) -> None:
    assert line(checks(db_url)["voicemail boxes"]) == (
        "OK    voicemail boxes: no extension destination falls back to voicemail"
    )

    async def pbx(db: Database) -> uuid.UUID:
        domain = await add_domain(db, "empresa.com.br")
        for number in ("1001", "1002", "1003"):
            await add_extension(db, domain, number)
            await add_destination(db, domain, f"Ramal {number}", "extension", number,
                                  fallback_action="voicemail")  # fmt: skip
        await add_destination(db, domain, "Sem", "extension", "1004",
                              fallback_action="voicemail", is_enabled=False)  # fmt: skip
        await add_voicemail(db, domain, "1001")
        await add_voicemail(db, domain, "1002", enabled=False)
        return domain

    domain = seed(db_url, pbx)
    assert checks(db_url)["voicemail boxes"].render().splitlines() == [
        "WARN  voicemail boxes: 2 of 3 extension destination(s) falling back to voicemail have "
        "no enabled box: their callers cannot leave a message -- fix: create or enable the box "
        "in FusionPBX (Accounts > Voicemail), or change the destination's fallback_action",
        "        - Ramal 1002 (extension 1002 of empresa.com.br): the box is disabled",
        "        - Ramal 1003 (extension 1003 of empresa.com.br): no box in v_voicemails",
    ]

    async def fix(db: Database) -> None:
        await db.execute("UPDATE v_voicemails SET voicemail_enabled = 'true'")
        await add_voicemail(db, domain, "1003")

    seed(db_url, fix)
    assert line(checks(db_url)["voicemail boxes"]) == (
        "OK    voicemail boxes: all 3 extension destination(s) falling back to voicemail have "
        "an enabled box"
    )


# -- the whole report -----------------------------------------------------------------------


def test_doctor_report_counts_warnings_and_skips_fusionpbx_on_the_embedded_database(
    db_url: str, capsys: Any
) -> None:
    seed(db_url, lambda db: add_domain(db, "empresa.com.br"))
    env = {"DATABASE_URL": db_url, "ESL_PORT": "1", "CALLCONTROL_ESL_LISTEN": LISTEN}
    assert run_doctor(argparse.Namespace(), env) == 1
    out = capsys.readouterr().out.splitlines()
    assert "WARN  domain empresa.com.br: 0 enabled destinations" in "\n".join(out)
    assert out[-1] == "2 check(s) failed, 2 warning(s)"

    found = check_fusionpbx(load_settings({}))
    assert [line(c) for c in found] == [
        "SKIP  fusionpbx: not checked on the embedded database"]
    [failed] = check_fusionpbx(load_settings({"DATABASE_URL": "postgresql://u@127.0.0.1:1/x"}))
    assert failed.failed and failed.detail.startswith("cannot read FusionPBX's tables: ")
