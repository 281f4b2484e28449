"""The wire protocol against the official ``openai`` package's models, strictly: what our client
sends, and what the scripted servers send (the suite-wide check is in tests/conftest.py)."""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from openai.types.realtime.audio_transcription import AudioTranscription

from callcontrol.ai import openai_live, openai_realtime, tools
from callcontrol.ai.openai_realtime import RealtimeEndpoint, open_openai_realtime
from callcontrol.ai.provider import Closed, SessionConfig, SpeechStarted, TranscriptDone
from callcontrol.config import load_settings
from callcontrol.media.codecs import PCMU
from callcontrol.testing import realtime
from callcontrol.testing.realtime import (
    AwaitClient,
    AwaitToolOutput,
    CallerSaid,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallTool,
    Close,
    Say,
    ScriptedRealtime,
)
from tests.ai.wire_types import problems

CONFIG = SessionConfig(instructions="Você é a secretária.", tools=tools.TOOLS)


@contextmanager
def _frames() -> Iterator[list[tuple[str, str, Mapping[str, Any]]]]:
    seen: list[tuple[str, str, Mapping[str, Any]]] = []
    observer = lambda *frame: seen.append(frame)  # noqa: E731
    realtime.frame_observers.append(observer)
    try:
        yield seen
    finally:
        realtime.frame_observers.remove(observer)


def test_every_client_event_we_send_is_valid() -> None:
    for config in (CONFIG, SessionConfig(instructions="x", input_format=PCMU, output_format=PCMU)):
        events = [
            openai_realtime.session_update(config, "gpt-realtime"),
            openai_realtime.audio_append(b"\x00\x01" * 160),
            openai_realtime.truncate("item_1", 640),
            openai_realtime.function_call_output("call_1", '{"ok": true}'),
            openai_realtime.response_create(),
            openai_realtime.response_create("Diga olá."),
            {"type": "response.cancel"},
        ]
        for event in events:
            assert problems("realtime", "client", event) == [], event["type"]
        live = [
            openai_live.session_start(config, "gpt-live-1"),
            {"type": openai_live.INPUT_AUDIO_APPEND, "audio": "AAA="},
            openai_live.append(openai_live.COMMENTARY_APPEND, "feito", "del_1"),
            openai_live.append(openai_live.COMMENTARY_APPEND, "diga olá", None),
            openai_live.append(openai_live.THINKING_APPEND, "nada feito", "del_1"),
            {"type": openai_live.SESSION_CLOSE},
        ]
        for event in live:
            assert problems("live", "client", event) == [], event["type"]


def test_the_checker_is_strict() -> None:
    assert problems("realtime", "server", {"type": "response.done", "response": {}}) != []
    extra = {"type": "input_audio_buffer.append", "audio": "AAA=", "volume": 3}
    assert problems("realtime", "client", extra) == ["unknown field ('volume',)"]


def test_the_default_transcription_model_is_current() -> None:
    model = SessionConfig(instructions="").transcription_model
    assert model == load_settings({}).realtime_transcription_model
    literal = typing.get_args(AudioTranscription.model_fields["model"].annotation)[1]
    assert model in typing.get_args(literal)
    deprecated = (AudioTranscription.model_fields["model"].description or "").split(
        "Deprecated values:"
    )[-1]
    assert f'"{model}"' not in deprecated


async def test_a_whole_realtime_session_is_valid_and_complete() -> None:
    script = [
        Say("Olá", ms=200),
        CallerSpeechStarted(),
        AwaitClient("conversation.item.truncate"),
        CallerSpeechStopped(),
        CallerSaid("quero o suporte"),
        CallTool("request_handoff", {"destination": "Suporte", "reason": "x"}, call_id="c1"),
        AwaitToolOutput(),
        Close(),
    ]
    with _frames() as seen:
        async with ScriptedRealtime(script) as url:
            endpoint = RealtimeEndpoint(url=url, api_key="sk-test")
            async with open_openai_realtime(endpoint, CONFIG) as ai:
                item = None
                async for event in ai.events():
                    item = getattr(event, "item_id", None) or item
                    if isinstance(event, SpeechStarted):
                        await ai.truncate("item_1", 100)
                    if isinstance(event, TranscriptDone) and event.role == "caller":
                        await ai.send_tool_result("c1", '{"ok": true}')
                    if isinstance(event, Closed):
                        break
    bad = [(d, f.get("type"), problems(p, d, f)) for p, d, f in seen if problems(p, d, f)]
    assert bad == []
    sent = {f.get("type") for _p, d, f in seen if d == "server"}
    assert {
        "conversation.item.added", "conversation.item.done", "response.content_part.added",
        "response.content_part.done", "response.output_item.done",
        "input_audio_buffer.committed", "rate_limits.updated",
    } <= sent  # fmt: skip
