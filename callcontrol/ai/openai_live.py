"""OpenAI GPT-Live (``/v1/live/sessions``) with our tools through *client delegation*.

GPT-Live runs the spoken conversation and, when work is needed, emits
``session.delegation.created``. Under client delegation that event carries only an id (no task
text, no tool name), so a ``DelegationResolver`` — by default a Responses API call given our tool
schemas and the conversation so far — picks the tool and its arguments. The session sees an
ordinary ``ToolCall`` (``call_id`` = delegation id); its result goes back as
``session.commentary.append``, which GPT-Live speaks.

Differences from Realtime the session should know: one audio format for both directions; no VAD
events (GPT-Live is full duplex and stops talking by itself when talked over), so there is no
``SpeechStarted`` and ``truncate`` is a no-op; transcripts arrive as deltas only.

Wire names, in one place. Provenance: V = found in the API reference (OpenAI's Live reference /
the SDK-generated types for ``LiveClientEvent``/``ServerEvent``, Azure's gpt-live-reference) via
the docs search on 2026-11-25; I = inferred from protocols.md §8 and third-party integrations.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import attrs
import httpx
import trio
from trio_websocket import ConnectionClosed

from callcontrol.ai import _wsbase
from callcontrol.ai.openai_realtime import FATAL_ERROR_CODES, FATAL_ERROR_TYPES
from callcontrol.ai.provider import (
    AudioDelta,
    ProviderError,
    ProviderEvent,
    ProviderUnavailable,
    Role,
    SessionConfig,
    ToolCall,
    ToolSpec,
    TranscriptDelta,
)
from callcontrol.config import Settings
from callcontrol.logs import get_logger
from callcontrol.media.codecs import AudioFormat

# client → server
SESSION_START = "session.start"  # V  {session: {model, instructions, audio, delegation}}
INPUT_AUDIO_APPEND = "session.input_audio.append"  # V  {audio: base64}
COMMENTARY_APPEND = "session.commentary.append"  # V  {delegation_id, content}: spoken
THINKING_APPEND = "session.thinking.append"  # V  {delegation_id, content}: silent context
SESSION_CLOSE = "session.close"  # V  (listed in the client event union)
# server → client
SESSION_STARTED = "session.started"  # V
OUTPUT_AUDIO_DELTA = "session.output_audio.delta"  # V  {delta: base64}
OUTPUT_TRANSCRIPT_DELTA = "session.output_transcript.delta"  # V  {delta}
INPUT_TRANSCRIPT_DELTA = "session.input_transcript.delta"  # V  {delta}
DELEGATION_CREATED = "session.delegation.created"  # V  {delegation: {id, target}, offset_ms}
SESSION_CLOSED = "session.closed"  # V  {reason}
ERROR = "error"  # V  {error: {type, code, message}}
# Inferred (I): ``session.commentary.append`` with ``delegation_id: null`` makes the model speak
# outside a delegation (used for ``say``); the docs show null only for instructions/thinking.

DEFAULT_URL = "wss://api.openai.com/v1/live/sessions"
DEFAULT_MODEL = "gpt-live-1"
MAX_APPEND_CHARS = 1500  # appends are capped at 500 tokens


@attrs.frozen
class LiveEndpoint:
    url: str = DEFAULT_URL
    model: str = DEFAULT_MODEL
    api_key: str | None = attrs.field(default=None, repr=False)
    auth_header: str = "Authorization"  # Azure AI Foundry: "api-key"
    connect_timeout: float = 10.0
    opener: _wsbase.StreamOpener | None = attrs.field(default=None, repr=False, eq=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveEndpoint:
        url = settings.realtime_url
        if url.rstrip("/").endswith("/realtime"):
            url = url.rstrip("/").removesuffix("/realtime") + "/live/sessions"
        model = settings.realtime_model
        if model.startswith("gpt-realtime"):
            model = DEFAULT_MODEL
        azure = ".azure.com" in url
        return cls(url, model, settings.openai_api_key, "api-key" if azure else "Authorization")

    def headers(self) -> list[tuple[str, str]]:
        if self.api_key is None:
            return []
        value = self.api_key if self.auth_header == "api-key" else f"Bearer {self.api_key}"
        return [(self.auth_header, value)]


# --- delegation --------------------------------------------------------------------------------


@attrs.frozen
class ResolvedCall:
    name: str
    raw_arguments: str


class DelegationResolver(Protocol):
    async def resolve(
        self, conversation: Sequence[tuple[Role, str]], tools: Sequence[ToolSpec]
    ) -> ResolvedCall | None:
        """Which tool (and arguments) the delegated work needs, or ``None``."""


@attrs.frozen
class ResponsesResolver:
    """Asks a Responses API model to choose one of our tools for the conversation so far."""

    api_key: str | None = attrs.field(repr=False)
    model: str = "gpt-5-mini"
    base_url: str = "https://api.openai.com/v1"
    timeout: float = 8.0
    transport: httpx.AsyncBaseTransport | None = None

    async def resolve(
        self, conversation: Sequence[tuple[Role, str]], tools: Sequence[ToolSpec]
    ) -> ResolvedCall | None:
        body = {
            "model": self.model,
            "instructions": (
                "You are the back office of a phone secretary. The voice model delegated a task. "
                "Choose the one tool that does what the caller asked, with its arguments."
            ),
            "input": [
                {"role": "user" if role == "caller" else "assistant", "content": text}
                for role, text in conversation
            ],
            "tools": [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                }
                for t in tools
            ],
            "tool_choice": "required",
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=self.transport
        ) as client:
            response = await client.post("/responses", json=body, headers=headers)
            response.raise_for_status()
        for item in response.json().get("output", []):
            if item.get("type") == "function_call":
                return ResolvedCall(str(item["name"]), str(item.get("arguments", "{}")))
        return None


# --- sans-IO -----------------------------------------------------------------------------------


def _format(fmt: AudioFormat) -> dict[str, Any]:
    if fmt.encoding == "pcm":
        if fmt.rate not in (16000, 24000):
            raise ValueError("GPT-Live takes PCM at 16000 or 24000 Hz")
        return {"type": "audio/pcm", "rate": fmt.rate}
    return {"type": f"audio/{fmt.encoding}", "rate": 8000}


def session_start(config: SessionConfig, model: str) -> dict[str, Any]:
    if config.input_format != config.output_format:
        raise ValueError("GPT-Live uses one audio format for both directions")
    return {
        "type": SESSION_START,
        "session": {
            "model": model,
            "instructions": config.instructions,
            "audio": {"format": _format(config.input_format), "output": {"voice": config.voice}},
            "delegation": {"type": "client"},
        },
    }


def append(kind: str, content: str, delegation_id: str | None) -> dict[str, Any]:
    return {"type": kind, "delegation_id": delegation_id, "content": content[:MAX_APPEND_CHARS]}


# --- the trio shell ----------------------------------------------------------------------------


class OpenAILive(_wsbase.JsonWebsocketProvider):
    def __init__(
        self,
        ws: Any,
        config: SessionConfig,
        resolver: DelegationResolver,
        nursery: trio.Nursery,
        log: Any,
    ) -> None:
        super().__init__(ws, log)
        self.config = config
        self._resolver = resolver
        self._nursery = nursery
        self.conversation: list[tuple[Role, str]] = []
        self._turn = 0
        self._last_role: Role | None = None

    def translate(self, message: dict[str, Any]) -> list[ProviderEvent]:
        kind = message.get("type")
        if kind == OUTPUT_AUDIO_DELTA:
            if self._last_role != "assistant":
                self._turn += 1  # GPT-Live has no items; a new assistant turn starts here
                self._last_role = "assistant"
            return [AudioDelta(f"live_{self._turn}", base64.b64decode(message["delta"]))]
        if kind in (OUTPUT_TRANSCRIPT_DELTA, INPUT_TRANSCRIPT_DELTA):
            role: Role = "assistant" if kind == OUTPUT_TRANSCRIPT_DELTA else "caller"
            self._note(role, str(message["delta"]))
            return [TranscriptDelta(role, str(message["delta"]))]
        if kind == DELEGATION_CREATED:
            delegation = message["delegation"]
            if delegation.get("target", "client") == "client":
                self._nursery.start_soon(self._resolve, str(delegation["id"]))
            return []
        if kind == SESSION_CLOSED:
            self.server_close_reason = str(message.get("reason") or "closed")
            return []
        if kind == ERROR:
            error = message.get("error") or {}
            code = str(error.get("code") or error.get("type") or "unknown")
            fatal = code in FATAL_ERROR_CODES or error.get("type") in FATAL_ERROR_TYPES
            self._log.warning("ai.error", code=code, message=error.get("message"))
            return [ProviderError(code, str(error.get("message", "")), fatal)]
        return []

    def _note(self, role: Role, text: str) -> None:
        if self.conversation and self.conversation[-1][0] == role:
            self.conversation[-1] = (role, self.conversation[-1][1] + text)
        else:
            self.conversation.append((role, text))
        if role == "caller":
            self._last_role = "caller"

    async def _resolve(self, delegation_id: str) -> None:
        tap = _wsbase.wire_tap.get()
        try:
            call = await self._resolver.resolve(list(self.conversation), self.config.tools)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self._log.warning("ai.delegation_failed", delegation_id=delegation_id, error=repr(exc))
            call = None
            if tap is not None:
                tap.event("ai_resolve", value=None, error=type(exc).__name__)
        else:
            if tap is not None:  # the result only: the request carried the API key
                tap.event("ai_resolve", value=None if call is None else
                          {"name": call.name, "raw_arguments": call.raw_arguments})  # fmt: skip
        if call is None:
            await self.send_event(
                append(THINKING_APPEND, "No action was taken; ask the caller.", delegation_id)
            )
            await self.emit(ProviderError("delegation_unresolved", delegation_id))
            return
        try:
            parsed = json.loads(call.raw_arguments)
        except ValueError:
            parsed = None
        arguments = parsed if isinstance(parsed, dict) else {}
        await self.emit(ToolCall(delegation_id, call.name, arguments, call.raw_arguments))

    async def send_audio(self, audio: bytes) -> None:
        if audio:
            await self.send_event(
                {"type": INPUT_AUDIO_APPEND, "audio": base64.b64encode(audio).decode("ascii")}
            )

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        self._log.debug("ai.truncate_ignored", item_id=item_id, why="gpt-live handles barge-in")

    async def send_tool_result(self, call_id: str, output: str) -> None:
        await self.send_event(append(COMMENTARY_APPEND, output, call_id))

    async def say(self, text: str) -> None:
        await self.send_event(append(COMMENTARY_APPEND, text, None))

    async def close(self) -> None:
        await self.send_event({"type": SESSION_CLOSE})
        await super().close()


async def _await_started(ws: Any, timeout: float) -> None:
    with trio.move_on_after(timeout):
        raw = await _wsbase.receive_frame(ws)
        message = json.loads(raw)
        if message.get("type") == SESSION_STARTED:
            return
        error = (message.get("error") or {}).get("message", message.get("type"))
        raise ProviderUnavailable(f"GPT-Live refused the session: {error}")
    raise ProviderUnavailable("GPT-Live did not answer session.start in time")


@asynccontextmanager
async def open_openai_live(
    endpoint: LiveEndpoint,
    config: SessionConfig,
    resolver: DelegationResolver | None = None,
    **log_context: Any,
) -> AsyncIterator[OpenAILive]:
    """Connect, ``session.start``, wait for ``session.started``, then run until exit."""
    log = get_logger("callcontrol.ai.live", model=endpoint.model, **log_context)
    resolver = resolver or ResponsesResolver(endpoint.api_key)
    start = session_start(config, endpoint.model)
    async with _wsbase.connect(
        endpoint.url, endpoint.headers(), connect_timeout=endpoint.connect_timeout,
        opener=endpoint.opener,
    ) as ws:
        await _wsbase.send_frame(ws, json.dumps(start, ensure_ascii=False))
        try:
            await _await_started(ws, endpoint.connect_timeout)
        except ConnectionClosed as exc:
            raise ProviderUnavailable(f"GPT-Live closed during start: {exc.reason}") from exc
        log.info("ai.connected", url=endpoint.url.split("?", 1)[0])
        async with _wsbase.reader_nursery() as nursery:
            client = OpenAILive(ws, config, resolver, nursery, log)
            nursery.start_soon(client.pump)
            yield client
