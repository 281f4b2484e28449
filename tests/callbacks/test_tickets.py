"""Callback tickets (issue 8): migration 005 keeps every request, moves are checked, and every
status change — ours or an admin's SQL — is a history row saying who and why."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.tickets import (
    ALLOWED,
    MoveRefused,
    TicketNotFound,
    TicketStatus,
    change_status,
    history,
    may_move,
)
from callcontrol.db import PoolOptions, open_database
from callcontrol.db.migrations import load_migrations, migrate
from callcontrol.testing.database import isolated_database_url

S = TicketStatus
CLOSED = {S.COMPLETED, S.EXPIRED, S.CANCELED, S.FAILED}


async def _ticket(db) -> str:
    saved = await save_request(db, CallbackRequest("callback", "+5511988887777",
                                                   caller_name="Maria", reason="exame"))
    return saved.request_uuid


async def test_a_new_request_is_a_pending_ticket_with_its_first_history_row(db):
    ticket = await _ticket(db)
    row = await db.fetch_one(
        "SELECT status, attempts, max_attempts, notification_count,"
        " extract(epoch FROM expires_at - created_at)::int AS lifetime"
        " FROM callcontrol_callback_requests WHERE request_uuid = %s", (ticket,))
    assert row == {"status": "pending", "attempts": 0, "max_attempts": 3,
                   "notification_count": 0, "lifetime": 86400}
    assert [(h["from_status"], h["to_status"], h["changed_by"]) for h in await history(db, ticket)
            ] == [(None, "pending", "secretary")]


async def test_moves_are_recorded_with_who_and_why(db):
    ticket = await _ticket(db)
    await change_status(db, ticket, S.NOTIFIED, by="scanner", reason="1001 is available")
    await change_status(db, ticket, S.NOTIFIED, by="scanner", reason="told again")
    await change_status(db, ticket, S.IN_PROGRESS, by="click-to-call")
    await change_status(db, ticket, S.PENDING, by="click-to-call", reason="NO_ANSWER",
                        attempt=True)
    await change_status(db, ticket, S.IN_PROGRESS, by="click-to-call")
    await change_status(db, ticket, S.COMPLETED, by="click-to-call", reason="talked 94 s")
    steps = [(h["from_status"], h["to_status"], h["changed_by"], h["reason"])
             for h in await history(db, ticket)]
    assert steps == [
        (None, "pending", "secretary", None),
        ("pending", "notified", "scanner", "1001 is available"),
        ("notified", "in_progress", "click-to-call", None),
        ("in_progress", "pending", "click-to-call", "NO_ANSWER"),
        ("pending", "in_progress", "click-to-call", None),
        ("in_progress", "completed", "click-to-call", "talked 94 s"),
    ]  # notified → notified is not a status change: counted, not a history row
    row = await db.fetch_one(
        "SELECT attempts, notification_count, completed_at IS NOT NULL AS done,"
        " last_notified_at IS NOT NULL AS told FROM callcontrol_callback_requests"
        " WHERE request_uuid = %s", (ticket,))
    assert row == {"attempts": 1, "notification_count": 2, "done": True, "told": True}


async def test_a_refused_move_changes_nothing(db):
    ticket = await _ticket(db)
    await change_status(db, ticket, S.CANCELED, by="agent:1001", reason="caller called again")
    with pytest.raises(MoveRefused, match="canceled → in_progress"):
        await change_status(db, ticket, S.IN_PROGRESS, by="click-to-call")
    assert [h["to_status"] for h in await history(db, ticket)] == ["pending", "canceled"]
    with pytest.raises(TicketNotFound):
        await change_status(db, str(uuid.uuid4()), S.NOTIFIED, by="scanner")


async def test_a_change_made_by_hand_in_sql_is_in_the_history_too(db):
    ticket = await _ticket(db)
    await db.execute("UPDATE callcontrol_callback_requests SET status = 'canceled'"
                     " WHERE request_uuid = %s", (ticket,))  # fmt: skip
    assert [(h["to_status"], h["changed_by"]) for h in await history(db, ticket)][-1] == (
        "canceled", "sql")


def test_every_open_status_can_end_and_closed_ones_only_reopen_through_review():
    for status in S:
        if status in CLOSED:
            assert ALLOWED[status] <= {S.NEEDS_REVIEW}
        else:
            assert ALLOWED[status] & (CLOSED | {S.NEEDS_REVIEW})
    assert not ALLOWED[S.COMPLETED]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.sampled_from(list(S)), max_size=8))
async def test_any_sequence_of_moves_keeps_the_history_in_step(db, moves):
    ticket = await _ticket(db)
    current = S.PENDING
    expected = ["pending"]
    for wanted in moves:
        if may_move(current, wanted):
            await change_status(db, ticket, wanted, by="test")
            if wanted is not current:
                expected.append(wanted.value)
            current = wanted
        else:
            with pytest.raises(MoveRefused):
                await change_status(db, ticket, wanted, by="test")
    rows = await history(db, ticket)
    assert [h["to_status"] for h in rows] == expected
    assert all(a["to_status"] == b["from_status"] for a, b in itertools.pairwise(rows))
    status = await db.fetch_value("SELECT status FROM callcontrol_callback_requests"
                                  " WHERE request_uuid = %s", (ticket,))  # fmt: skip
    assert status == current.value


@pytest.fixture
def before_tickets_url(database_url: str) -> Iterator[str]:
    with isolated_database_url(database_url, fusionpbx=None, migrated=False) as url:
        yield url


async def test_migration_005_keeps_every_request_already_stored(before_tickets_url):
    older = [m for m in load_migrations() if m.version < 5]
    tickets = [m for m in load_migrations() if m.version == 5]
    async with open_database(before_tickets_url, PoolOptions(inline=True)) as db:
        await migrate(db, older)
        for status, phone in (("pending", "+5511988887777"), ("called back", "+5511912345678")):
            await db.execute(
                "INSERT INTO callcontrol_callback_requests (kind, phone_number, status, reason,"
                " created_at) VALUES ('callback', %s, %s, 'exame', now() - interval '2 hours')",
                (phone, status))  # fmt: skip
        assert await migrate(db, tickets) == [5]
        rows = await db.fetch_all(
            "SELECT phone_number, status, reason, expires_at - created_at AS lifetime"
            " FROM callcontrol_callback_requests ORDER BY phone_number")
        assert [(r["phone_number"], r["status"], r["reason"], r["lifetime"].total_seconds())
                for r in rows] == [("+5511912345678", "needs_review", "exame", 86400.0),
                                   ("+5511988887777", "pending", "exame", 86400.0)]
        made = await db.fetch_all("SELECT to_status, changed_by FROM callcontrol_callback_history"
                                  " ORDER BY to_status")  # fmt: skip
        assert made == [{"to_status": "needs_review", "changed_by": "migration"},
                        {"to_status": "pending", "changed_by": "migration"}]
        # the file is idempotent on its own: run again, nothing doubles
        await db.execute(tickets[0].sql)
        assert await db.fetch_value("SELECT count(*) FROM callcontrol_callback_history") == 2
