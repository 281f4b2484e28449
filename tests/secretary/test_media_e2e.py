"""Audio both ways through the real transports and the simulated FreeSWITCH's media peers
(real UDP for native unicast, a real websocket for mod_audio_stream)."""

from __future__ import annotations

import attrs
import pytest
import trio

from callcontrol.media.audio_stream import AudioStreamRegistry, serve_audio_stream
from callcontrol.testing.database import StockPBX
from callcontrol.testing.freeswitch import Answer, BusyAfterRinging, open_freeswitch_sim
from callcontrol.testing.realtime import AwaitToolOutput, CallTool, GoSilent, Hear, Say
from tests.secretary.conftest import ATENDIMENTO, DOMAIN, SUPORTE, Office, wait_for_command
from tests.secretary.test_secretary_e2e import GREETING


@pytest.fixture
async def media_office(office):
    async with open_freeswitch_sim(domain=DOMAIN, latency=0.005, media_peers=True,
                                   caller_audio=440) as sim:  # fmt: skip
        yield attrs.evolve(office, sim=sim)


def _energy(pcm: bytes) -> float:
    import numpy as np

    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(float)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


async def test_caller_audio_reaches_the_model_and_its_voice_reaches_the_caller(media_office):
    office: Office = media_office
    async with office.model([*GREETING, Hear(ms=300), Say("Pois não?", ms=400), GoSilent()],
                            strict=False) as (server, url):  # fmt: skip
        services = office.services(url)
        services.media_lost_after = 1.0
        call = office.call(services)
        await server.wait_for(lambda: bool(server.sessions) and server.last.audio_ms >= 300)
        with trio.fail_after(10):
            await call.media.wait_for(lambda: len(call.media.heard_pcm()) >= 8000 * 2 * 0.5)
        assert _energy(server.last.caller_audio) > 1000  # the caller's tone, not silence
        assert _energy(call.media.heard_pcm()) > 1000  # the model's speech, heard
        await call.hangup()


@pytest.mark.parametrize("fusionpbx_schema", [StockPBX(all_tables=True)], ids=["stock-5.5.7"])
async def test_on_a_stock_fusionpbx_with_nothing_configured_the_caller_hears_the_ai(
    media_office,
):
    # The first real install: every stock table, the shipped dialplan's nil secretary UUID, no
    # v_voice_secretaries and no callcontrol settings row. The AI must answer and be heard.
    office: Office = media_office
    await office.db.execute("DELETE FROM callcontrol_secretaries")
    async with office.model([*GREETING, GoSilent()], strict=False) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(10):
            await call.media.wait_for(lambda: len(call.media.heard_pcm()) >= 8000 * 2 * 0.1)
        assert _energy(call.media.heard_pcm()) > 1000  # the model's greeting, heard
        assert "Suporte" in server.last.instructions and call.alive
        await call.hangup()
        with trio.fail_after(10):
            await call.wait_closed()
    rows = await office.db.fetch_all("SELECT outcome, secretary_uuid FROM callcontrol_calls")
    assert rows == [{"outcome": "caller_hangup", "secretary_uuid": None}]


async def test_on_hold_the_model_hears_nothing_of_the_caller(media_office):
    office: Office = media_office
    office.sim.endpoints[SUPORTE] = BusyAfterRinging(after=1.5)
    async with office.model([
        *GREETING, Hear(ms=100),
        CallTool("request_handoff", {"destination": "suporte", "reason": "x"}),
        AwaitToolOutput(timeout=15), GoSilent(),
    ], strict=False) as (server, url):  # fmt: skip
        services = office.services(url)
        services.media_lost_after = 1.0
        call = office.call(services)
        originate = await wait_for_command(call, "bgapi originate")
        heard_at_originate = server.last.audio_ms
        await server.wait_for(lambda: bool(server.last.tool_outputs), timeout=15)
        heard_while_on_hold = server.last.audio_ms - heard_at_originate
        assert heard_while_on_hold < 100  # 1.5 s of ringing, at most a stray frame or two
        # and the caller heard the hold music, not the model, while it rang
        moh = [p for p in call.media.playbacks if p.path == "local_stream://moh"]
        assert moh and moh[0].started <= originate.at + 0.1
        await call.hangup()


async def test_audio_stream_transport_end_to_end(media_office, nursery):
    office: Office = media_office
    registry = AudioStreamRegistry("ws://127.0.0.1:0")
    server_ws = await nursery.start(serve_audio_stream, registry, "127.0.0.1", 0)
    registry.public_url = f"ws://127.0.0.1:{server_ws.port}"
    async with office.model([*GREETING, Hear(ms=300), Say("Olá!", ms=400), GoSilent()],
                            strict=False) as (server, url):  # fmt: skip
        services = office.services(url, media_transport="audio_stream")
        services.unicast_ports = None
        services.audio_streams = registry
        services.media_lost_after = 1.0
        call = office.call(services)
        start = await wait_for_command(call, "api uuid_audio_stream")
        assert " start ws://127.0.0.1:" in start.line and " mono 16k " in start.line
        await server.wait_for(lambda: bool(server.sessions) and server.last.audio_ms >= 300)
        with trio.fail_after(10):
            await call.media.wait_for(lambda: bool(call.media.playbacks))
        assert call.media.playbacks[0].path.startswith("/")  # mod_audio_stream's temp file
        await call.hangup()


async def test_lost_media_falls_back_without_dead_air(media_office, nursery):
    office: Office = media_office
    office.sim.endpoints[ATENDIMENTO] = Answer(after=0.2)
    registry = AudioStreamRegistry("ws://127.0.0.1:0")
    server_ws = await nursery.start(serve_audio_stream, registry, "127.0.0.1", 0)
    registry.public_url = f"ws://127.0.0.1:{server_ws.port}"
    async with office.model([*GREETING, GoSilent()], strict=False) as (_server, url):
        services = office.services(url, media_transport="audio_stream")
        services.unicast_ports = None
        services.audio_streams = registry
        services.media_lost_after = 1.0
        call = office.call(services)
        await wait_for_command(call, "api uuid_audio_stream")
        with trio.fail_after(10):
            await call.media.wait_for(lambda: call.media.audio_stream_active)
        await office.sim.api(f"uuid_audio_stream {call.uuid} stop")  # the stream dies
        prompt = await wait_for_command(call, "tone_stream://%(300,200,440);loops=2")
        assert prompt is not None
        with trio.fail_after(10):
            await call.wait_for(lambda: call.bridged_to is not None)
        await call.hangup()
