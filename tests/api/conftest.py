"""The API under test: the real Starlette app on the test PostgreSQL (stock FusionPBX schema +
migrations), reached with httpx through its ASGI interface."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from callcontrol.api.http import build_app
from callcontrol.api.sessions import SessionCodec
from callcontrol.api.signin import SignIn
from callcontrol.callbacks.availability import Snapshot
from callcontrol.metrics import Metrics
from callcontrol.testing.database import add_domain, add_extension

TOKEN = "s3cret-token"
SESSION_SECRET = b"a session secret of the tests, 32+ bytes"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class FixedSwitch:
    """What FreeSWITCH would say, as the snapshot the availability monitor reads."""

    def __init__(self) -> None:
        self.registrations: list[dict[str, str]] = []
        self.channels: list[dict[str, str]] = []
        self.down = False

    async def snapshot(self) -> Snapshot | None:
        return None if self.down else Snapshot.from_rows(self.registrations, self.channels)


@pytest.fixture
def switch() -> FixedSwitch:
    return FixedSwitch()


class StartedCalls:
    """Click-to-call's starter as the API sees it: what it was asked to call."""

    def __init__(self) -> None:
        self.tickets: list[str] = []

    async def initiate(self, request_uuid: str) -> str | None:
        if request_uuid in self.tickets:
            return None
        self.tickets.append(request_uuid)
        return str(uuid.uuid4())


@pytest.fixture
def calls() -> StartedCalls:
    return StartedCalls()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def app(db, switch, metrics, calls):
    """The whole HTTP side: the service token, the database, the switch's snapshot,
    click-to-call, and sign-in on (tests/api/people.py signs people in)."""
    return build_app(metrics, TOKEN, db=db, availability=switch, calls=calls,
                     sign_in=SignIn(SessionCodec(SESSION_SECRET, time.time)))


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


@pytest.fixture
async def domains(db):
    """Two tenants: (uuid, name) each, with extension 1001 in both and 1002 in the first."""
    a = await add_domain(db, "a.example.com")
    b = await add_domain(db, "b.example.com")
    await add_extension(db, a, "1001")
    await add_extension(db, a, "1002")
    await add_extension(db, b, "1001")
    return (a, "a.example.com"), (b, "b.example.com")


async def add_ticket(
    db,
    domain: uuid.UUID,
    *,
    created_at: datetime = T0,
    status: str = "pending",
    extension: str | None = "1001",
    reason: str | None = "resultado do exame",
    phone: str = "+5511988887777",
    caller_name: str | None = "Maria Souza",
    destination_name: str | None = "Suporte",
    kind: str = "callback",
    call_uuid: uuid.UUID | None = None,
    **columns,
) -> str:
    ident = str(uuid.uuid4())
    values = {"request_uuid": ident, "kind": kind, "domain_uuid": domain, "phone_number": phone,
              "caller_name": caller_name, "reason": reason, "extension": extension,
              "destination_name": destination_name, "created_at": created_at,
              "expires_at": created_at + timedelta(days=3650), "call_uuid": call_uuid,
              **columns}  # fmt: skip
    names = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    await db.execute(f"INSERT INTO callcontrol_callback_requests ({names}) VALUES ({marks})",
                     values)  # fmt: skip
    if status != "pending":
        await db.execute("UPDATE callcontrol_callback_requests SET status = %s"
                         " WHERE request_uuid = %s", (status, ident))  # fmt: skip
    return ident


async def add_call(db, domain: uuid.UUID, transcript: list[dict], **columns) -> uuid.UUID:
    call_uuid = uuid.uuid4()
    values = {"call_uuid": call_uuid, "domain_uuid": domain,
              "transcript": json.dumps(transcript), **columns}  # fmt: skip
    names = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    await db.execute(f"INSERT INTO callcontrol_calls ({names}) VALUES ({marks})", values)
    return call_uuid
