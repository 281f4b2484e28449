"""GET /api/callbacks (filters, pagination, newest first, one domain), GET /api/callbacks/{id}
(transcript by role, history, recording), POST snooze / cancel through the ticket's allowed moves
(history written; an illegal move is a 409 with the reason)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.conftest import AUTH, T0, add_call, add_ticket


async def listing(client, domain, **params):
    reply = await client.get("/api/callbacks", params={"domain_uuid": str(domain), **params},
                             headers=AUTH)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_newest_first_filtered_and_scoped_to_the_domain(client, db, domains):
    (a, _), (b, _) = domains
    old = await add_ticket(db, a, created_at=T0 - timedelta(days=2), extension="1002",
                           destination_name="Financeiro")  # fmt: skip
    mid = await add_ticket(db, a, created_at=T0 - timedelta(days=1), status="notified")
    new = await add_ticket(db, a, created_at=T0, status="completed",
                           completed_at=T0 + timedelta(minutes=7))  # fmt: skip
    other = await add_ticket(db, b, created_at=T0)
    everything = await listing(client, a)
    assert [i["id"] for i in everything["items"]] == [new, mid, old]
    assert everything["total"] == 3
    assert other not in {i["id"] for i in everything["items"]}
    assert [i["id"] for i in (await listing(client, b))["items"]] == [other]
    first = everything["items"][0]
    assert first["waited_seconds"] == 7 * 60
    assert first["phone_number"] == "+5511988887777" and first["extension"] == "1001"
    assert [i["id"] for i in (await listing(client, a, status="pending,notified"))["items"]] \
        == [mid, old]  # fmt: skip
    assert [i["id"] for i in (await listing(client, a, extension="1002"))["items"]] == [old]
    assert [i["id"] for i in (await listing(client, a, destination="financeiro"))["items"]] \
        == [old]  # fmt: skip
    day = (T0 - timedelta(days=1)).astimezone().date().isoformat()
    period = await listing(client, a, **{"from": (T0 - timedelta(days=1, hours=1)).isoformat(),
                                         "to": (T0 - timedelta(hours=1)).isoformat()})
    assert [i["id"] for i in period["items"]] == [mid]
    assert day  # a bare date is accepted for both ends
    assert (await listing(client, a, **{"from": "2000-01-01", "to": "2100-01-01"}))["total"] == 3


async def test_pagination_by_offset_and_by_cursor(client, db, domains):
    (a, _), _ = domains
    made = [await add_ticket(db, a, created_at=T0 + timedelta(minutes=n)) for n in range(5)]
    newest_first = list(reversed(made))
    page = await listing(client, a, limit=2)
    seen = [i["id"] for i in page["items"]]
    while page["next_cursor"]:
        page = await listing(client, a, limit=2, cursor=page["next_cursor"])
        seen += [i["id"] for i in page["items"]]
    assert seen == newest_first
    by_offset = await listing(client, a, limit=2, offset=2)
    assert [i["id"] for i in by_offset["items"]] == newest_first[2:4]
    assert by_offset["total"] == 5
    both = await client.get("/api/callbacks", headers=AUTH, params={
        "domain_uuid": str(a), "offset": 1, "cursor": page["next_cursor"] or "x"})
    assert both.status_code == 400


async def test_filters_that_make_no_sense_are_400_with_the_reason(client, domains):
    (a, _), _ = domains
    for params, word in [({}, "domain_uuid"), ({"status": "sleeping"}, "status"),
                         ({"kind": "fax"}, "kind"), ({"limit": "0"}, "limit"),
                         ({"limit": "201"}, "limit"), ({"offset": "-1"}, "offset"),
                         ({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
                         ({"from": "2026-12-08", "to": "2026-12-07"}, "before"),
                         ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
                         ({"extension": "1001'--"}, "extension"),
                         ({"destination": "a\x00b"}, "destination")]:  # fmt: skip
        query = {"domain_uuid": str(a), **params} if params else {}
        reply = await client.get("/api/callbacks", params=query, headers=AUTH)
        assert reply.status_code == 400, params
        assert word in reply.json()["reason"], (params, reply.json())


async def test_one_ticket_with_transcript_history_recording_and_call(client, db, domains):
    (a, _), (b, _) = domains
    call = await add_call(db, a, [
        {"t": 0.0, "role": "assistant", "text": "Clínica Exemplo, bom dia!"},
        {"t": 2.4, "role": "caller", "text": "Queria falar com o suporte."},
        {"t": 5.0, "role": "tool", "text": "schedule_callback", "data": {"arguments": "{}"}},
    ], outcome="callback_requested", hangup_cause="NORMAL_CLEARING")  # fmt: skip
    ticket = await add_ticket(db, a, call_uuid=call, recording_path="/var/rec/x.wav")
    await client.post(f"/api/callbacks/{ticket}/cancel", params={"domain_uuid": str(a)},
                      json={"reason": "resolvido por e-mail"}, headers=AUTH)  # fmt: skip
    reply = await client.get(f"/api/callbacks/{ticket}", params={"domain_uuid": str(a)},
                             headers=AUTH)  # fmt: skip
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "canceled"
    assert [(line["role"], line["text"]) for line in body["transcript"]] == [
        ("assistant", "Clínica Exemplo, bom dia!"), ("caller", "Queria falar com o suporte."),
        ("tool", "schedule_callback")]  # fmt: skip
    assert [(h["from_status"], h["to_status"], h["changed_by"], h["reason"])
            for h in body["history"]] == [(None, "pending", "sql", None),
                                          ("pending", "canceled", "api", "resolvido por e-mail")]
    assert body["recording"] == {"path": "/var/rec/x.wav", "url": None}  # not on this host
    assert body["call"]["outcome"] == "callback_requested"
    assert body["call"]["hangup_cause"] == "NORMAL_CLEARING"
    # the other tenant cannot see it, nor act on it
    for attempt in (client.get(f"/api/callbacks/{ticket}", params={"domain_uuid": str(b)},
                               headers=AUTH),
                    client.post(f"/api/callbacks/{ticket}/snooze", params={"domain_uuid": str(b)},
                                json={"minutes": 5}, headers=AUTH)):  # fmt: skip
        hidden = await attempt
        assert hidden.status_code == 404
        assert hidden.json() == {"error": "not_found",
                                 "reason": "no callback with that id in this domain"}
    plain = await add_ticket(db, a)
    bare = (await client.get(f"/api/callbacks/{plain}", params={"domain_uuid": str(a)},
                             headers=AUTH)).json()  # fmt: skip
    assert bare["transcript"] == [] and bare["recording"] is None and bare["call"] is None


async def test_snooze_puts_it_off_and_records_why(client, db, domains):
    (a, _), _ = domains
    pending = await add_ticket(db, a)
    notified = await add_ticket(db, a, status="notified")
    for ticket, before in ((pending, "pending"), (notified, "notified")):
        reply = await client.post(f"/api/callbacks/{ticket}/snooze", json={"minutes": 5},
                                  params={"domain_uuid": str(a)}, headers=AUTH)  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "pending"
        row = await db.fetch_one("SELECT scheduled_at - now() AS left"
                                 " FROM callcontrol_callback_requests WHERE request_uuid = %s",
                                 (ticket,))  # fmt: skip
        assert timedelta(minutes=4) < row["left"] <= timedelta(minutes=5)
        last = (await db.fetch_all("SELECT from_status, to_status, changed_by, reason"
                                   " FROM callcontrol_callback_history WHERE request_uuid = %s"
                                   " ORDER BY history_id", (ticket,)))[-1]  # fmt: skip
        assert last == {"from_status": before, "to_status": "pending", "changed_by": "api",
                        "reason": "snoozed 5 min"}
    soon = await add_ticket(db, a, expires_at=datetime.now(UTC) + timedelta(minutes=1))
    late = await client.post(f"/api/callbacks/{soon}/snooze", json={"minutes": 5},
                             params={"domain_uuid": str(a)}, headers=AUTH)  # fmt: skip
    assert late.status_code == 409 and late.json()["error"] == "expires_first"
    for body in ({}, {"minutes": 0}, {"minutes": 1441}, {"minutes": "5"}, {"minutes": True},
                 {"minutes": 2.5}, [5], "5"):
        bad = await client.post(f"/api/callbacks/{pending}/snooze", json=body,
                                params={"domain_uuid": str(a)}, headers=AUTH)  # fmt: skip
        assert bad.status_code == 400, body
        assert "minutes" in bad.json()["reason"] or "JSON object" in bad.json()["reason"], body


async def test_an_illegal_move_is_a_409_that_names_it(client, db, domains):
    (a, _), _ = domains
    done = await add_ticket(db, a, status="completed", completed_at=T0)
    ringing = await add_ticket(db, a, status="in_progress")
    for ticket, status in ((done, "completed"), (ringing, "in_progress")):
        for action, body, what in (("cancel", {"reason": "x"}, "canceled"),
                                   ("snooze", {"minutes": 5}, "snoozed")):
            reply = await client.post(f"/api/callbacks/{ticket}/{action}", json=body,
                                      params={"domain_uuid": str(a)}, headers=AUTH)
            assert reply.status_code == 409
            assert reply.json() == {"error": "illegal_move",
                                    "reason": f"a callback that is {status} cannot be {what}"}
    rows = await db.fetch_all("SELECT status FROM callcontrol_callback_requests"
                              " WHERE request_uuid = ANY(%s::uuid[]) ORDER BY status",
                              ([done, ringing],))  # fmt: skip
    assert [r["status"] for r in rows] == ["completed", "in_progress"]
    bad = await client.post(f"/api/callbacks/{ringing}/cancel", json={"reason": "a\x00b"},
                            params={"domain_uuid": str(a)}, headers=AUTH)  # fmt: skip
    assert bad.status_code == 400
    big = await client.post(f"/api/callbacks/{ringing}/cancel", content=b"x" * 20000,
                            params={"domain_uuid": str(a)}, headers=AUTH)  # fmt: skip
    assert big.status_code == 413


async def test_scheduled_future_and_due_split_the_open_tickets(client, db, domains):
    (a, _), _ = domains
    now = await db.fetch_value("SELECT now()")
    later = await add_ticket(db, a, scheduled_at=now + timedelta(hours=2))
    earlier = await add_ticket(db, a, scheduled_at=now - timedelta(hours=2))
    asap = await add_ticket(db, a, scheduled_at=None)

    async def ids(scheduled):
        reply = await client.get("/api/callbacks", params={"domain_uuid": str(a),
                                 "scheduled": scheduled}, headers=AUTH)  # fmt: skip
        assert reply.status_code == 200, reply.text
        return {t["id"] for t in reply.json()["items"]}

    assert await ids("future") == {later}
    assert await ids("due") == {earlier, asap}
    refused = await client.get("/api/callbacks", params={"domain_uuid": str(a),
                               "scheduled": "soon"}, headers=AUTH)  # fmt: skip
    assert refused.status_code == 400 and "scheduled" in refused.json()["reason"]
