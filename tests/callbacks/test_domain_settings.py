"""Callback settings per domain (issue 8): a domain's own value in callcontrol's table, else the
environment's; read by the scanner and the capture, viewed and set with the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import trio
from psycopg.rows import dict_row

from callcontrol.callbacks.availability import Snapshot
from callcontrol.callbacks.capture import callback_time
from callcontrol.callbacks.domain_settings import for_domain, parse_assignment, store
from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.scanner import scan_once
from callcontrol.cli import main
from callcontrol.config import load_settings
from callcontrol.db import open_database
from callcontrol.testing.database import add_domain, add_extension

T0 = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
STRICT, LAX = "strict.example.com", "lax.example.com"
SETTINGS = load_settings({})


async def _ticket(db, domain, times: int) -> str:
    saved = await save_request(db, CallbackRequest(
        "callback", "+5511988887777", reason="retorno", domain_uuid=str(domain)))
    await db.execute("UPDATE callcontrol_callback_requests SET extension = '1001',"
                     " notification_count = %s, last_notified_at = %s WHERE request_uuid = %s",
                     (times, T0 - timedelta(hours=1), saved.request_uuid))  # fmt: skip
    return saved.request_uuid


async def _status(db, ticket: str) -> str:
    return await db.fetch_value("SELECT status FROM callcontrol_callback_requests"
                                " WHERE request_uuid = %s", (ticket,))  # fmt: skip


async def test_a_domain_with_its_own_limit_goes_to_review_at_it(db):
    strict, lax = await add_domain(db, STRICT), await add_domain(db, LAX)
    await store(db, str(strict), "CALLBACK_MAX_NOTIFICATIONS", 2)
    at_two_strict, at_two_lax = await _ticket(db, strict, 2), await _ticket(db, lax, 2)
    at_five_lax = await _ticket(db, lax, SETTINGS.callback_max_notifications)

    async def nobody() -> Snapshot:
        return Snapshot.from_rows([], [])

    result = await scan_once(db, nobody, SETTINGS, T0)
    assert set(result.to_review) == {at_two_strict, at_five_lax}
    assert await _status(db, at_two_strict) == "needs_review"
    assert await _status(db, at_two_lax) == "pending"  # the environment's 5 applies to it


async def test_a_domain_min_interval_holds_its_agent_back(db):
    strict, lax = await add_domain(db, STRICT), await add_domain(db, LAX)
    for domain in (strict, lax):
        await add_extension(db, domain, "1001")
    await store(db, str(strict), "CALLBACK_MIN_INTERVAL_MINUTES", 120)
    held, told = await _ticket(db, strict, 1), await _ticket(db, lax, 1)

    async def everyone() -> Snapshot:
        return Snapshot.from_rows([{"reg_user": "1001", "realm": d} for d in (STRICT, LAX)], [])

    result = await scan_once(db, everyone, SETTINGS, T0)  # last told an hour ago
    assert [t.request_uuid for t in result.notified] == [told]
    assert await _status(db, held) == "pending"


async def test_capture_expires_after_the_domain_hours_or_the_environment(db):
    own, plain = await add_domain(db, STRICT), await add_domain(db, LAX)
    await store(db, str(own), "CALLBACK_EXPIRATION_HOURS", 72)
    now = datetime(2026, 12, 7, 10, 0, tzinfo=SETTINGS.tz)
    for domain, hours in ((own, 72), (plain, 24), (None, 24)):
        settings = await for_domain(db, SETTINGS, domain)
        when = callback_time("o quanto antes", now, settings, None)
        assert when.expires_at == now + timedelta(hours=hours)
    await store(db, str(own), "CALLBACK_EXPIRATION_HOURS", None)  # back to the environment's
    assert (await for_domain(db, SETTINGS, own)).callback_expiration_hours == 24


def test_assignments_are_validated():
    assert parse_assignment("callback_max_notifications=3") == ("CALLBACK_MAX_NOTIFICATIONS", 3)
    assert parse_assignment("CALLBACK_EXPIRATION_HOURS=default") == (
        "CALLBACK_EXPIRATION_HOURS", None)
    # no retry at all is a choice a domain may make; no wait between two is not
    assert parse_assignment("CALLBACK_RETRY_ATTEMPTS=0") == ("CALLBACK_RETRY_ATTEMPTS", 0)
    for bad in ("CALLBACK_CHECK_INTERVAL_MS=5", "CALLBACK_MAX_NOTIFICATIONS=0",
                "CALLBACK_MAX_NOTIFICATIONS=two", "CALLBACK_MAX_NOTIFICATIONS",
                "CALLBACK_RETRY_ATTEMPTS=21", "CALLBACK_RETRY_DELAY_SECONDS=0"):
        with pytest.raises(ValueError, match="CALLBACK"):
            parse_assignment(bad)


def _cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["callback", "settings", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_shows_and_sets_a_domain_settings(db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CALLBACK_EXPIRATION_HOURS", "48")

    async def seed() -> None:
        async with open_database(db_url) as db:
            await add_domain(db, STRICT)

    trio.run(seed)
    code, out, _ = _cli(capsys, "--domain", STRICT)
    assert code == 0
    assert "CALLBACK_EXPIRATION_HOURS=48  (the environment's default)" in out
    assert "CALLBACK_MAX_NOTIFICATIONS=5  (the environment's default)" in out
    code, out, _ = _cli(capsys, "--domain", STRICT.upper(), "--set",
                        "CALLBACK_MAX_NOTIFICATIONS=2", "--set", "CALLBACK_EXPIRATION_HOURS=6")
    assert code == 0
    assert "CALLBACK_MAX_NOTIFICATIONS=2  (this domain's own)" in out
    assert "CALLBACK_EXPIRATION_HOURS=6  (this domain's own)" in out
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT expiration_hours, max_notifications, min_interval_minutes"
                           " FROM callcontrol_callback_settings").fetchone()  # fmt: skip
    assert row == {"expiration_hours": 6, "max_notifications": 2, "min_interval_minutes": None}
    code, _, err = _cli(capsys, "--domain", STRICT, "--set", "CALLBACK_MAX=1")
    assert code == 1 and "KEY one of CALLBACK_EXPIRATION_HOURS" in err
    code, _, err = _cli(capsys, "--domain", "nowhere.example.com")
    assert code == 1 and "no domain 'nowhere.example.com' in FusionPBX" in err


def test_the_cli_with_the_database_down_is_one_line(monkeypatch, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:hunter2@127.0.0.1:{port}/x")
    code, _, err = _cli(capsys, "--domain", STRICT)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 1 and "hunter2" not in lines[0]
    assert lines[0].startswith("callcontrol callback settings: cannot connect to PostgreSQL")
    assert lines[0].endswith("-- fix: check DATABASE_URL (callcontrol doctor)")
