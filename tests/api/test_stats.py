"""GET /api/stats: the figures of one domain over a period, from the calls and tickets tables as
callcontrol writes them; another domain's rows, and rows outside the period, never count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callcontrol.testing.database import add_destination
from tests.api.conftest import AUTH, add_call, add_ticket

DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo, the API's default zone
ON_THE_DAY = {"from": "2026-11-02", "to": "2026-11-02"}


async def stats(client, domain, **query):
    reply = await client.get("/api/stats", params={"domain_uuid": str(domain), **query},
                             headers=AUTH)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return reply.json()


async def call(db, domain, status=None, destination=None, outcome="bridged", at=DAY):
    await add_call(db, domain, [], started_at=at, ended_at=at + timedelta(minutes=2),
                   outcome=outcome, handoff_status=status,
                   handoff_destination=destination)  # fmt: skip


async def test_the_day_of_one_domain_in_figures(client, db, domains):
    (a, _), (b, _) = domains
    await add_destination(db, a, "Suporte", "queue", "5001")
    await add_destination(db, a, "João", "extension", "1002")
    for status in ("success", "success", "busy", "failed"):
        await call(db, a, status, "Suporte",
                   outcome="bridged" if status == "success" else "callback_requested")
    await call(db, a, "no_answer", "joão", outcome="message_taken")  # the caller's spelling
    await call(db, a, "cancelled", "João", outcome="caller_hangup")
    await call(db, a, "offline", "Financeiro", outcome="callback_requested")  # not in the directory
    await call(db, a, "ambiguous", None, outcome="ended")
    await call(db, a, outcome="voicemail")
    # never counted on the day: another day, another domain, no domain
    await call(db, a, "success", "Suporte", at=DAY - timedelta(days=10))
    await call(db, b, "success", "Suporte")
    await call(db, None, "busy", "Suporte")

    for seconds in (60, 120, 600):
        await add_ticket(db, a, created_at=DAY, status="completed",
                         completed_at=DAY + timedelta(seconds=seconds))  # fmt: skip
    by_hand = await add_ticket(db, a, created_at=DAY, status="completed")  # completed in SQL
    await db.execute("UPDATE callcontrol_callback_history SET changed_at = %s"
                     " WHERE request_uuid = %s AND to_status = 'completed'",
                     (DAY + timedelta(seconds=300), by_hand))  # fmt: skip
    await add_ticket(db, a, created_at=DAY, status="completed", kind="message",
                     completed_at=DAY + timedelta(seconds=5))  # a message is not called back
    for status in ("pending", "notified", "canceled", "expired"):
        await add_ticket(db, a, created_at=DAY + timedelta(hours=1), status=status)
    await add_ticket(db, a, created_at=DAY - timedelta(days=10))
    await add_ticket(db, b, created_at=DAY, status="completed",
                     completed_at=DAY + timedelta(days=1))  # fmt: skip

    body = await stats(client, a, **ON_THE_DAY)
    assert body["domain_uuid"] == str(a)
    assert body["period"] == {"from": "2026-11-02T00:00:00-03:00",
                              "to": "2026-11-03T00:00:00-03:00"}
    assert body["calls"] == {"total": 9, "by_outcome": {
        "bridged": 2, "callback_requested": 3, "caller_hangup": 1, "ended": 1,
        "message_taken": 1, "voicemail": 1}}  # fmt: skip
    assert body["handoffs"] == {
        "total": 7,
        "by_outcome": {"answered": 2, "busy": 1, "no_answer": 1, "offline": 1, "dnd": 0,
                       "rejected": 0, "unavailable": 0, "caller_hung_up": 1, "failed": 1},
        "answer_rate": round(2 / 7, 4),
        "not_attempted": {"ambiguous": 1},
    }
    callbacks = body["callbacks"]
    assert callbacks["total"] == 9
    assert callbacks["by_status"] == {"pending": 1, "notified": 1, "ready_to_call": 0,
                                      "in_progress": 0, "completed": 5, "expired": 1,
                                      "canceled": 1, "failed": 0, "needs_review": 0}
    assert callbacks["open"] == 2
    assert callbacks["completion_rate"] == round(5 / 7, 4)
    # 60, 120, 300, 600 s: the message's 5 s and the other domain's day are not in it
    assert callbacks["time_to_callback_seconds"] == {"count": 4, "mean": 270.0,
                                                     "median": 210.0, "p90": 510.0}
    now = await db.fetch_value("SELECT now()")
    waited = (now - DAY - timedelta(hours=1)).total_seconds()
    assert abs(callbacks["open_waiting_seconds"]["mean"] - waited) < 60
    assert callbacks["open_waiting_seconds"]["longest"] >= callbacks["open_waiting_seconds"]["mean"]

    none = dict.fromkeys(("answered", "busy", "no_answer", "offline", "dnd", "rejected",
                          "unavailable", "caller_hung_up", "failed"), 0)  # fmt: skip
    assert body["destinations"] == [
        {"destination": "Suporte", "destination_type": "queue", "destination_number": "5001",
         "handoffs": 4, "by_outcome": {**none, "answered": 2, "busy": 1, "failed": 1},
         "answer_rate": 0.5},
        {"destination": "João", "destination_type": "extension", "destination_number": "1002",
         "handoffs": 2, "by_outcome": {**none, "no_answer": 1, "caller_hung_up": 1},
         "answer_rate": 0.0},
        {"destination": "Financeiro", "destination_type": None, "destination_number": None,
         "handoffs": 1, "by_outcome": {**none, "offline": 1}, "answer_rate": 0.0},
    ]

    # no period: every day of the domain, still only its own
    everything = await stats(client, a)
    assert everything["period"] == {"from": None, "to": None}
    assert everything["calls"]["total"] == 10
    assert everything["callbacks"]["total"] == 10
    assert everything["destinations"][0]["handoffs"] == 5
    other = await stats(client, b, **ON_THE_DAY)
    assert other["calls"]["total"] == 1 and other["handoffs"]["by_outcome"]["answered"] == 1
    assert other["callbacks"]["by_status"]["completed"] == 1
    assert other["callbacks"]["time_to_callback_seconds"]["median"] == 86400.0


async def test_an_empty_period_is_zeros_and_nulls_not_an_error(client, domains):
    (a, _), _ = domains
    body = await stats(client, a, **{"from": "2020-01-01T00:00:00Z", "to": "2020-01-02"})
    assert body["calls"] == {"total": 0, "by_outcome": {}}
    assert body["handoffs"]["total"] == 0 and body["handoffs"]["answer_rate"] is None
    assert set(body["handoffs"]["by_outcome"].values()) == {0}
    assert body["callbacks"]["completion_rate"] is None
    assert body["callbacks"]["time_to_callback_seconds"] == {"count": 0, "mean": None,
                                                             "median": None, "p90": None}
    assert body["callbacks"]["open_waiting_seconds"] == {"mean": None, "longest": None}
    assert body["destinations"] == []


async def test_a_period_or_domain_that_makes_no_sense_is_a_400_naming_it(client, domains):
    (a, _), _ = domains
    for query, word in [({}, "domain_uuid"), ({"domain_uuid": "a'; drop table x"}, "domain_uuid"),
                        ({"from": "yesterday"}, "from"), ({"to": "2026-02-30"}, "to"),
                        ({"from": "2026-12-08", "to": "2026-12-07"}, "before")]:  # fmt: skip
        full = {"domain_uuid": str(a), **query} if "domain_uuid" not in query and query else query
        reply = await client.get("/api/stats", params=full, headers=AUTH)
        assert reply.status_code == 400, query
        assert word in reply.json()["reason"], (query, reply.json())
        assert set(reply.json()) == {"error", "reason"}


async def test_handoffs_over_time_per_hour_on_a_day_with_every_hour_present(client, db, domains):
    (a, _), (b, _) = domains
    await call(db, a, "success", "Suporte")  # 09:00 local
    await call(db, a, "busy", "Suporte", at=DAY + timedelta(minutes=20))
    await call(db, a, "success", "Suporte", at=DAY + timedelta(hours=3))  # 12:00 local
    await call(db, a, "ambiguous", None, at=DAY + timedelta(hours=3))  # rang nobody
    await call(db, b, "success", "Suporte", at=DAY + timedelta(hours=5))  # another domain
    series = (await stats(client, a, **ON_THE_DAY))["handoffs_over_time"]
    assert series["bucket"] == "hour"
    assert len(series["points"]) == 24
    assert series["points"][0]["at"] == "2026-11-02T00:00:00-03:00"
    by_hour = {p["at"][11:13]: p["by_outcome"] for p in series["points"]}
    assert by_hour["09"]["answered"] == 1 and by_hour["09"]["busy"] == 1
    assert by_hour["12"] == {**dict.fromkeys(by_hour["12"], 0), "answered": 1}
    assert sum(sum(p["by_outcome"].values()) for p in series["points"]) == 3


async def test_handoffs_over_time_per_day_over_a_week(client, db, domains):
    (a, _), _ = domains
    await call(db, a, "no_answer", "Suporte", at=DAY - timedelta(days=3))
    await call(db, a, "success", "Suporte")
    series = (await stats(client, a, **{"from": "2026-10-27", "to": "2026-11-02"}))
    points = series["handoffs_over_time"]["points"]
    assert series["handoffs_over_time"]["bucket"] == "day"
    assert [p["at"][:10] for p in points] == [f"2026-{d}" for d in (
        "10-27", "10-28", "10-29", "10-30", "10-31", "11-01", "11-02")]  # fmt: skip
    assert points[3]["by_outcome"]["no_answer"] == 1 and points[6]["by_outcome"]["answered"] == 1
