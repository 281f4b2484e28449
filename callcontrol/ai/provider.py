"""The speech-model provider as the call session sees it, independent of any wire format.

A provider is opened with a ``SessionConfig`` by an async context manager (``open_provider``),
takes caller audio and a few commands, and yields *domain* events. Two implementations prove the
shape: ``openai_realtime`` (OpenAI Realtime GA, also Azure OpenAI and Inworld) and ``openai_live``
(OpenAI GPT-Live with client delegation).

Failure contract, so a call is never left in dead air:
- opening raises ``ProviderUnavailable`` when the websocket cannot be established;
- once open, nothing raises into the call: protocol errors become ``ProviderError`` events and the
  end of the connection becomes exactly one ``Closed`` event, after which the iterator stops;
- commands sent after the connection is gone are dropped (the ``Closed`` event already told the
  session). Silence (no event for N seconds) is the session's to time, with a trio deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, Protocol

import attrs

from callcontrol.media.codecs import PCM24K, AudioFormat

Role = Literal["caller", "assistant"]


# --- configuration -----------------------------------------------------------------------------


@attrs.frozen
class VadSettings:
    """Server voice-activity detection; the defaults are OpenAI's documented ones."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True


@attrs.frozen
class ToolSpec:
    """A function the model may call: JSON-schema ``parameters``."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@attrs.frozen
class SessionConfig:
    instructions: str
    voice: str = "marin"
    language: str = "pt-BR"
    tools: tuple[ToolSpec, ...] = ()
    input_format: AudioFormat = PCM24K
    output_format: AudioFormat = PCM24K
    vad: VadSettings = VadSettings()
    # the openai package marks gpt-4o-mini-transcribe deprecated (shutdown 2027-02-26)
    transcription_model: str | None = "gpt-transcribe"


# --- domain events -----------------------------------------------------------------------------


@attrs.frozen
class AudioDelta:
    """Model speech, in the session's output format, for assistant item ``item_id``."""

    item_id: str
    pcm: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen
class AudioDone:
    item_id: str


@attrs.frozen
class SpeechStarted:
    """The caller started talking: stop playback now, then truncate what was not heard."""

    audio_start_ms: int = 0
    item_id: str | None = None


@attrs.frozen
class SpeechStopped:
    audio_end_ms: int = 0
    item_id: str | None = None


@attrs.frozen
class ToolCall:
    """The model wants a tool run. ``arguments`` is ``{}`` when ``raw_arguments`` is not a JSON
    object; validate with ``callcontrol.ai.tools.parse_tool_call(name, raw_arguments)``."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]
    raw_arguments: str = ""


@attrs.frozen
class TranscriptDelta:
    role: Role
    text: str
    item_id: str | None = None


@attrs.frozen
class TranscriptDone:
    role: Role
    text: str
    item_id: str | None = None


@attrs.frozen
class ResponseDone:
    """``status``: completed, cancelled, failed or incomplete."""

    status: str
    response_id: str | None = None


@attrs.frozen
class ProviderError:
    """An error the provider reported. ``fatal`` means the session cannot continue."""

    code: str
    message: str
    fatal: bool = False


@attrs.frozen
class Closed:
    """The connection ended; always the last event."""

    reason: str
    code: int | None = None


ProviderEvent = (
    AudioDelta
    | AudioDone
    | SpeechStarted
    | SpeechStopped
    | ToolCall
    | TranscriptDelta
    | TranscriptDone
    | ResponseDone
    | ProviderError
    | Closed
)


class ProviderUnavailable(Exception):
    """The provider could not be reached or refused the connection (the call falls back)."""


# --- the interface -----------------------------------------------------------------------------


class RealtimeProvider(Protocol):
    """What the call session drives. All methods are safe to call after the connection closed."""

    async def send_audio(self, audio: bytes) -> None:
        """Caller audio in the session's ``input_format`` (send 20–100 ms at a time)."""

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Barge-in: the caller heard only ``audio_end_ms`` of assistant item ``item_id``."""

    async def send_tool_result(self, call_id: str, output: str) -> None:
        """Return a tool's output (a JSON string) and let the model continue from it."""

    async def say(self, text: str) -> None:
        """Make the model speak now, following ``text`` (an instruction or a sentence)."""

    async def close(self) -> None:
        """Close politely; the event iterator then ends with ``Closed``."""

    def events(self) -> AsyncIterator[ProviderEvent]:
        """The domain events, in order, ending with one ``Closed``."""
        ...
