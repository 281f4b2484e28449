"""The per-call transcript: both sides, timestamps from the trio clock, JSON for storage."""

from __future__ import annotations

import json

import trio
import trio.testing

from callcontrol.ai.provider import ToolCall, TranscriptDelta, TranscriptDone
from callcontrol.ai.transcript import Transcript


async def test_transcript_keeps_both_sides_with_clock_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transcript = Transcript()
    await trio.sleep(1.5)
    transcript.on_event(TranscriptDelta("assistant", "Olá,"))
    transcript.on_event(TranscriptDelta("assistant", " em que posso ajudar?"))
    await trio.sleep(2)
    transcript.on_event(TranscriptDone("assistant", "Olá, em que posso ajudar?"))
    transcript.on_event(TranscriptDone("caller", "Quero falar com o suporte"))
    transcript.on_event(ToolCall("c1", "request_handoff", {}, '{"destination":"Suporte"}'))
    await trio.sleep(1)
    # a provider with deltas only (GPT-Live): the line commits when the other side speaks
    transcript.on_event(TranscriptDelta("caller", "obrigado"))
    transcript.on_event(TranscriptDelta("assistant", "de nada"))

    lines = json.loads(transcript.to_json())
    assert [(line["t"], line["role"], line["text"]) for line in lines] == [
        (1.5, "assistant", "Olá, em que posso ajudar?"),
        (3.5, "caller", "Quero falar com o suporte"),
        (3.5, "tool", "request_handoff"),
        (4.5, "caller", "obrigado"),
        (4.5, "assistant", "de nada"),
    ]
    assert lines[2]["data"]["arguments"] == '{"destination":"Suporte"}'
