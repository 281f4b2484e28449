"""People using the API through a browser-like client: each ``browser_on`` keeps its own
cookies, so two agents are two clients; ``Clock`` is the wall clock sign-in reads, moved by
hand."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx


class Clock:
    def __init__(self, now: float = 1_796_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def browser_on(app, *, base_url: str = "http://api", client=("127.0.0.1", 123),
                     cookies=None) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url=base_url, cookies=cookies,
                                 follow_redirects=False) as c:  # fmt: skip
        yield c


async def sign_in(c: httpx.AsyncClient, username: str, password: str) -> str:
    """Signs in; returns the session's CSRF token (send it as ``X-CSRF-Token``)."""
    answer = await c.post("/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["csrf_token"]
    return token
