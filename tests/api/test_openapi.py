"""GET /openapi.json cannot drift from the app: every Starlette route is in it and nothing else,
with the same methods and path parameters; each documented query parameter and body field is
one the endpoint reads, and each it reads is documented; real answers match their schemas."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection
from starlette.routing import Route

from callcontrol.api import params as api_params
from callcontrol.api.http import build_app
from callcontrol.api.openapi import document
from callcontrol.metrics import Metrics
from callcontrol.testing.fusionpbx_users import add_user
from tests.api.conftest import AUTH, T0, TOKEN, add_call, add_ticket
from tests.api.openapi_check import (
    DOC,
    answer_problems,
    answered_at_once,
    body_fields,
    operations,
    params,
)


def app_routes() -> dict[tuple[str, str], Route]:
    app = build_app(Metrics(), TOKEN)
    found = {}
    for route in app.routes:
        assert isinstance(route, Route), route
        if not route.include_in_schema:
            continue  # the pages people use (HTML, api.pages): not the API's
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET
                found[(method, route.path)] = route
    return found


def test_every_route_is_documented_and_nothing_else():
    routes = app_routes()
    documented = {(method, path) for method, path, _ in operations()}
    assert set(routes) == documented
    for method, path, op in operations():
        route = routes[(method, path)]
        assert {p["name"] for p in params(op, "path")} == set(route.param_convertors), path
        assert op["operationId"]
    assert len({op["operationId"] for _, _, op in operations()}) == len(operations())


def test_the_document_is_openapi_3_1_and_every_reference_resolves():
    assert DOC["openapi"] == "3.1.0"
    schemas = DOC["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [
                r for v in node.values() for r in refs(v)]  # fmt: skip
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(DOC):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for _, _, op in operations():
        assert "200" in op["responses"] or "202" in op["responses"]
        for p in op.get("parameters", []):
            assert p["in"] in ("path", "query") and "schema" in p
            assert p["required"] is True or p["in"] == "query"


class Recorded:
    """Which query parameters and body fields the endpoints read."""

    query: set[str]
    body: set[str]

    def __init__(self) -> None:
        self.query, self.body = set(), set()


@pytest.fixture
def reads(monkeypatch) -> Recorded:
    seen = Recorded()

    class Query(QueryParams):
        def __getitem__(self, key: Any) -> str:
            seen.query.add(key)
            return super().__getitem__(key)

        def get(self, key: Any, default: Any = None) -> Any:
            seen.query.add(key)
            return super().get(key, default)

        def __contains__(self, key: Any) -> bool:
            seen.query.add(key)
            return super().__contains__(key)

        def getlist(self, key: Any) -> list[str]:
            seen.query.add(key)
            return super().getlist(key)

    class Body(dict):
        def __getitem__(self, key: Any) -> Any:
            seen.body.add(key)
            return super().__getitem__(key)

        def get(self, key: Any, default: Any = None) -> Any:
            seen.body.add(key)
            return super().get(key, default)

    def query_params(self: HTTPConnection) -> QueryParams:
        return Query(self.scope["query_string"])

    real_json_object = api_params.json_object

    async def json_object(request: Any) -> dict[str, Any]:
        return Body(await real_json_object(request))

    monkeypatch.setattr(HTTPConnection, "query_params", property(query_params))
    monkeypatch.setattr(api_params, "json_object", json_object)
    return seen


GOOD_BODIES = {"snoozeCallback": {"minutes": 5}, "cancelCallback": {"reason": "resolvido"},
               "login": {"username": "ana", "password": "pw-of-ana"}}
STARTED = {"initiateCallback", "originateCallback"}  # 202: the call runs in the background
# 404 here: this app serves no recordings folder (tests/api/test_recordings.py plays one)
ABSENT = {"getCallbackRecording"}


async def test_each_endpoint_reads_exactly_the_parameters_it_documents(client, db, domains,
                                                                       reads, switch):  # fmt: skip
    (a, _), _ = domains
    switch.registrations.append({"reg_user": "1001", "realm": "a.example.com"})
    call = await add_call(db, a, [{"t": 0.0, "role": "caller", "text": "alô"}],
                          outcome="callback_requested", handoff_status="busy",
                          handoff_destination="Suporte")  # fmt: skip
    await add_user(db, a, "ana", "pw-of-ana")
    for method, path, op in operations():
        if "webhooks" in op.get("tags", ()):
            continue  # Meta's: signed, not token-authorized (tests/api/test_whatsapp_webhook.py)
        if not answered_at_once(op):
            continue
        ticket = await add_ticket(db, a, call_uuid=call)
        values = {"id": ticket, "extension": "1001"}
        url = path.format(**{p["name"]: values[p["name"]] for p in params(op, "path")})
        # domain_uuid: optional for a person (their own), required of the service (AUTH)
        query = {p["name"]: str(a) for p in params(op, "query")
                 if p["required"] or p["name"] == "domain_uuid"}  # fmt: skip
        reads.query.clear()
        reads.body.clear()
        body = GOOD_BODIES.get(op["operationId"])
        if op["operationId"] == "originateCallback":
            body = {"ticketUuid": ticket}
        reply = await client.request(method, url, params=query, headers=AUTH,
                                     json=body)  # fmt: skip
        expected = 202 if op["operationId"] in STARTED else \
            404 if op["operationId"] in ABSENT else 200  # fmt: skip
        assert reply.status_code == expected, (path, reply.text)
        assert reads.query == {p["name"] for p in params(op, "query")}, path
        assert reads.body == body_fields(op), path
        found = answer_problems(op, reply.status_code, reply.headers["content-type"],
                                reply.content)  # fmt: skip
        assert not found, (path, found)
        for required in query:  # leaving out a required one is a 400 that names it
            short = {k: v for k, v in query.items() if k != required}
            refused = await client.request(method, url, params=short, headers=AUTH)
            assert refused.status_code == 400 and required in refused.json()["reason"]


async def test_the_document_is_served_behind_the_token(client):
    reply = await client.get("/openapi.json", headers=AUTH)
    assert reply.status_code == 200
    assert reply.json() == document()
    assert (await client.get("/openapi.json")).status_code == 401


async def test_a_full_ticket_and_the_stats_match_their_schemas(client, db, domains):
    (a, _), _ = domains
    call = await add_call(db, a, [{"t": 1.5, "role": "assistant", "text": "bom dia"}],
                          outcome="bridged", handoff_status="success",
                          handoff_destination="Suporte")  # fmt: skip
    ticket = await add_ticket(db, a, call_uuid=call, recording_path="/r.wav", summary="s",
                              scheduled_at=None, status="completed",
                              completed_at=T0 + timedelta(minutes=3))  # fmt: skip
    ops = {op["operationId"]: op for _, _, op in operations()}
    for op_id, url in (("getCallback", f"/api/callbacks/{ticket}"), ("stats", "/api/stats"),
                       ("listCallbacks", "/api/callbacks")):  # fmt: skip
        reply = await client.get(url, params={"domain_uuid": str(a)}, headers=AUTH)
        assert reply.status_code == 200
        assert not answer_problems(ops[op_id], 200, reply.headers["content-type"],
                                   reply.content), op_id  # fmt: skip
    missing = await client.get(f"/api/callbacks/{uuid.uuid4()}", params={"domain_uuid": str(a)},
                               headers=AUTH)  # fmt: skip
    assert not answer_problems(ops["getCallback"], 404, missing.headers["content-type"],
                               missing.content)  # fmt: skip
