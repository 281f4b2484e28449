"""Hostile input at every endpoint of the OpenAPI document (which test_openapi.py holds equal to
the app's routes): random and odd unicode, NUL and control characters, huge numbers, SQL-ish and
template-ish strings, very long values, repeated and unknown parameters, in the query, the path
and the body. The answer is always a 200 that matches its documented schema, or a 4xx with the
one refusal shape; never a 500, never a traceback; and nothing is written to the database
(every ticket the requests can reach is one no move is allowed from, or of another domain)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote

import httpx
import pytest
import trio
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from psycopg import sql
from starlette.applications import Starlette
from starlette.routing import Match

from callcontrol.api.http import build_app
from callcontrol.api.sessions import SessionCodec
from callcontrol.api.signin import SignIn
from callcontrol.api.whatsapp_webhook import WhatsAppWebhook
from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.metrics import Metrics
from callcontrol.testing.database import add_destination, add_domain, add_extension
from tests.api.conftest import AUTH, SESSION_SECRET, TOKEN, add_call, add_ticket
from tests.api.openapi_check import (
    DOC,
    answer_problems,
    answered_at_once,
    operations,
    params,
    problems,
)
from tests.callbacks.graph_api import settings as whatsapp_settings

WHATSAPP = whatsapp_settings(9)

NASTY = [
    "", " ", "\x00", "a\x00b", "%00", "%", "%%", "%2F", "/", "..", "../../etc/passwd", "\\",
    "' OR '1'='1", "1; DROP TABLE callcontrol_callback_requests; --", "\" OR \"\"=\"",
    "1' UNION SELECT NULL--", "$1", "%s", "%(domain)s", "{}", "{0}", "{{7*7}}", "${jndi:x}",
    "null", "None", "true", "[]", "NaN", "inf", "-inf", "-1", "-0", "0", "0x10", "1e999",
    "9" * 400, str(2**63), str(-(2**63) - 1), "1.5", "１２３", "١٢٣", "\u202e1001", "\ufeff",
    "\ud7ff", "💥", "e\u0301", "\r\n", "\t", "\x1b[31m", "report.csv", "snooze", "*",
    "2026-02-30", "2026-12-07T25:00", "2026-12-07T12:00:00+99:00", "9999-12-31", "0001-01-01",
    "2026-12-07T12:00:00.123456789Z", "00000000-0000-0000-0000-000000000000",
    "a1b2c3d4-0000-4000-8000-00000000000g", "{a1b2c3d4-0000-4000-8000-000000000000}",
    "urn:uuid:a1b2c3d4-0000-4000-8000-000000000000", "A1B2C3D4000040008000000000000000",
    "pending,", ",,,", "pending,pending", "completed;drop", "1001@b.example.com", "1001 ",
]  # fmt: skip
HOSTILE = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(st.sampled_from("0123456789-:T.Z+"), max_size=30),
    st.text(min_size=1, max_size=3).map(lambda s: s * 1200),  # very long
    st.uuids().map(str),
)


BODIES = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.sampled_from([b"{", b"[]", b"null", b"\x00", b'{"minutes": 1e999}', b"[" * 5000,
                     b'{"minutes": 5' + b" " * 20000 + b"}", b'{"reason": "\\u0000"}',
                     b'{"minutes": 99999999999999999999999}', b'{"__proto__": {}}']),
    st.dictionaries(st.sampled_from(["minutes", "reason", "status", "x"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                              st.text(max_size=600), st.lists(st.integers(), max_size=3)),
                    max_size=3).map(lambda d: json.dumps(d).encode()),
)  # fmt: skip


# The tables a request could write to (ours and those FusionPBX tables the API reads), compared
# after every example; all tables of the schema are compared once, after the last one.
OURS = "callcontrol\\_%|v\\_voice\\_%|v\\_extensions|v\\_domains"


async def snapshot(db, like: str) -> dict[str, str]:
    """The tables of the test's schema whose name matches ``like`` (SIMILAR TO), each as a
    digest of its rows: all of them in one query (one round trip, not one per table, for
    every example)."""
    tables = [row["tablename"] for row in await db.fetch_all(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename SIMILAR TO %s ORDER BY 1", (like,))]  # fmt: skip
    if not tables:
        return {}
    digests = sql.SQL(", ").join(
        sql.SQL("(SELECT count(*)::text || ':' || md5(coalesce(string_agg(t::text, '|'"
                " ORDER BY t::text), '')) FROM {} t) AS {}").format(sql.Identifier(name),
                                                                  sql.Identifier(name))
        for name in tables
    )  # fmt: skip
    row = await db.fetch_one(sql.SQL("SELECT {}").format(digests))
    assert row is not None and list(row) == tables
    return dict(row)


def operation_for(app, method: str, url_path: str) -> dict[str, Any] | None:
    """The documented operation the app routes this request to (a hostile path value such as
    ``report.csv`` or ``x/snooze`` lands on another route), or None."""
    scope = {"type": "http", "method": method, "path": unquote(url_path), "root_path": ""}
    for route in app.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return DOC["paths"][route.path][method.lower()]
    return None


def on_the_database(db_url: str, work: Callable[[Database], Awaitable[Any]]) -> Any:
    """Run ``work`` in its own trio run on its own connection: hypothesis runs the examples of a
    sync test, so the schema and the seed below are made once for all of them."""

    async def run() -> Any:
        async with open_database(db_url, PoolOptions(min_size=1, max_size=2, inline=True)) as db:
            return await work(db)

    return trio.run(run)


@pytest.fixture
def seeded(db_url):
    """Rows for the requests to reach, and the database as it was; after the last example
    every table of the schema is compared too."""

    async def seed(db: Database) -> Any:
        a = await add_domain(db, "a.example.com")
        b = await add_domain(db, "b.example.com")
        for domain, extension in ((a, "1001"), (a, "1002"), (b, "1001")):
            await add_extension(db, domain, extension)
        await add_destination(db, a, "Suporte", "queue", "5001")
        call = await add_call(db, a, [{"t": 0, "role": "caller", "text": "alô"}],
                              outcome="bridged", handoff_status="success",
                              handoff_destination="Suporte")  # fmt: skip
        closed = [await add_ticket(db, a, status=s, call_uuid=call)
                  for s in ("completed", "expired", "canceled", "failed")]  # fmt: skip
        open_elsewhere = await add_ticket(db, b)  # reachable only with the wrong domain
        return str(a), [*closed, open_elsewhere], await snapshot(db, "%"), await snapshot(db, OURS)

    domain, tickets, everything, ours = on_the_database(db_url, seed)
    yield domain, tickets, ours
    assert on_the_database(db_url, lambda db: snapshot(db, "%")) == everything


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_hostile_input_is_a_200_or_a_4xx_refusal_and_writes_nothing(db_url, seeded, data):
    domain, tickets, before = seeded
    good = {"domain_uuid": [domain], "id": tickets, "extension": ["1001", "1002"],
            "status": ["pending", "completed,canceled"], "kind": ["callback"],
            "from": ["2026-12-01", "2026-12-07T10:00:00-03:00"], "to": ["2026-12-08"],
            "limit": ["1", "200"], "offset": ["0", "3"], "destination": ["Suporte"]}  # fmt: skip

    method, path, op = data.draw(st.sampled_from([o for o in operations()
                                                  if answered_at_once(o[2])]),
                                 label="operation")  # fmt: skip
    # Half the time one parameter is hostile and the others are as a valid request has them,
    # so the checks behind the first one are reached too; else any of them may be.
    names = [p["name"] for p in op.get("parameters", [])]
    target = data.draw(st.sampled_from([*names, "any"]) if names else st.just("any"),
                       label="hostile")  # fmt: skip

    def value(name: str) -> str:
        hostile = name == target or (target == "any" and data.draw(st.booleans(), label="bad"))
        if hostile or name not in good:
            return data.draw(HOSTILE, label=name)
        return data.draw(st.sampled_from(good[name]), label=name)

    url = path.format(**{p["name"]: quote(value(p["name"]), safe="")
                         for p in params(op, "path")})  # fmt: skip
    query: list[tuple[str, str]] = []
    for p in params(op, "query"):
        if p["name"] == target:
            repeats = data.draw(st.integers(0, 3), label=f"{p['name']} times")
        else:
            repeats = data.draw(st.integers(1 if p["required"] else 0, 1), label="given")
        query += [(p["name"], value(p["name"])) for _ in range(repeats)]
    query += data.draw(st.lists(st.tuples(HOSTILE, HOSTILE), max_size=2), label="unknown")
    pairs = [f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query]
    # bytes that are not UTF-8 (%ff%fe), as a client that does not encode text would send them
    pairs += [f"{quote(k, safe='')}={quote_from_bytes(v, safe='')}" for k, v in data.draw(
        st.lists(st.tuples(st.sampled_from([*names, "x"]), st.binary(min_size=1, max_size=12)),
                 max_size=2), label="raw bytes")]  # fmt: skip
    pairs = data.draw(st.permutations(pairs), label="order")
    target_url = f"{url}?{'&'.join(pairs)}" if pairs else url
    body = data.draw(BODIES, label="body") if method == "POST" else None
    # httpx refuses a query over 64 KiB
    assume(len(target_url) < 60_000)

    async def ask(db: Database) -> tuple[Starlette, httpx.Response, dict[str, str]]:
        # the WhatsApp webhook configured, so its checks are reached (not only "it is off")
        app = build_app(Metrics(), TOKEN, db=db, whatsapp=WhatsAppWebhook(WHATSAPP),
                        sign_in=SignIn(SessionCodec(SESSION_SECRET, time.time)))
        transport = httpx.ASGITransport(app=app)  # an app exception is raised here, not hidden
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            reply = await client.request(method, target_url, content=body, headers=AUTH)
        return app, reply, await snapshot(db, OURS)

    app, reply, after = on_the_database(db_url, ask)
    event(f"{op['operationId']} {reply.status_code}")  # --hypothesis-show-statistics
    assert "Traceback" not in reply.text and 'File "' not in reply.text
    if reply.status_code == 200:
        routed = operation_for(app, method, reply.request.url.raw_path.decode().split("?")[0])
        assert routed is not None
        found = answer_problems(routed, 200, reply.headers["content-type"], reply.content)
        assert not found, (target_url, found)
    else:
        assert 400 <= reply.status_code < 500, (target_url, reply.status_code, reply.text)
        assert reply.headers["content-type"] == "application/json", reply.headers
        refusal = reply.json()
        assert not problems(refusal, {"$ref": "#/components/schemas/Refusal"}), refusal
        assert refusal["error"] and refusal["reason"], refusal
    assert after == before, (method, target_url, body)
