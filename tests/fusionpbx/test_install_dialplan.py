"""``callcontrol fusionpbx install-dialplan | uninstall-dialplan`` through the command's entry
point, on the stock FusionPBX schemas (5.5 boolean flags, 5.4 text flags) of the real
PostgreSQL: the rows written, what the admin is told, idempotence, uninstall, dry runs."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

import psycopg
import pytest
import trio
from psycopg.rows import dict_row

from callcontrol.cli import main
from callcontrol.config import load_settings
from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.doctor import check_fusionpbx
from callcontrol.fusionpbx.dialplan import APP_UUID
from callcontrol.testing.database import (
    EVERY_PBX,
    StockPBX,
    add_default_setting,
    add_dialplan,
    add_domain,
    add_extension,
    add_ring_group,
    add_secretary,
    add_voice_secretary_app_row,
)

T = TypeVar("T")
EVERY = pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX[:2], ids=str)
DOMAIN = "empresa.com.br"


def seed(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_database(url, PoolOptions(min_size=1, max_size=1, inline=True)) as db:
            return await work(db)

    return trio.run(run)


def query(url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def dialplans(url: str) -> list[dict[str, Any]]:
    return query(url, "SELECT * FROM v_dialplans ORDER BY dialplan_context, dialplan_name")


def details(url: str, dialplan_uuid: uuid.UUID | None = None) -> list[dict[str, Any]]:
    return query(
        url,
        "SELECT * FROM v_dialplan_details WHERE %(d)s::uuid IS NULL OR dialplan_uuid = %(d)s"
        " ORDER BY dialplan_uuid, dialplan_detail_group, dialplan_detail_order",
        {"d": dialplan_uuid},
    )


def run(capsys: Any, *argv: str) -> tuple[int, list[str], list[str]]:
    capsys.readouterr()  # what seeding the rows logged
    code = main(["fusionpbx", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("CALLCONTROL_CONFIG", raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCONTROL_ESL_LISTEN", "127.0.0.1:8022")
    return db_url


async def _pbx(db: Database) -> dict[str, uuid.UUID]:
    domain = await add_domain(db, DOMAIN)
    other = await add_domain(db, "outra.com.br")
    await add_ring_group(db, domain, "9001", "Antigo", enabled=False)
    await add_ring_group(db, domain, "9000", "Recepção")
    await add_ring_group(db, domain, "9002", "Vendas")
    await add_extension(db, domain, "1001", name="João Silva")
    await add_ring_group(db, other, "7000", "Da outra")
    return {"domain": domain, "other": other}


def _flag(schema: StockPBX, value: bool) -> Any:
    """What a v_dialplans flag column holds: boolean on 5.5, the text 'true'/'false' on 5.4."""
    return ("true" if value else "false") if schema.text_flags else value


@EVERY
def test_install_writes_the_entry_as_the_dialplan_manager_stores_it(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    ids = seed(env, _pbx)

    code, out, err = run(capsys, "install-dialplan", "--domain", "EMPRESA.com.br")

    assert (code, err) == (0, [])
    assert out == [
        f"installed callcontrol's dialplan entry in {DOMAIN}: calls to 8000 go to callcontrol "
        "at 127.0.0.1:8022; when it is not there, to ring group 9000 'Recepção'",
        f"  Dialplan > Dialplan Manager shows it as callcontrol_ai_secretary (context {DOMAIN}, "
        "order 300); Dialplan > Destinations can send an inbound number to it",
        f"FusionPBX serves {DOMAIN}'s dialplan from its cache until that is cleared; to use the "
        "change now, on the PBX (as root):",
        f"  rm -f /var/cache/fusionpbx/dialplan.{DOMAIN}",
        "  fs_cli -x reloadxml",
        "  (or in FusionPBX: Status > SIP Status > Flush Cache, then Reload XML)",
    ]
    [row] = dialplans(env)
    dialplan_uuid = row["dialplan_uuid"]
    assert row["domain_uuid"] == ids["domain"]
    assert row["app_uuid"] == APP_UUID
    assert (row["dialplan_context"], row["dialplan_name"], row["dialplan_number"]) == (
        DOMAIN, "callcontrol_ai_secretary", "8000")
    assert row["dialplan_order"] == 300
    assert row["hostname"] is None
    assert row["dialplan_enabled"] == _flag(fusionpbx_schema, True)
    assert row["dialplan_continue"] == _flag(fusionpbx_schema, False)
    assert row["dialplan_destination"] == _flag(fusionpbx_schema, True)
    assert row["dialplan_description"] == "AI voice secretary (callcontrol)"
    assert row["insert_date"] is not None
    assert row["dialplan_xml"] == (
        f'<extension name="callcontrol_ai_secretary" continue="false" uuid="{dialplan_uuid}">\n'
        '\t<condition field="destination_number" expression="^8000$">\n'
        '\t\t<action application="socket" data="127.0.0.1:8022 async full"/>\n'
        f'\t\t<action application="transfer" data="9000 XML {DOMAIN}"/>\n'
        '\t\t<action application="hangup" data="NORMAL_TEMPORARY_FAILURE"/>\n'
        "\t</condition>\n"
        "</extension>\n"
    )
    rows = details(env)
    assert [(d["dialplan_detail_tag"], d["dialplan_detail_type"], d["dialplan_detail_data"],
             d["dialplan_detail_group"], d["dialplan_detail_order"]) for d in rows] == [
        ("condition", "destination_number", "^8000$", 0, 10),
        ("action", "socket", "127.0.0.1:8022 async full", 0, 20),
        ("action", "transfer", f"9000 XML {DOMAIN}", 0, 30),
        ("action", "hangup", "NORMAL_TEMPORARY_FAILURE", 0, 40),
    ]  # fmt: skip
    assert all(d["dialplan_uuid"] == dialplan_uuid and d["domain_uuid"] == ids["domain"]
               and d["dialplan_detail_enabled"] is True for d in rows)  # fmt: skip
    assert len({d["dialplan_detail_uuid"] for d in rows}) == 4

    # FusionPBX's own dialplan query (xml_handler dialplan.lua) finds it for the domain
    served = query(env, "SELECT dialplan_xml FROM v_dialplans WHERE dialplan_context IN "
                   "(%s, '${domain_name}', 'global') AND hostname IS NULL AND "
                   "dialplan_enabled::text = 'true' ORDER BY dialplan_order",
                   (DOMAIN,))  # fmt: skip
    assert [r["dialplan_xml"] for r in served] == [row["dialplan_xml"]]
    # and callcontrol doctor sees a socket entry pointing at CALLCONTROL_ESL_LISTEN
    found = check_fusionpbx(load_settings({"DATABASE_URL": env,
                                           "CALLCONTROL_ESL_LISTEN": "127.0.0.1:8022"}))
    [dialplan_check] = [c for c in found if c.name == "dialplan"]
    assert dialplan_check.status == "OK", dialplan_check.render()


@EVERY
def test_a_second_install_changes_nothing_and_uninstall_removes_exactly_it(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    ids = seed(env, _pbx)
    # what the domain already had, and another domain's: never touched
    mine = seed(env, lambda db: add_dialplan(db, ids["domain"], "ring_group_9000", "9000",
                                             "127.0.0.1:1 async full"))  # fmt: skip
    seed(env, lambda db: add_dialplan(db, ids["other"], "callcontrol_ai_secretary", "8000",
                                      "127.0.0.1:8022 async full"))  # fmt: skip
    before = (dialplans(env), details(env))
    assert run(capsys, "install-dialplan", "--domain", DOMAIN)[0] == 0
    installed = (dialplans(env), details(env))

    code, out, err = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert (code, err) == (0, [])
    assert out == [
        f"{DOMAIN}: callcontrol's dialplan entry is already installed (calls to 8000 go to "
        "callcontrol at 127.0.0.1:8022; when it is not there, to ring group 9000 'Recepção'); "
        "nothing changed"
    ]
    assert (dialplans(env), details(env)) == installed

    code, out, err = run(capsys, "uninstall-dialplan", "--domain", DOMAIN, "--dry-run")
    assert (code, err) == (0, [])
    assert out == [f"dry run, nothing removed: would remove 1 v_dialplans row(s) "
                   "(callcontrol_ai_secretary, number 8000) and 4 v_dialplan_details row(s) "
                   f"from {DOMAIN}"]  # fmt: skip
    assert (dialplans(env), details(env)) == installed

    code, out, err = run(capsys, "uninstall-dialplan", "--domain", DOMAIN)
    assert (code, err) == (0, [])
    assert out[0] == (f"removed callcontrol's dialplan entry from {DOMAIN}: 1 v_dialplans "
                      "row(s) (callcontrol_ai_secretary, number 8000) and 4 v_dialplan_details "
                      "row(s)")  # fmt: skip
    assert f"  rm -f /var/cache/fusionpbx/dialplan.{DOMAIN}" in out
    assert (dialplans(env), details(env)) == before
    assert any(r["dialplan_uuid"] == mine for r in dialplans(env))

    code, out, _ = run(capsys, "uninstall-dialplan", "--domain", DOMAIN)
    assert (code, out) == (0, [f"{DOMAIN}: no dialplan entry installed by callcontrol; "
                               "nothing removed"])  # fmt: skip


@EVERY
def test_dry_run_prints_the_rows_and_writes_nothing(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    seed(env, _pbx)

    code, out, err = run(capsys, "install-dialplan", "--domain", DOMAIN, "--dry-run")

    assert (code, err) == (0, [])
    assert dialplans(env) == [] and details(env) == []
    assert out[0] == f"dry run, nothing written: would add callcontrol's dialplan entry in {DOMAIN}"
    assert out[1] == "v_dialplans:"
    assert f"  dialplan_context = {DOMAIN}" in out
    assert "  dialplan_order = 300" in out
    flag = "'true' (text)" if fusionpbx_schema.text_flags else "true (boolean)"
    assert f"  dialplan_enabled = {flag}" in out
    assert "  hostname = NULL" in out
    assert f"  app_uuid = {APP_UUID}" in out
    assert "  action  socket  127.0.0.1:8022 async full  0  20" in out
    assert '  \t\t<action application="socket" data="127.0.0.1:8022 async full"/>' in out
    assert not any("rm -f" in line for line in out)

    # after an install, a dry run with other settings says what would change
    assert run(capsys, "install-dialplan", "--domain", DOMAIN)[0] == 0
    installed = (dialplans(env), details(env))
    code, out, _ = run(capsys, "install-dialplan", "--domain", DOMAIN, "--number", "8001",
                       "--dry-run")  # fmt: skip
    assert code == 0
    assert out[:2] == [
        f"dry run, nothing written: would update callcontrol's dialplan entry in {DOMAIN}",
        "  changed: dialplan_number '8000' -> '8001', dialplan_xml, v_dialplan_details",
    ]
    assert (dialplans(env), details(env)) == installed


def test_other_settings_update_the_same_entry(env: str, capsys: Any) -> None:
    ids = seed(env, _pbx)
    secretary = seed(env, lambda db: add_secretary(db, ids["domain"]))
    assert run(capsys, "install-dialplan", "--domain", DOMAIN)[0] == 0
    [first] = dialplans(env)

    code, out, err = run(capsys, "install-dialplan", "--domain", DOMAIN, "--number", "8100",
                         "--fallback", "*991001", "--secretary", str(secretary))  # fmt: skip

    assert (code, err) == (0, [])
    assert out[0] == (f"updated callcontrol's dialplan entry in {DOMAIN}: calls to 8100 go to "
                      "callcontrol at 127.0.0.1:8022; when it is not there, to "
                      "*991001")  # fmt: skip
    assert out[1] == ("  changed: dialplan_number '8000' -> '8100', dialplan_xml, "
                      "v_dialplan_details")  # fmt: skip
    [row] = dialplans(env)
    assert row["dialplan_uuid"] == first["dialplan_uuid"]
    assert row["insert_date"] == first["insert_date"] and row["update_date"] is not None
    assert [(d["dialplan_detail_type"], d["dialplan_detail_data"]) for d in details(env)] == [
        ("destination_number", "^8100$"),
        ("set", f"voice_secretary_uuid={secretary}"),
        ("socket", "127.0.0.1:8022 async full"),
        ("transfer", f"*991001 XML {DOMAIN}"),
        ("hangup", "NORMAL_TEMPORARY_FAILURE"),
    ]
    assert f'<action application="set" data="voice_secretary_uuid={secretary}"/>' in (
        row["dialplan_xml"])
    assert row["domain_uuid"] == ids["domain"]


def test_the_xml_is_what_fusionpbx_renders_from_the_details(env: str, capsys: Any) -> None:
    """Saving the entry in the Dialplan Manager renders dialplan_xml again from the details
    rows: one <condition> per group, its actions in order, data as stored."""
    ids = seed(env, _pbx)
    secretary = seed(env, lambda db: add_secretary(db, ids["domain"]))
    assert run(capsys, "install-dialplan", "--domain", DOMAIN, "--secretary",
               str(secretary))[0] == 0  # fmt: skip
    [row] = dialplans(env)
    extension = ET.fromstring(row["dialplan_xml"])
    assert extension.attrib == {"name": row["dialplan_name"], "continue": "false",
                                "uuid": str(row["dialplan_uuid"])}  # fmt: skip
    [condition] = list(extension)
    rendered = [("condition", condition.get("field"), condition.get("expression"))] + [
        (a.tag, a.get("application"), a.get("data")) for a in condition]
    assert rendered == [(d["dialplan_detail_tag"], d["dialplan_detail_type"],
                         d["dialplan_detail_data"]) for d in details(env)]  # fmt: skip


def test_it_matches_the_shipped_dialplan_manager_file(env: str, capsys: Any) -> None:
    """dialplan/fusionpbx/ai_secretary.dialplan-manager.xml is the manual way: same name, the
    same actions in the same order."""
    ids = seed(env, _pbx)
    secretary = seed(env, lambda db: add_secretary(db, ids["domain"]))
    assert run(capsys, "install-dialplan", "--domain", DOMAIN, "--secretary",
               str(secretary))[0] == 0  # fmt: skip
    shipped_text = (resources.files("callcontrol") / "dialplan" / "fusionpbx"
                    / "ai_secretary.dialplan-manager.xml").read_text(encoding="utf-8")  # fmt: skip
    shipped = ET.fromstring(shipped_text)
    ours = ET.fromstring(dialplans(env)[0]["dialplan_xml"])
    assert (shipped.get("name"), shipped.get("continue")) == (ours.get("name"), "false")
    [shipped_condition], [our_condition] = list(shipped), list(ours)
    assert shipped_condition.attrib == our_condition.attrib
    assert [a.get("application") for a in shipped_condition] == [
        a.get("application") for a in our_condition]
    assert shipped_condition[-1].attrib == our_condition[-1].attrib  # the hangup
    assert shipped_condition[1].get("data") == "{{CALLCONTROL_ESL_LISTEN}} async full"
    assert "install-dialplan" in shipped_text
    assert "Order: 300" in shipped_text


def test_the_fallback_is_the_first_extension_without_ring_groups(env: str, capsys: Any) -> None:
    async def pbx(db: Database) -> None:
        domain = await add_domain(db, DOMAIN)
        await add_extension(db, domain, "1002", name="Maria")
        await add_extension(db, domain, "1001", name="Off", enabled=False)
        await add_extension(db, domain, "1003")

    seed(env, pbx)
    code, out, _ = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert code == 0
    assert out[0].endswith("when it is not there, to extension 1002 'Maria'")
    assert [d["dialplan_detail_data"] for d in details(env)][2] == f"1002 XML {DOMAIN}"


def test_refused_without_anywhere_to_fall_back_to(env: str, capsys: Any) -> None:
    seed(env, lambda db: add_domain(db, DOMAIN))
    code, out, err = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert (code, out) == (1, [])
    assert err == [
        f"callcontrol fusionpbx install-dialplan: {DOMAIN} has no enabled ring group or "
        "extension for calls to fall back to when callcontrol is not there -- fix: create one in "
        "FusionPBX, or name it with --fallback NUMBER"
    ]
    assert dialplans(env) == []


@pytest.mark.parametrize(("argv", "problem"), [
    (["--number", "80 00"], "--number '80 00': digits only"),
    (["--number", "^8000$|.*"], "--number '^8000$|.*': digits only"),
    (["--fallback", '9000" data="x'], "--fallback '9000\" data=\"x': one word"),
    (["--fallback", "9000 XML other"], "--fallback '9000 XML other': one word"),
    (["--secretary", "nope"], "--secretary 'nope' is not a UUID"),
    (["--secretary", str(uuid.UUID(int=0))], "--secretary: the nil UUID means the domain's own "
     "secretary -- leave --secretary out for that"),
    (["--secretary", "5e0c4c8e-0000-4000-8000-000000000001"], "--secretary "
     "5e0c4c8e-0000-4000-8000-000000000001: empresa.com.br has no such secretary "
     "(callcontrol_secretaries, or the voice-secretary app's v_voice_secretaries) -- fix: leave "
     "--secretary out for the domain's own secretary, or give the UUID of one of its "
     "secretaries"),
    (["--domain", "nao.existe"], "no domain 'nao.existe' in FusionPBX (v_domains); its "
     "domains: empresa.com.br, outra.com.br"),
])  # fmt: skip
def test_odd_values_are_refused_and_nothing_is_written(
    env: str, capsys: Any, argv: list[str], problem: str
) -> None:
    seed(env, _pbx)
    code, out, err = run(capsys, "install-dialplan", "--domain", DOMAIN, *argv)
    assert (code, out) == (1, [])
    [message] = err
    assert message.startswith(f"callcontrol fusionpbx install-dialplan: {problem}"), message
    assert dialplans(env) == [] and details(env) == []


def test_odd_values_from_the_database_and_the_config_are_refused(
    env: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def pbx(db: Database) -> None:
        odd = await add_domain(db, 'odd"domain.com')
        await add_ring_group(db, odd, "9000", "R")
        spaced = await add_domain(db, "spaced.com.br")
        await add_ring_group(db, spaced, "90 00", "Recepção")
        await add_ring_group(db, await add_domain(db, DOMAIN), "9000", "Recepção")

    seed(env, pbx)
    code, _, err = run(capsys, "install-dialplan", "--domain", 'odd"domain.com')
    assert code == 1
    assert err == ["callcontrol fusionpbx install-dialplan: the domain name 'odd\"domain.com' is "
                   "not a host name, so it cannot name a dialplan context safely -- fix: rename "
                   "the domain in FusionPBX (Advanced > Domains)"]  # fmt: skip
    code, _, err = run(capsys, "install-dialplan", "--domain", "spaced.com.br")
    assert code == 1
    assert err == ["callcontrol fusionpbx install-dialplan: ring group 90 00 'Recepção' of "
                   "spaced.com.br has a number a dialplan cannot transfer to -- fix: correct it "
                   "in FusionPBX, or choose another with --fallback NUMBER"]  # fmt: skip
    monkeypatch.setenv("CALLCONTROL_ESL_LISTEN", 'bad"host:8022')
    code, _, err = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert code == 1
    assert err[0].startswith("callcontrol fusionpbx install-dialplan: CALLCONTROL_ESL_LISTEN: "
                             "the host 'bad\"host' cannot go into the dialplan")  # fmt: skip
    assert dialplans(env) == []


def test_a_listen_address_on_every_interface_dials_loopback(
    env: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(env, _pbx)
    monkeypatch.setenv("CALLCONTROL_ESL_LISTEN", "0.0.0.0:9022")
    code, out, _ = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert code == 0
    assert "127.0.0.1:9022 async full" in dialplans(env)[0]["dialplan_xml"]
    assert out[-1] == ("note: CALLCONTROL_ESL_LISTEN=0.0.0.0:9022 listens on every address; the "
                       "dialplan dials 127.0.0.1:9022 (change it if FreeSWITCH runs on another "
                       "machine)")  # fmt: skip


def test_an_entry_added_by_hand_is_not_duplicated(env: str, capsys: Any) -> None:
    ids = seed(env, _pbx)
    seed(env, lambda db: add_dialplan(db, ids["domain"], "callcontrol_ai_secretary", "8000",
                                      "127.0.0.1:8022 async full"))  # fmt: skip
    before = (dialplans(env), details(env))
    code, _, err = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert code == 1
    assert err == [f"callcontrol fusionpbx install-dialplan: {DOMAIN} already has a "
                   "'callcontrol_ai_secretary' entry added by hand (number 8000) -- fix: delete "
                   "it in Dialplan > Dialplan Manager, then run this again (or keep yours and "
                   "skip this command)"]  # fmt: skip
    assert (dialplans(env), details(env)) == before


def test_another_entry_for_the_number_is_pointed_out(env: str, capsys: Any) -> None:
    ids = seed(env, _pbx)
    seed(env, lambda db: add_dialplan(db, ids["domain"], "old_ivr", "8000", "127.0.0.1:1 async"))
    code, out, _ = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert code == 0
    assert (f"note: {DOMAIN} has other dialplan entries for 8000: 'old_ivr' (order 300); the "
            "lowest order answers first") in out


def test_the_reload_steps_follow_fusionpbx_cache_settings(env: str, capsys: Any) -> None:
    seed(env, _pbx)
    seed(env, lambda db: add_default_setting(db, "cache", "method", "memcache"))
    code, out, _ = run(capsys, "install-dialplan", "--domain", DOMAIN)
    assert code == 0
    assert f"  fs_cli -x 'memcache delete dialplan:{DOMAIN}'" in out
    assert not any("rm -f" in line for line in out)

    seed(env, lambda db: add_default_setting(db, "cache", "method", "file"))
    seed(env, lambda db: add_default_setting(db, "cache", "location", "/srv/cache/"))
    code, out, _ = run(capsys, "uninstall-dialplan", "--domain", DOMAIN)
    assert code == 0
    assert f"  rm -f /srv/cache/dialplan.{DOMAIN}" in out


def test_a_database_without_fusionpbx(database_url: str, capsys: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from callcontrol.testing.database import isolated_database_url

    with isolated_database_url(database_url, fusionpbx=None) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        code, _, err = run(capsys, "uninstall-dialplan", "--domain", DOMAIN)
    assert code == 1
    assert err == ["callcontrol fusionpbx uninstall-dialplan: this database has no FusionPBX "
                   "dialplan tables (v_domains, v_dialplans, v_dialplan_details) -- fix: set "
                   "DATABASE_URL to the FusionPBX database (/etc/fusionpbx/config.conf)"]


def test_a_database_user_that_may_not_write_the_dialplan(
    env: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FusionPBX's tables belong to its own user; another one is told so, not shown a
    traceback, and nothing is written."""
    seed(env, _pbx)
    role = f"cctest_reader_{uuid.uuid4().hex[:8]}"
    schema = query(env, "SELECT current_schema() AS s")[0]["s"]
    with psycopg.connect(env, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    try:
        # libpq's options: the same schema, as that role
        reader = env.replace("-csearch_path%3D", f"-crole%3D{role}%20-csearch_path%3D")
        assert reader != env
        monkeypatch.setenv("DATABASE_URL", reader)
        code, out, err = run(capsys, "install-dialplan", "--domain", DOMAIN)
    finally:
        with psycopg.connect(env, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    assert (code, out) == (1, [])
    [message] = err
    assert message.startswith("callcontrol fusionpbx install-dialplan: DATABASE_URL's user may "
                              "not change FusionPBX's dialplan (permission denied for table ")
    assert message.endswith("nothing was written -- fix: run it with FusionPBX's own database "
                            "user (/etc/fusionpbx/config.conf), or grant SELECT, INSERT, UPDATE, "
                            "DELETE on v_dialplans and v_dialplan_details")
    assert dialplans(env) == []


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
def test_a_secretary_of_the_domain_is_accepted_from_either_table(
    env: str, capsys: Any, fusionpbx_schema: StockPBX
) -> None:
    """add_secretary writes callcontrol's row, and the other app's too where it is installed;
    a secretary of another domain is refused."""
    ids = seed(env, _pbx)
    theirs = seed(env, lambda db: add_secretary(db, ids["other"]))
    code, _, err = run(capsys, "install-dialplan", "--domain", DOMAIN, "--secretary", str(theirs))
    assert code == 1 and "has no such secretary" in err[0]
    ours = seed(env, lambda db: add_secretary(db, ids["domain"]))
    code, out, _ = run(capsys, "install-dialplan", "--domain", DOMAIN, "--secretary", str(ours))
    assert code == 0, out
    assert f"voice_secretary_uuid={ours}" in dialplans(env)[0]["dialplan_xml"]
    if fusionpbx_schema.secretary_app:  # only the other app knows this one
        app_only = uuid.uuid4()
        seed(env, lambda db: add_voice_secretary_app_row(db, ids["domain"], app_only))
        code, out, _ = run(capsys, "install-dialplan", "--domain", DOMAIN, "--secretary",
                           str(app_only))  # fmt: skip
        assert code == 0, out
        assert f"voice_secretary_uuid={app_only}" in dialplans(env)[0]["dialplan_xml"]
