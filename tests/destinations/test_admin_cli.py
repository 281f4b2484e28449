"""``callcontrol destinations list | add | import`` through the command's entry point, on the
stock FusionPBX schemas (5.5 boolean flags, 5.4 text flags) of the real PostgreSQL."""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest
import trio
from psycopg.rows import dict_row

from callcontrol.cli import build_parser, main
from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.destinations.model import DestinationType, FallbackAction
from callcontrol.testing.database import (
    EVERY_PBX,
    StockPBX,
    add_destination,
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


def seed(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_database(url, PoolOptions(min_size=1, max_size=1, inline=True)) as db:
            return await work(db)

    return trio.run(run)


def rows(url: str, domain_uuid: uuid.UUID | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT d.name, d.destination_type, d.destination_number, d.is_default,"
            " d.is_enabled, d.description, d.fallback_action, d.ring_timeout_seconds,"
            " d.department, d.aliases, d.secretary_uuid, v.domain_name"
            " FROM v_voice_transfer_destinations d JOIN v_domains v USING (domain_uuid)"
            " WHERE %(d)s::uuid IS NULL OR d.domain_uuid = %(d)s::uuid"
            " ORDER BY d.destination_type, d.destination_number",
            {"d": domain_uuid},
        ).fetchall()


def run(capsys: Any, *argv: str) -> tuple[int, list[str], list[str]]:
    capsys.readouterr()  # what seeding the rows logged
    code = main(["destinations", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no question asked
    return db_url


async def _real_pbx(db: Database) -> dict[str, uuid.UUID]:
    """A domain as a FusionPBX admin leaves it: ring groups, a queue, extensions, some of
    them disabled, and a second domain whose numbers must not leak into the first."""
    domain = await add_domain(db, "empresa.com.br")
    other = await add_domain(db, "outra.com.br")
    await add_ring_group(db, domain, "9000", "Recepção", description="Atendimento geral")
    await add_ring_group(db, domain, "9001", "Antigo", enabled=False)
    await add_ring_group(db, domain, "9002", "Vendas")
    await add_queue(db, domain, "5001", "Suporte", description="Fila do suporte")
    await add_extension(db, domain, "1001", name="João Silva", description="Financeiro")
    await add_extension(db, domain, "1002", name="Desligado", enabled=False)
    await add_extension(db, domain, "1003")
    await add_extension(db, other, "2001", name="De outro domínio")
    await add_ring_group(db, other, "9000", "Recepção da outra")
    return {"domain": domain, "other": other}


@EVERY
def test_import_proposes_then_writes_with_yes_and_is_idempotent(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    ids = seed(env, _real_pbx)

    code, out, err = run(capsys, "import", "--domain", "empresa.com.br")
    assert (code, err) == (0, [])
    assert out[0] == "empresa.com.br: 5 destination(s) to add:"
    table = [line.split() for line in out[1:7]]
    assert table[0] == ["NAME", "TYPE", "NUMBER", "DEFAULT", "DESCRIPTION"]
    assert out[2].split() == ["Recepção", "ring_group", "9000", "yes", "Atendimento", "geral"]
    assert out[3].split() == ["Vendas", "ring_group", "9002", "no"]
    assert out[4].split() == ["Suporte", "queue", "5001", "no", "Fila", "do", "suporte"]
    assert out[5].split() == ["João", "Silva", "extension", "1001", "no", "Financeiro"]
    assert out[6].split() == ["Ramal", "1003", "extension", "1003", "no"]
    assert out[-1] == (
        "nothing written -- to write them: callcontrol destinations import --domain "
        "empresa.com.br --yes"
    )
    assert rows(env) == []

    code, out, err = run(capsys, "import", "--domain", "EMPRESA.com.br", "--yes")
    assert (code, err) == (0, [])
    assert "added 5 destination(s) to empresa.com.br -- check them: callcontrol destinations " \
        "list --domain empresa.com.br" in out
    written = rows(env, ids["domain"])
    assert [(r["name"], r["destination_type"], r["destination_number"], r["is_default"])
            for r in written] == [
        ("João Silva", "extension", "1001", False),
        ("Ramal 1003", "extension", "1003", False),
        ("Suporte", "queue", "5001", False),
        ("Recepção", "ring_group", "9000", True),
        ("Vendas", "ring_group", "9002", False),
    ]  # fmt: skip
    assert {r["description"] for r in written} == {
        "Financeiro", None, "Fila do suporte", "Atendimento geral"}
    assert all(r["is_enabled"] and r["secretary_uuid"] is None for r in written)
    assert all(r["fallback_action"] == "offer_callback" for r in written)
    assert rows(env, ids["other"]) == []

    code, out, _ = run(capsys, "import", "--domain", "empresa.com.br", "--yes")
    assert code == 0
    assert out == [
        "nothing to import: every enabled ring group, queue and extension of empresa.com.br "
        "is already a destination (5)"
    ]
    assert len(rows(env)) == 5


def test_import_count_line_says_what_is_already_present(env: str, capsys: Any) -> None:
    ids = seed(env, _real_pbx)

    async def some(db: Database) -> None:
        await add_destination(db, ids["domain"], "Recepção", "ring_group", "9000",
                              is_default=True)  # fmt: skip
        await add_destination(db, ids["domain"], "Joãozinho", "extension", "1001",
                              is_enabled=False)  # fmt: skip

    seed(env, some)
    code, out, _ = run(capsys, "import", "--domain", "empresa.com.br", "--yes")
    assert code == 0
    assert out[0] == "empresa.com.br: 3 destination(s) to add (2 already present):"
    names = [line.split()[0] for line in out[2:5]]
    assert names == ["Vendas", "Suporte", "Ramal"]
    # the domain had a default: none is added; the disabled 1001 stays as the admin left it
    written = {r["destination_number"]: r for r in rows(env, ids["domain"])}
    assert [n for n, r in written.items() if r["is_default"]] == ["9000"]
    assert written["1001"]["name"] == "Joãozinho" and not written["1001"]["is_enabled"]


@EVERY
def test_import_default_is_the_first_extension_without_ring_groups(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    async def pbx(db: Database) -> uuid.UUID:
        domain = await add_domain(db, "pequena.com.br")
        await add_extension(db, domain, "201", name="Ana")
        await add_extension(db, domain, "200", name="Ana")  # the same name: told apart
        await add_extension(db, domain, "100", name="Caixa", enabled=False)
        await add_queue(db, domain, "5000", "Fila")
        return domain

    domain = seed(env, pbx)
    code, out, _ = run(capsys, "import", "--domain", "pequena.com.br", "--yes")
    assert code == 0
    assert [line.split()[:5] for line in out[2:5]] == [
        ["Fila", "queue", "5000", "no"],
        ["Ana", "extension", "200", "yes"],
        ["Ana", "201", "extension", "201", "no"],
    ]
    assert [(r["destination_number"], r["name"], r["is_default"])
            for r in rows(env, domain)] == [
        ("200", "Ana", True), ("201", "Ana 201", False), ("5000", "Fila", False),
    ]  # fmt: skip


def test_import_makes_an_existing_ring_group_the_default(env: str, capsys: Any) -> None:
    ids = seed(env, _real_pbx)

    async def everything_but_default(db: Database) -> None:
        for kind, number, name in [("ring_group", "9000", "Recepção"),
                                   ("ring_group", "9002", "Vendas"), ("queue", "5001", "Suporte"),
                                   ("extension", "1001", "João"), ("extension", "1003", "Ze")]:
            await add_destination(db, ids["domain"], name, kind, number)

    seed(env, everything_but_default)
    code, out, _ = run(capsys, "import", "--domain", "empresa.com.br", "--yes")
    assert code == 0
    assert out[0] == (
        "'Recepção' (ring group 9000), already a destination, becomes empresa.com.br's default"
    )
    assert out[1] == "'Recepção' is now empresa.com.br's default"
    assert [r["destination_number"] for r in rows(env, ids["domain"]) if r["is_default"]] == [
        "9000"]
    code, out, _ = run(capsys, "import", "--domain", "empresa.com.br", "--yes")
    assert out[0].startswith("nothing to import")


def test_import_asks_on_a_terminal(env: str, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    ids = seed(env, _real_pbx)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, _ = run(capsys, "import", "--domain", "empresa.com.br")
    assert code == 0 and out[-1].endswith("nothing written")
    assert "Write them to empresa.com.br? [y/N]" in out[-1]
    assert rows(env) == []

    monkeypatch.setattr("sys.stdin", Terminal("s\n"))
    code, out, _ = run(capsys, "import", "--domain", "empresa.com.br")
    assert code == 0
    assert len(rows(env, ids["domain"])) == 5


def test_import_of_an_empty_domain(env: str, capsys: Any) -> None:
    async def pbx(db: Database) -> None:
        domain = await add_domain(db, "vazia.com.br")
        await add_extension(db, domain, "100", enabled=False)

    seed(env, pbx)
    code, out, _ = run(capsys, "import", "--domain", "vazia.com.br", "--yes")
    assert (code, out) == (0, [
        "nothing to import: vazia.com.br has no enabled ring group, call-center queue or "
        "extension in FusionPBX"])  # fmt: skip


# -- list -----------------------------------------------------------------------------------


@EVERY
def test_list_shows_every_destination_of_the_domain(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    ids = seed(env, _real_pbx)
    code, out, _ = run(capsys, "list", "--domain", "empresa.com.br")
    assert (code, out) == (0, [
        "empresa.com.br has no callcontrol destinations -- add them: callcontrol destinations "
        "import --domain empresa.com.br"])  # fmt: skip

    async def some(db: Database) -> None:
        await add_destination(db, ids["domain"], "Recepção", "ring_group", "9000",
                              is_default=True, priority=10)  # fmt: skip
        await add_destination(db, ids["domain"], "João Silva", "extension", "1001",
                              ring_timeout_seconds=20, fallback_action="voicemail")  # fmt: skip
        await add_destination(db, ids["domain"], "Antigo", "queue", "5001", is_enabled=False)
        await add_destination(db, ids["other"], "Da outra", "extension", "2001")

    seed(env, some)
    code, out, _ = run(capsys, "list", "--domain", "empresa.com.br")
    assert code == 0
    assert out == [
        "NAME        TYPE        NUMBER  DEFAULT  ENABLED  RING TIMEOUT  FALLBACK",
        "Recepção    ring_group  9000    yes      yes      30 s          offer_callback",
        "João Silva  extension   1001    no       yes      20 s          voicemail",
        "Antigo      queue       5001    no       no       30 s          offer_callback",
        "3 destination(s), 2 enabled; default: Recepção",
    ]


def test_list_shows_the_default_chosen_in_the_settings_and_secretary_scope(
    env: str, capsys: Any
) -> None:
    ids = seed(env, _real_pbx)
    secretary = uuid.uuid4()

    async def some(db: Database) -> None:
        await add_destination(db, ids["domain"], "Recepção", "ring_group", "9000",
                              is_default=True)  # fmt: skip
        chosen = await add_destination(db, ids["domain"], "Vendas", "ring_group", "9002",
                                       secretary_uuid=secretary)  # fmt: skip
        await set_secretary(db, ids["domain"], default_destination_uuid=chosen)

    seed(env, some)
    code, out, _ = run(capsys, "list", "--domain", "empresa.com.br")
    assert code == 0
    assert out[0].split()[-1] == "SECRETARY"
    assert out[1].split() == ["Recepção", "ring_group", "9000", "no", "yes", "30", "s",
                              "offer_callback", "all"]  # fmt: skip
    assert out[2].split()[3] == "yes" and out[2].split()[-1] == str(secretary)
    assert out[-1] == "2 destination(s), 2 enabled; default: Vendas"


# -- add ------------------------------------------------------------------------------------


@EVERY
def test_add_validates_against_the_domains_fusionpbx_tables(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    ids = seed(env, _real_pbx)
    seed(env, lambda db: add_voicemail(db, ids["domain"], "1001"))
    base = ["add", "--domain", "empresa.com.br"]
    refusals = {
        ("--name", "X", "--type", "ring_group", "--number", "9005"):
            "empresa.com.br has no ring group 9005 in FusionPBX (v_ring_groups); its ring "
            "groups: 9000, 9001, 9002",
        ("--name", "X", "--type", "ring_group", "--number", "9001"):
            "ring group 9001 of empresa.com.br is disabled in FusionPBX -- fix: enable it "
            "there (Applications > Ring Groups) first",
        ("--name", "X", "--type", "extension", "--number", "1002"):
            "extension 1002 of empresa.com.br is disabled in FusionPBX -- fix: enable it there "
            "(Accounts > Extensions) first",
        ("--name", "X", "--type", "extension", "--number", "2001"):
            "empresa.com.br has no extension 2001 in FusionPBX (v_extensions); its extensions: "
            "1001, 1002, 1003",
        ("--name", "X", "--type", "queue", "--number", "5002"):
            "empresa.com.br has no queue 5002 in FusionPBX (v_call_center_queues); its queues: "
            "5001",
        ("--name", "X", "--type", "queue", "--number", "5001", "--fallback", "voicemail"):
            "--fallback voicemail needs an extension: a queue has no voicemail box of its own "
            "(choose offer_callback, transfer_default or hangup)",
        ("--name", "X", "--type", "extension", "--number", "1003", "--fallback", "voicemail"):
            "extension 1003 of empresa.com.br has no enabled voicemail box (v_voicemails) -- "
            "fix: create or enable it in FusionPBX (Accounts > Voicemail), or choose another "
            "--fallback",
        ("--name", "X", "--type", "queue", "--number", "5001", "--ring-timeout", "0"):
            "--ring-timeout 0: must be 1 to 600 seconds",
        ("--name", "X", "--type", "queue", "--number", "50 01"):
            "--number '50 01': only digits, letters and * # + _ . -",
    }
    for argv, message in refusals.items():
        code, out, err = run(capsys, *base, *argv)
        assert (code, out, err) == (1, [], [f"callcontrol destinations add: {message}"]), argv
    assert rows(env) == []

    code, out, err = run(capsys, "add", "--domain", "nada.com.br", "--name", "X", "--type",
                         "queue", "--number", "5001")  # fmt: skip
    assert (code, err) == (1, ["callcontrol destinations add: no domain 'nada.com.br' in "
                               "FusionPBX (v_domains); its domains: empresa.com.br, "
                               "outra.com.br"])  # fmt: skip

    code, out, err = run(capsys, *base, "--name", "João", "--type", "extension", "--number",
                         "1001", "--fallback", "voicemail", "--ring-timeout", "20",
                         "--department", "Financeiro", "--alias", "boleto", "--alias",
                         "cobrança")  # fmt: skip
    assert (code, err) == (0, [])
    assert out[0] == ("added 'João' to empresa.com.br: extension 1001, rings 20 s, then "
                      "voicemail")  # fmt: skip
    assert out[1] == "a running callcontrol uses it within 5 minutes (or at once after a restart)"
    [row] = rows(env)
    assert (row["name"], row["destination_type"], row["destination_number"], row["is_default"],
            row["ring_timeout_seconds"], row["fallback_action"], row["department"],
            row["aliases"]) == ("João", "extension", "1001", False, 20, "voicemail",
                                "Financeiro", ["boleto", "cobrança"])  # fmt: skip

    for argv, message in {
        ("--name", "Outro", "--type", "extension", "--number", "1001"):
            "empresa.com.br already has extension 1001: 'João' (see callcontrol destinations "
            "list --domain empresa.com.br)",
        ("--name", "joao", "--type", "queue", "--number", "5001"):
            "empresa.com.br already has a destination named 'João' (extension 1001); choose "
            "another --name",
    }.items():
        code, out, err = run(capsys, *base, *argv)
        assert (code, err) == (1, [f"callcontrol destinations add: {message}"])
    assert len(rows(env)) == 1


def test_add_default_replaces_the_previous_default(env: str, capsys: Any) -> None:
    seed(env, _real_pbx)
    base = ["add", "--domain", "empresa.com.br"]
    code, out, _ = run(capsys, *base, "--name", "Recepção", "--type", "ring_group",
                       "--number", "9000", "--default")  # fmt: skip
    assert out[0] == ("added 'Recepção' to empresa.com.br: ring group 9000, rings 30 s, then "
                      "offer_callback, the default")  # fmt: skip
    code, out, _ = run(capsys, *base, "--name", "Suporte", "--type", "queue", "--number", "5001",
                       "--default")  # fmt: skip
    assert code == 0
    assert out[0].endswith("the default (instead of Recepção)")
    assert [(r["name"], r["is_default"]) for r in rows(env)] == [
        ("Suporte", True), ("Recepção", False)]


def test_the_command_line_choices_are_the_models_values() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    add = next(a for a in sub["destinations"]._actions if a.dest == "destinations_command")
    options = {a.dest: a.choices for a in add.choices["add"]._actions}
    assert options["type"] == [str(t) for t in DestinationType if t is not DestinationType.EXTERNAL]
    assert options["fallback"] == [str(f) for f in FallbackAction]


# -- the database is not the one it should be ----------------------------------------------


def test_without_fusionpbx_tables_or_migrations(
    database_url: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with isolated_database_url(database_url, fusionpbx=None) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        code, _, err = run(capsys, "list", "--domain", "empresa.com.br")
        assert code == 1
        assert err[0].startswith("callcontrol destinations list: this database (")
        assert err[0].endswith(
            "has no FusionPBX tables (v_domains) -- fix: set DATABASE_URL to the FusionPBX "
            "database (/etc/fusionpbx/config.conf)"
        )
    with isolated_database_url(database_url, migrated=False) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        code, _, err = run(capsys, "import", "--domain", "empresa.com.br")
        assert (code, err) == (1, ["callcontrol destinations import: callcontrol's tables are "
                                   "missing -- fix: run `callcontrol migrate`"])  # fmt: skip
    with isolated_database_url(database_url) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        code, _, err = run(capsys, "list", "--domain", "empresa.com.br")
        assert (code, err) == (1, ["callcontrol destinations list: no domain 'empresa.com.br' in "
                                   "FusionPBX (v_domains); it has no domain yet"])  # fmt: skip


def test_database_down_is_one_line(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:hunter2@127.0.0.1:{port}/x")
    code, _, err = run(capsys, "list", "--domain", "empresa.com.br")
    assert code == 1 and len(err) == 1
    assert err[0].startswith("callcontrol destinations list: cannot connect to PostgreSQL at ")
    assert err[0].endswith("-- fix: check DATABASE_URL (callcontrol doctor)")
    assert "hunter2" not in err[0]
