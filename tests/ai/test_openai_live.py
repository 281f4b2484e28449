"""The GPT-Live client (client delegation) against ScriptedLive over real websockets."""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx
import pytest

from callcontrol.ai import tools
from callcontrol.ai.openai_live import (
    LiveEndpoint,
    ResolvedCall,
    ResponsesResolver,
    open_openai_live,
)
from callcontrol.ai.provider import (
    AudioDelta,
    Closed,
    ProviderUnavailable,
    Role,
    SessionConfig,
    ToolCall,
    ToolSpec,
    TranscriptDelta,
)
from callcontrol.config import load_settings
from callcontrol.media.codecs import PCM24K
from callcontrol.testing.realtime import (
    AwaitToolOutput,
    CallerSaid,
    CallTool,
    Close,
    Hear,
    Say,
    ScriptedLive,
    ScriptedRealtime,
    encode_for,
)

CONFIG = SessionConfig(instructions="Você é a secretária.", tools=tools.TOOLS)


class FakeResolver:
    def __init__(self, call: ResolvedCall | None) -> None:
        self.call = call
        self.seen: list[list[tuple[Role, str]]] = []

    async def resolve(
        self, conversation: Sequence[tuple[Role, str]], tools: Sequence[ToolSpec]
    ) -> ResolvedCall | None:
        self.seen.append(list(conversation))
        return self.call


async def test_live_session_audio_and_client_delegation() -> None:
    script = [
        Hear(40),
        Say("Olá, em que posso ajudar?", ms=200),
        CallerSaid("quero falar com o suporte"),
        CallTool("request_handoff", {}, call_id="del_1"),
        AwaitToolOutput(),
    ]
    server = ScriptedLive(script)
    args = '{"destination": "Suporte", "reason": "falar com o suporte"}'
    resolver = FakeResolver(ResolvedCall("request_handoff", args))
    async with server as url:
        endpoint = LiveEndpoint(url=url, api_key="sk-live")
        async with open_openai_live(endpoint, CONFIG, resolver) as ai:
            await ai.send_audio(b"\x00\x00" * 960)
            events = []
            async for event in ai.events():
                events.append(event)
                if isinstance(event, ToolCall):
                    await ai.send_tool_result(event.call_id, tools.tool_output(ok=True))
                    break

    start = server.last.events[0]
    assert start["type"] == "session.start"
    assert start["session"] == {
        "model": "gpt-live-1",
        "instructions": "Você é a secretária.",
        "audio": {"format": {"type": "audio/pcm", "rate": 24000}, "output": {"voice": "marin"}},
        "delegation": {"type": "client"},
    }
    assert server.last.headers["authorization"] == "Bearer sk-live"
    heard = b"".join(e.pcm for e in events if isinstance(e, AudioDelta))
    assert heard == encode_for(PCM24K, 200, 440.0)
    assert TranscriptDelta("caller", "quero falar com o suporte") in events
    # the resolver saw the conversation; the session saw an ordinary tool call
    assert ("caller", "quero falar com o suporte") in resolver.seen[0]
    call = events[-1]
    assert isinstance(call, ToolCall) and call.call_id == "del_1"
    assert tools.parse_tool_call(call.name, call.raw_arguments) == tools.RequestHandoff(
        "Suporte", "falar com o suporte"
    )
    assert json.loads(server.last.tool_outputs["del_1"]) == {"ok": True}


async def test_session_closed_reason_is_reported() -> None:
    server = ScriptedLive([Close(1000, "expired")])
    async with server as url, open_openai_live(LiveEndpoint(url=url), CONFIG) as ai:
        events = [event async for event in ai.events()]
    assert events == [Closed("expired", 1000)]


async def test_a_server_that_does_not_start_the_session_is_unavailable() -> None:
    # speaks Realtime: answers with session.created, not started (a mismatch on purpose)
    server = ScriptedRealtime(check_wire=False)
    async with server as url:
        with pytest.raises(ProviderUnavailable, match="refused"):
            async with open_openai_live(LiveEndpoint(url=url), CONFIG):
                pass  # pragma: no cover


async def test_responses_resolver_offers_our_tools_and_reads_the_call() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer k"
        return httpx.Response(
            200,
            json={
                "output": [
                    {
                        "type": "function_call",
                        "name": "end_call",
                        "call_id": "c",
                        "arguments": '{"reason": "tchau"}',
                    }
                ]
            },
        )

    resolver = ResponsesResolver("k", transport=httpx.MockTransport(handler))
    call = await resolver.resolve([("caller", "pode desligar")], tools.TOOLS)
    assert call == ResolvedCall("end_call", '{"reason": "tchau"}')
    body = seen[0]
    assert body["tool_choice"] == "required"
    assert body["input"] == [{"role": "user", "content": "pode desligar"}]
    assert {t["name"] for t in body["tools"]} == {t.name for t in tools.TOOLS}  # type: ignore[attr-defined]


def test_live_endpoint_from_settings() -> None:
    settings = load_settings({}, realtime_provider="openai-live", openai_api_key="k")
    endpoint = LiveEndpoint.from_settings(settings)
    assert endpoint.url == "wss://api.openai.com/v1/live/sessions"
    assert endpoint.model == "gpt-live-1"
    assert "k" not in repr(endpoint)
