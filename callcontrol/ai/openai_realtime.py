"""OpenAI Realtime (GA) over trio-websocket; the same wire format serves Azure OpenAI and Inworld.

Two halves, as in h11: ``session_update``/``RealtimeTranslator`` are pure (dicts in, dicts or
domain events out) and carry all protocol knowledge; ``OpenAIRealtime`` is the thin trio shell.

Server events used (GA names; protocols.md §4):

| server event                                           | domain event         |
|--------------------------------------------------------|----------------------|
| response.output_audio.delta                            | AudioDelta           |
| response.output_audio.done                             | AudioDone            |
| input_audio_buffer.speech_started / .speech_stopped    | SpeechStarted/Stopped|
| response.function_call_arguments.done                  | ToolCall             |
| response.output_audio_transcript.delta / .done         | Transcript* assistant|
| response.output_text.delta / .done                     | Transcript* assistant|
| conversation.item.input_audio_transcription.delta /    | Transcript* caller   |
|   .completed                                           |                      |
| response.done                                          | ResponseDone         |
| error                                                  | ProviderError        |
| (everything else: session.*, rate_limits.*, items)     | ignored              |
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from callcontrol.ai import _wsbase
from callcontrol.ai.provider import (
    AudioDelta,
    AudioDone,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDelta,
    TranscriptDone,
)
from callcontrol.config import Settings
from callcontrol.logs import get_logger
from callcontrol.media.codecs import AudioFormat

AuthStyle = Literal["bearer", "api-key", "none"]

# Errors after which the session cannot go on (the rest are recoverable per the API docs).
FATAL_ERROR_CODES = frozenset(
    {"session_expired", "invalid_api_key", "insufficient_quota", "model_not_found"}
)
FATAL_ERROR_TYPES = frozenset({"authentication_error", "permission_error"})


@attrs.frozen
class RealtimeEndpoint:
    """Where and how to connect. ``auth``: ``bearer`` (OpenAI, Inworld), ``api-key`` (Azure)."""

    url: str = "wss://api.openai.com/v1/realtime"
    model: str = "gpt-realtime"
    api_key: str | None = attrs.field(default=None, repr=False)
    auth: AuthStyle = "bearer"
    connect_timeout: float = 10.0
    opener: _wsbase.StreamOpener | None = attrs.field(default=None, repr=False, eq=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeEndpoint:
        azure = ".openai.azure.com" in settings.realtime_url
        return cls(
            url=settings.realtime_url,
            model=settings.realtime_model,
            api_key=settings.openai_api_key,
            auth="api-key" if azure else "bearer",
        )

    def full_url(self) -> str:
        """The URL with ``model=`` added unless the URL already names one (or a deployment)."""
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        if "model" not in query and "deployment" not in query:
            query["model"] = self.model
        return urlunsplit(parts._replace(query=urlencode(query)))

    def headers(self) -> list[tuple[str, str]]:
        if self.api_key is None or self.auth == "none":
            return []
        if self.auth == "api-key":
            return [("api-key", self.api_key)]
        return [("Authorization", f"Bearer {self.api_key}")]


# --- sans-IO: client events --------------------------------------------------------------------


def audio_format_json(fmt: AudioFormat) -> dict[str, Any]:
    if fmt.encoding == "pcm":
        return {"type": "audio/pcm", "rate": fmt.rate}
    return {"type": f"audio/{fmt.encoding}"}


def session_update(config: SessionConfig, model: str) -> dict[str, Any]:
    vad = config.vad
    turn_detection: dict[str, Any] = {
        "type": "server_vad",
        "threshold": vad.threshold,
        "prefix_padding_ms": vad.prefix_padding_ms,
        "silence_duration_ms": vad.silence_duration_ms,
        "create_response": vad.create_response,
        "interrupt_response": vad.interrupt_response,
    }
    if vad.idle_timeout_ms is not None:
        turn_detection["idle_timeout_ms"] = vad.idle_timeout_ms
    audio_input: dict[str, Any] = {
        "format": audio_format_json(config.input_format),
        "turn_detection": turn_detection,
    }
    if config.transcription_model:
        audio_input["transcription"] = {
            "model": config.transcription_model,
            "language": config.language.split("-")[0],
        }
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": model,
            "output_modalities": ["audio"],
            "instructions": config.instructions,
            "audio": {
                "input": audio_input,
                "output": {
                    "format": audio_format_json(config.output_format),
                    "voice": config.voice,
                },
            },
            "tools": [
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters),
                }
                for tool in config.tools
            ],
            "tool_choice": "auto",
        },
    }


def audio_append(audio: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode("ascii")}


def truncate(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": max(0, int(audio_end_ms)),
    }


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def response_create(instructions: str | None = None) -> dict[str, Any]:
    if instructions is None:
        return {"type": "response.create"}
    return {"type": "response.create", "response": {"instructions": instructions}}


# --- sans-IO: server events --------------------------------------------------------------------


class RealtimeTranslator:
    """Server event dict → domain events. Keeps the one piece of state the protocol needs: the
    tool name per call_id, for servers (beta, some compatibles) whose ``.done`` omits ``name``."""

    def __init__(self) -> None:
        self._call_names: dict[str, str] = {}

    def translate(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        handler = _HANDLERS.get(str(msg.get("type")))
        if handler is None:
            self._remember_call_name(msg)
            return []
        return handler(self, msg)

    def _remember_call_name(self, msg: Mapping[str, Any]) -> None:
        item = msg.get("item")
        if isinstance(item, Mapping) and item.get("type") == "function_call":
            self._call_names[str(item.get("call_id"))] = str(item.get("name"))

    def _audio_delta(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        return [AudioDelta(str(msg["item_id"]), base64.b64decode(msg["delta"], validate=True))]

    def _audio_done(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        return [AudioDone(str(msg["item_id"]))]

    def _speech_started(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        return [SpeechStarted(int(msg.get("audio_start_ms", 0)), msg.get("item_id"))]

    def _speech_stopped(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        return [SpeechStopped(int(msg.get("audio_end_ms", 0)), msg.get("item_id"))]

    def _function_call(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        call_id = str(msg["call_id"])
        name = msg.get("name") or self._call_names.get(call_id, "")
        raw = msg.get("arguments")
        raw = raw if isinstance(raw, str) else json.dumps(raw)
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        arguments = parsed if isinstance(parsed, dict) else {}
        return [ToolCall(call_id, str(name), arguments, raw)]

    def _assistant_delta(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        return [TranscriptDelta("assistant", str(msg["delta"]), msg.get("item_id"))]

    def _assistant_done(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        text = msg.get("transcript", msg.get("text", ""))
        return [TranscriptDone("assistant", str(text), msg.get("item_id"))]

    def _caller_delta(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        return [TranscriptDelta("caller", str(msg["delta"]), msg.get("item_id"))]

    def _caller_done(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        return [TranscriptDone("caller", str(msg["transcript"]), msg.get("item_id"))]

    def _response_done(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        response = msg.get("response") or {}
        return [ResponseDone(str(response.get("status", "completed")), response.get("id"))]

    def _error(self, msg: Mapping[str, Any]) -> list[ProviderEvent]:
        error = msg.get("error") or {}
        code = str(error.get("code") or error.get("type") or "unknown")
        fatal = code in FATAL_ERROR_CODES or error.get("type") in FATAL_ERROR_TYPES
        return [ProviderError(code, str(error.get("message", "")), fatal)]


_HANDLERS = {
    "response.output_audio.delta": RealtimeTranslator._audio_delta,
    "response.output_audio.done": RealtimeTranslator._audio_done,
    "input_audio_buffer.speech_started": RealtimeTranslator._speech_started,
    "input_audio_buffer.speech_stopped": RealtimeTranslator._speech_stopped,
    "response.function_call_arguments.done": RealtimeTranslator._function_call,
    "response.output_audio_transcript.delta": RealtimeTranslator._assistant_delta,
    "response.output_audio_transcript.done": RealtimeTranslator._assistant_done,
    "response.output_text.delta": RealtimeTranslator._assistant_delta,
    "response.output_text.done": RealtimeTranslator._assistant_done,
    "conversation.item.input_audio_transcription.delta": RealtimeTranslator._caller_delta,
    "conversation.item.input_audio_transcription.completed": RealtimeTranslator._caller_done,
    "response.done": RealtimeTranslator._response_done,
    "error": RealtimeTranslator._error,
}


# --- the trio shell ----------------------------------------------------------------------------


class OpenAIRealtime(_wsbase.JsonWebsocketProvider):
    """A ``RealtimeProvider`` on the Realtime GA protocol. Open it with ``open_openai_realtime``."""

    def __init__(self, ws: Any, config: SessionConfig, log: Any) -> None:
        super().__init__(ws, log)
        self.config = config
        self._translator = RealtimeTranslator()

    def translate(self, message: dict[str, Any]) -> list[ProviderEvent]:
        events = self._translator.translate(message)
        for event in events:
            if isinstance(event, ProviderError):
                self._log.warning("ai.error", code=event.code, message=event.message)
        return events

    async def send_audio(self, audio: bytes) -> None:
        if audio:
            await self.send_event(audio_append(audio))

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        self._log.info("ai.truncate", item_id=item_id, audio_end_ms=audio_end_ms)
        if not self.config.vad.interrupt_response:
            await self.send_event({"type": "response.cancel"})
        await self.send_event(truncate(item_id, audio_end_ms))

    async def send_tool_result(self, call_id: str, output: str) -> None:
        await self.send_event(function_call_output(call_id, output))
        await self.send_event(response_create())

    async def say(self, text: str) -> None:
        await self.send_event(response_create(text))


@asynccontextmanager
async def open_openai_realtime(
    endpoint: RealtimeEndpoint, config: SessionConfig, **log_context: Any
) -> AsyncIterator[OpenAIRealtime]:
    """Connect, configure the session (``session.update``) and run the reader until exit.

    Raises ``ProviderUnavailable`` if the connection cannot be opened.
    """
    log = get_logger("callcontrol.ai.realtime", model=endpoint.model, **log_context)
    url = endpoint.full_url()
    async with (
        _wsbase.connect(url, endpoint.headers(), connect_timeout=endpoint.connect_timeout,
                        opener=endpoint.opener) as ws,
        _wsbase.reader_nursery() as nursery,
    ):
        log.info("ai.connected", url=url.split("?", 1)[0])
        client = OpenAIRealtime(ws, config, log)
        await client.send_event(session_update(config, endpoint.model))
        nursery.start_soon(client.pump)
        yield client
