"""``open_provider`` picks the wire protocol from REALTIME_PROVIDER."""

from __future__ import annotations

from callcontrol.ai.factory import open_provider
from callcontrol.ai.provider import SessionConfig
from callcontrol.config import load_settings
from callcontrol.testing.realtime import GoSilent, ScriptedLive, ScriptedRealtime


async def test_realtime_is_the_default_provider():
    server = ScriptedRealtime([GoSilent()], strict=False)
    async with server as url:
        settings = load_settings({"REALTIME_URL": url, "OPENAI_API_KEY": "k"})
        async with open_provider(settings, SessionConfig(instructions="oi")):
            await server.wait_for(lambda: bool(server.sessions and server.last.session_updates))
    assert server.last.path == "/v1/realtime?model=gpt-realtime"
    assert server.last.instructions == "oi"


async def test_gpt_live_is_chosen_by_configuration():
    server = ScriptedLive([GoSilent()], strict=False)
    async with server as url:
        realtime_url = url.removesuffix("/live/sessions") + "/realtime"
        settings = load_settings(
            {
                "REALTIME_URL": realtime_url,
                "OPENAI_API_KEY": "k",
                "REALTIME_PROVIDER": "openai-live",
            }
        )
        async with open_provider(settings, SessionConfig(instructions="olá")):
            await server.wait_for(lambda: bool(server.sessions and server.last.session_updates))
    assert server.last.path.startswith("/v1/live/sessions")
    assert server.last.instructions == "olá"
