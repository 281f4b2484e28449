"""The service token guards every API path: missing or wrong is a 401 that says how to send it
and nothing about the token; with no token configured the API says so (503); the probes are open."""

from __future__ import annotations

import httpx

from callcontrol.api.http import build_app
from callcontrol.metrics import Metrics
from tests.api.conftest import AUTH, TOKEN

PATHS = ["/api/callbacks", "/api/callbacks/report.csv", "/api/stats", "/openapi.json",
         "/api/extension/status/1001", "/metrics", "/api/nothing"]  # fmt: skip


async def test_missing_or_wrong_token_is_a_401_that_leaks_nothing(db):
    app = build_app(Metrics(), TOKEN, db=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        for path in PATHS:
            bodies = set()
            for headers in ({}, {"Authorization": "Bearer nope"},
                            {"Authorization": f"Bearer {TOKEN}x"},
                            {"Authorization": f"Bearer {TOKEN[:-1]}"},
                            {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
                refused = await c.get(path, headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert TOKEN not in refused.text
                bodies.add(refused.text)
            assert bodies == {'{"error":"unauthorized","reason":"send the service token as '
                              '`Authorization: Bearer <VOICE_AI_SERVICE_TOKEN>`"}'}
            for method in ("POST", "PUT", "DELETE"):
                assert (await c.request(method, path)).status_code == 401
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/api/callbacks", headers=AUTH)).status_code == 400  # past the gate


async def test_no_token_configured_refuses_every_api_call_with_the_reason(db):
    for token in (None, ""):
        app = build_app(Metrics(), token, db=db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            for path in PATHS:
                refused = await c.get(path, headers={"Authorization": "Bearer "})
                assert refused.status_code == 503
                assert refused.json()["error"] == "no_token_configured"
                assert "VOICE_AI_SERVICE_TOKEN" in refused.json()["reason"]
            assert (await c.get("/readyz")).status_code == 200
