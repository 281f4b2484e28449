"""GET /api/callbacks/{id}/recording: the page plays the recording of a ticket's call, found
where FusionPBX's CDR says (v_xml_cdr.record_path / record_name, the stock schema's) or in the
ticket's own recording_path, served only from under CALLCONTROL_RECORDINGS_DIR."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from callcontrol.api.http import build_app
from callcontrol.api.sessions import SessionCodec
from callcontrol.api.signin import SignIn
from callcontrol.testing.database import StockPBX
from tests.api.conftest import AUTH, SESSION_SECRET, TOKEN, add_ticket

WAV = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(28)


@pytest.fixture
def recordings(tmp_path):
    root = tmp_path / "recordings"
    day = root / "a.example.com" / "archive" / "2026" / "Dec" / "07"
    day.mkdir(parents=True)
    return root, day


@pytest.fixture
async def client(db, switch, metrics, calls, recordings):
    app = build_app(metrics, TOKEN, db=db, availability=switch, calls=calls,
                    sign_in=SignIn(SessionCodec(SESSION_SECRET, time.time)),
                    recordings_dir=recordings[0])  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


async def _cdr(db, domain, call, path, name):
    await db.execute("INSERT INTO v_xml_cdr (xml_cdr_uuid, domain_uuid, record_path, record_name)"
                     " VALUES (%s, %s, %s, %s)", (call, domain, path, name))  # fmt: skip


async def _get(client, path, domain, **headers):
    return await client.get(path, params={"domain_uuid": str(domain)},
                            headers={**AUTH, **headers})  # fmt: skip


@pytest.mark.parametrize("fusionpbx_schema", [StockPBX("5.5.7"), StockPBX("5.4.4")], ids=str)
async def test_the_recording_fusionpbx_made_of_the_call_is_played(client, db, domains,
                                                                  recordings):  # fmt: skip
    (a, _), (b, _) = domains
    _, day = recordings
    call = uuid.uuid4()
    (day / f"{call}.wav").write_bytes(WAV)
    await _cdr(db, a, call, str(day), f"{call}.wav")
    ticket = await add_ticket(db, a, call_uuid=call)
    detail = (await _get(client, f"/api/callbacks/{ticket}", a)).json()
    assert detail["recording"] == {"path": str(day / f"{call}.wav"),
                                   "url": f"/api/callbacks/{ticket}/recording"}
    reply = await _get(client, detail["recording"]["url"], a)
    assert reply.status_code == 200 and reply.content == WAV
    assert reply.headers["content-type"] == "audio/wav"
    part = await _get(client, detail["recording"]["url"], a, range="bytes=0-3")
    assert part.status_code == 206 and part.content == b"RIFF"  # the player seeks
    # another tenant learns nothing of it
    assert (await _get(client, f"/api/callbacks/{ticket}/recording", b)).status_code == 404


async def test_a_path_outside_the_recordings_folder_is_never_served(
        client, db, domains, recordings, tmp_path):
    (a, _), _ = domains
    _, day = recordings
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"not yours")
    (day / "link.wav").symlink_to(secret)
    (day / "notes.txt").write_text("x")
    for stored in ("../../../../secret.wav", str(secret), str(day / "link.wav"),
                   str(day / "notes.txt"), str(day / "missing.wav")):
        ticket = await add_ticket(db, a, recording_path=stored)
        detail = (await _get(client, f"/api/callbacks/{ticket}", a)).json()
        assert detail["recording"]["url"] is None, stored
        reply = await _get(client, f"/api/callbacks/{ticket}/recording", a)
        assert reply.status_code == 404 and b"not yours" not in reply.content
        assert "not in CALLCONTROL_RECORDINGS_DIR" in reply.json()["reason"]


async def test_a_call_without_recording_says_so(client, db, domains):
    (a, _), _ = domains
    ticket = await add_ticket(db, a, call_uuid=uuid.uuid4())
    assert (await _get(client, f"/api/callbacks/{ticket}", a)).json()["recording"] is None
    reply = await _get(client, f"/api/callbacks/{ticket}/recording", a)
    assert reply.status_code == 404
    assert reply.json()["reason"] == "this callback's call has no recording"
    # a database without FusionPBX's CDR table (callcontrol on a plain FreeSWITCH) is no error
    await db.execute("DROP TABLE v_xml_cdr")
    assert (await _get(client, f"/api/callbacks/{ticket}", a)).json()["recording"] is None
    assert (await _get(client, f"/api/callbacks/{ticket}/recording", a)).status_code == 404
