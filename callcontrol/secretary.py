"""The AI secretary on a call: the realtime model, the audio between it and the caller, its
tools, and what happens when any of it fails.

Theory of operation
-------------------
``secretary_flow`` answers, then runs *conversations* until the call is settled. A
conversation opens the media transport (native unicast or mod_audio_stream — the code here
does not know which) and the model's websocket, and runs four tasks in one nursery:

* caller audio → model (not while the caller is on hold);
* model events → the caller: speech is queued and paced by the transport; when the caller
  starts talking over it (server VAD), playback stops at once and the model's item is
  truncated at what was actually heard; tool calls are handled one at a time;
* watchdogs: the model must start answering within ``model_silence_seconds`` whenever the
  caller is waiting for it (after the caller spoke, after a tool result, at the greeting); a
  caller who says nothing for ``caller_silence_seconds`` is asked if they are still there, then
  said goodbye to; a call longer than ``max_call_seconds`` is closed politely;
* the media watch: a transport that loses its stream ends the conversation.

``request_handoff`` lets the model's announcement finish, takes the caller's audio away from
the model, and rings the destination on hold music (``HandoffService``). Success ends the
conversation: the AI leaves and the caller talks to the agent; if the agent hangs up first,
the caller hears a goodbye (default) or gets the AI back (``TRANSFER_AFTER_AGENT_HANGUP=ai``).
A failure gives the caller's audio back to the model and sends it the typed result with the
sentence to say; the destination's fallback (voicemail, hang up, the default destination)
runs once that sentence has been heard, and ``offer_callback`` is left to the conversation.

Failure is never dead air: if the model cannot be reached, errors fatally, closes, or stays
silent while the caller waits, or the media stream dies, the conversation ends as failed and
``ai_failure_fallback`` plays a short prompt at once, then hands the call to the default
destination on hold music, then voicemail or a goodbye.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import attrs
import trio

from callcontrol import generated
from callcontrol.ai.instructions import CallContext as AiCallContext
from callcontrol.ai.instructions import Destination as AiDestination
from callcontrol.ai.instructions import Language, build_instructions, say_instruction
from callcontrol.ai.provider import (
    AudioDelta,
    Closed,
    ProviderError,
    ProviderUnavailable,
    RealtimeProvider,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
)
from callcontrol.ai.tools import (
    TOOLS,
    EndCall,
    RequestHandoff,
    ScheduleCallback,
    TakeMessage,
    ToolArgumentError,
    normalise_phone,
    parse_tool_call,
    schedule_callback_tool,
    tool_output,
)
from callcontrol.call import CallContext
from callcontrol.callbacks.capture import (
    ASAP_WORDS,
    callback_hours,
    callback_time,
    confirmation,
)
from callcontrol.callbacks.domain_settings import for_domain
from callcontrol.callbacks.phone import Kind, PhoneNumber, normalise
from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.whatsapp_delivery import sending_configured
from callcontrol.calls import CallRecord
from callcontrol.db.database import DatabaseUnavailable
from callcontrol.destinations.model import FallbackAction
from callcontrol.esl import CommandError, ConnectionClosed
from callcontrol.handoff.direct import direct_handoff
from callcontrol.handoff.fallback import goodbye_and_hang_up, to_voicemail, wait_while_bridged
from callcontrol.handoff.hold import BreakHold, HoldMusic, ReparkHold
from callcontrol.handoff.service import CallIdentity, HandoffReply
from callcontrol.handoff.whisper import speak_whisper, whisper_text
from callcontrol.media.audio_stream import AudioStreamTransport
from callcontrol.media.codecs import model_format_for_line
from callcontrol.media.transport import MediaTransport, MediaUnavailable
from callcontrol.media.unicast import UnicastTransport, line_format_for
from callcontrol.secretary_settings import SecretarySettings, load_secretary
from callcontrol.services import Services

ANNOUNCE_DRAIN_SECONDS = 10.0
GOODBYE_DRAIN_SECONDS = 15.0

_GREETING = {
    "pt-BR": "Cumprimente o chamador em nome da empresa e pergunte como pode ajudar.",
    "en": "Greet the caller on behalf of the company and ask how you can help.",
}
_OWN_GREETING = {
    "pt-BR": "Cumprimente o chamador com estas palavras e pergunte como pode ajudar: «{greeting}»",
    "en": "Greet the caller with these words and ask how you can help: «{greeting}»",
}
_STILL_THERE = {
    "pt-BR": "O chamador está em silêncio. Pergunte, com gentileza, se ele ainda está na linha.",
    "en": "The caller is silent. Ask politely whether they are still on the line.",
}
_GOODBYE = {
    "pt-BR": "Despeça-se do chamador com cordialidade; a ligação será encerrada.",
    "en": "Say a warm goodbye to the caller; the call will end.",
}
_AGENT_LEFT = {
    "pt-BR": "O atendente desligou, mas o chamador continua na linha. "
    "Pergunte se pode ajudar em mais alguma coisa.",
    "en": "The agent hung up but the caller is still on the line. Ask if you can help further.",
}


def _offer(language: Language) -> str:
    if language == "en":
        return "Offer to take a message or to schedule a callback."
    return "Ofereça anotar um recado ou agendar um retorno da ligação."


@attrs.frozen
class ConversationEnd:
    kind: str  # bridged | ended | ai_failed | media_lost
    reason: str = ""
    reply: HandoffReply | None = None
    reparks_before: int = 0  # ctx.reparks_after_bridge before the handoff that bridged


async def secretary_flow(ctx: CallContext) -> None:
    """The call flow ``serve`` runs for every call (``App.flow``)."""
    services = cast(Services, ctx.services)
    who = CallIdentity.of(ctx.call)
    record = CallRecord(who, services.settings.instance_id)

    async def save_record() -> None:
        # The caller's CHANNEL_HANGUP says why; a call we hung up ourselves ends before that
        # event comes back, so it stores the cause we sent.
        record.hangup_cause = (ctx.hangup_cause or record.hangup_cause
                               or ctx.call.hangup_cause_sent)  # fmt: skip
        if ctx.interrupted_handoff is not None:
            record.handoff = ctx.interrupted_handoff
        if ctx.handing_back and record.outcome in ("caller_hangup", "ai_failed", "error"):
            # serve stopped, or even the no-AI path failed: the dialplan took the call on
            record.outcome = "handed_back"
        await record.save(services.db, ctx.log)

    async def hand_back_target() -> str | None:
        return await services.handoff.hand_back_target(who)

    ctx.hand_back_target = hand_back_target

    ctx.on_cleanup("call.record", save_record, last=True)
    services.metrics.calls_active.inc()
    ctx.on_cleanup("call.metrics", _count_end(services, record), last=True)
    await ctx.call.answer()
    try:
        await _conversations(ctx, services, record)
    except Exception as exc:
        if ctx.caller_gone.is_set() or _is_socket_end(exc):
            raise
        # A bug, a query that failed, anything unforeseen: the caller is still here and must
        # hear something and reach someone. If even this fails, the session hands the call
        # back to the dialplan (``CallContext.handing_back``).
        ctx.log.exception("call.error", reason="unexpected error; taking the no-AI path")
        services.metrics.ai_failures.labels(kind="error").inc()
        record.outcome = "error"
        await ctx.run_cleanups(include_last=False)  # a ringing leg, our media: gone first
        if ctx.interrupted_handoff is not None:
            record.handoff, ctx.interrupted_handoff = ctx.interrupted_handoff, None
        await ctx.call.api("uuid_break", ctx.call.uuid, "all")  # hold music, a prompt
        await no_ai_fallback(ctx, services, record)


def _is_socket_end(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionClosed):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_socket_end(inner) for inner in exc.exceptions)
    return False


async def _conversations(ctx: CallContext, services: Services, record: CallRecord) -> None:
    """The AI conversation(s) of the call, and what follows each."""
    note: str | None = None
    while True:
        end = await converse(ctx, services, record, note)
        ctx.log.info("call.conversation_end", kind=end.kind, reason=end.reason)
        if end.kind == "bridged":
            record.outcome = "bridged"
            if not await wait_while_bridged(
                ctx, (end.reply.destination or "") if end.reply else "", end.reparks_before
            ):
                return  # serve is stopping: the conversation goes on without us
            if services.settings.after_agent_hangup == "ai":
                note = _AGENT_LEFT[_language(services)]
                continue
            await goodbye_and_hang_up(ctx, services.settings.goodbye_prompt)
            return
        if end.kind in ("ai_failed", "media_lost"):
            record.outcome = "ai_failed"
            await ai_failure_fallback(ctx, services, record, end)
        return


def _count_end(services: Services, record: CallRecord) -> Callable[[], Awaitable[None]]:
    async def count() -> None:
        services.metrics.calls_active.dec()
        services.metrics.calls_total.labels(result=record.outcome).inc()

    return count


def _language(services: Services) -> Language:
    return "en" if services.settings.language.startswith("en") else "pt-BR"


async def ai_failure_fallback(
    ctx: CallContext, services: Services, record: CallRecord, end: ConversationEnd
) -> None:
    """Never dead air: a prompt at once, then the default destination on hold music."""
    services.metrics.ai_failures.labels(kind=end.reason.split(":")[0] or end.kind).inc()
    ctx.log.error("call.ai_failed", kind=end.kind, reason=end.reason)
    await no_ai_fallback(ctx, services, record)


async def no_ai_fallback(ctx: CallContext, services: Services, record: CallRecord) -> None:
    """With nobody to talk to the caller: the fallback prompt, the default destination on
    hold music, then its fallback (voicemail, a DTMF callback offer, goodbye)."""
    try:
        prompt = await ctx.call.conn.execute("playback", services.settings.fallback_prompt)
        with trio.move_on_after(5):
            await prompt.completed()
        hold = BreakHold(ctx.call, services.settings.transfer_music_on_hold)

        def note(reply: HandoffReply) -> None:
            record.handoff = reply
            if reply.success:
                record.outcome = "bridged"

        async def offer() -> bool:
            return await offer_callback_by_dtmf(ctx, services, record)

        result = await direct_handoff(ctx, services.handoff, "", hold, on_reply=note,
                                      goodbye_prompt=services.settings.goodbye_prompt,
                                      before_goodbye=offer)  # fmt: skip
    except (CommandError, DatabaseUnavailable) as exc:
        ctx.log.error("call.fallback_failed", error=repr(exc))
        await goodbye_and_hang_up(ctx, services.settings.goodbye_prompt)
        return
    if result.final == "voicemail":
        record.outcome = "voicemail"


DTMF_VARIABLE = "callcontrol_callback_digit"


async def offer_callback_by_dtmf(
    ctx: CallContext, services: Services, record: CallRecord
) -> bool:
    """With no AI and nobody free: "digite 1 para pedir retorno" (a recorded prompt set in
    CALLCONTROL_CALLBACK_DTMF_PROMPT). A 1 stores a callback request for the caller's number,
    then a goodbye. Returns whether the caller asked for one."""
    prompt = services.settings.callback_dtmf_prompt
    who = CallIdentity.of(ctx.call)
    phone = normalise_phone(who.caller_number or "") if who.caller_number else None
    if not prompt or phone is None:
        ctx.log.info("call.callback_dtmf", offered=False,
                     reason="no prompt configured" if not prompt else "no usable caller number")
        return False
    execution = await ctx.call.conn.execute(
        "play_and_get_digits", f"1 1 2 5000 # {prompt} silence_stream://250 {DTMF_VARIABLE} [12]"
    )
    done = await execution.completed()
    digit = done.get(f"variable_{DTMF_VARIABLE}")
    ctx.log.info("call.callback_dtmf", offered=True, digit=digit)
    if digit != "1":
        return False
    last = record.handoff
    hours = await callback_hours(services.directory, who, last)
    own = await for_domain(services.db, services.settings, who.domain_uuid)
    when = callback_time(ASAP_WORDS, generated.now(own.tz), own, hours)
    request = CallbackRequest(
        "callback", phone, caller_name=who.caller_name, reason="AI unavailable; asked by DTMF",
        scheduled_at=when.scheduled_at, time_understood=when.understood, expires_at=when.expires_at,
        min_interval_minutes=own.callback_min_interval_minutes,
        max_attempts=1 + own.callback_retry_attempts, call_uuid=who.call_uuid,
        domain_uuid=str(who.domain_uuid) if who.domain_uuid else None,
        secretary_uuid=str(who.secretary_uuid) if who.secretary_uuid else None,
        destination_uuid=last.destination_uuid if last else None,
        destination_name=last.destination if last else None,
    )
    await save_request(services.db, request,
                       helpdesk=bool(services.settings.omniplay_api_url))
    record.outcome = "callback_requested"
    await goodbye_and_hang_up(ctx, services.settings.goodbye_prompt)
    return True


async def converse(
    ctx: CallContext, services: Services, record: CallRecord, note: str | None
) -> ConversationEnd:
    """One AI conversation: open media and the model, talk until something ends it."""
    try:
        async with open_media(ctx, services) as media:
            await media.start()
            secretary, config = await session_config(ctx, services, media)
            async with services.open_provider(services.settings, config,
                                              call_uuid=ctx.call.uuid) as ai:  # fmt: skip
                conversation = Conversation(ctx, services, media, ai, record)
                return await conversation.run(note or _greeting(secretary, services))
    except (MediaUnavailable, ProviderUnavailable, BaseExceptionGroup) as exc:
        # The transport's nursery wraps what is raised inside it in an exception group.
        cause = _only(exc, (MediaUnavailable, ProviderUnavailable))
        if isinstance(cause, MediaUnavailable):
            return ConversationEnd("media_lost", f"media_unavailable: {cause}")
        return ConversationEnd("ai_failed", f"provider_unavailable: {cause}")


def _only(exc: BaseException, kinds: tuple[type[Exception], ...]) -> Exception:
    """The one expected error inside (possibly nested) groups; anything else is re-raised."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _only(exc.exceptions[0], kinds)
    raise exc


@asynccontextmanager
async def open_media(ctx: CallContext, services: Services) -> AsyncIterator[MediaTransport]:
    call = ctx.call
    lost = services.media_lost_after
    if services.unicast_ports is not None:
        line, _native = line_format_for(call.channel)
        unicast = UnicastTransport(call, services.unicast_ports,
                                   model_format=model_format_for_line(line),
                                   batched=services.settings.media_engine == "batched",
                                   lost_after=lost, log=ctx.log)  # fmt: skip
        async with unicast:
            yield unicast
    else:
        assert services.audio_streams is not None
        stream = AudioStreamTransport(call, services.audio_streams, lost_after=lost,
                                      batched=services.settings.media_engine == "batched",
                                      log=ctx.log)  # fmt: skip
        async with stream:
            yield stream


async def session_config(
    ctx: CallContext, services: Services, media: MediaTransport
) -> tuple[SecretarySettings, SessionConfig]:
    """The call's secretary and the model session it runs (instructions, tools, voice)."""
    who = CallIdentity.of(ctx.call)
    settings = services.settings
    destinations: tuple[AiDestination, ...] = ()
    secretary = SecretarySettings()
    try:
        if who.domain_uuid is not None:
            found = await services.directory.destinations(who.domain_uuid, who.secretary_uuid)
            destinations = tuple(AiDestination(d.name, d.department, d.description)
                                 for d in found)  # fmt: skip
        secretary = await load_secretary(services.db, who.domain_uuid, who.secretary_uuid)
    except DatabaseUnavailable as exc:
        # The AI can still talk and take a message; the handoff will report the outage.
        ctx.log.warning("call.directory_unavailable", error=str(exc))
    ctx.log.info("call.secretary", source=secretary.source,
                 secretary_uuid=str(who.secretary_uuid) if who.secretary_uuid else None,
                 destinations=len(destinations))  # fmt: skip
    instructions = build_instructions(
        AiCallContext(
            now=generated.now(settings.tz),
            timezone=settings.tz,
            destinations=destinations,
            caller_number=who.caller_number,
            caller_name=who.caller_name,
            company_name=secretary.company_name,
            secretary_prompt=secretary.instructions,
            language=_language(services),
        )
    )
    callback_tool = schedule_callback_tool(sending_configured(settings))
    tools = tuple(callback_tool if tool.name == callback_tool.name else tool for tool in TOOLS
                  if settings.callback_enabled or tool.name != callback_tool.name)  # fmt: skip
    if secretary.transfer_enabled is False:
        tools = tuple(tool for tool in tools if tool.name != "request_handoff")
    extra: dict[str, Any] = {"voice": secretary.voice} if secretary.voice else {}
    return secretary, services.session_config(
        instructions=instructions,
        tools=tools,
        input_format=media.model_format,
        output_format=media.model_format,
        **extra,
    )


def _greeting(secretary: SecretarySettings, services: Services) -> str:
    language = _language(services)
    if not secretary.greeting:
        return _GREETING[language]
    return _OWN_GREETING[language].format(greeting=secretary.greeting.strip())


class Conversation:
    """One model session on the call (see the module's theory of operation)."""

    def __init__(
        self,
        ctx: CallContext,
        services: Services,
        media: MediaTransport,
        ai: RealtimeProvider,
        record: CallRecord,
    ) -> None:
        self.ctx = ctx
        self.log = ctx.log
        self.services = services
        self.settings = services.settings
        self.media = media
        self.ai = ai
        self.record = record
        self.who = record.who  # read once from the connect data, for every tool
        self.on_hold = False
        self.current_item: str | None = None
        self.model_deadline = math.inf
        self.caller_deadline = math.inf
        self.after_response: Callable[[], Awaitable[None]] | None = None
        self.end: ConversationEnd | None = None
        self._ended = trio.Event()
        self._deadlines_changed = trio.Event()
        self._tool_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self.asked_still_there = False
        self.callback_request_uuid: str | None = None  # a corrected callback replaces it

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, note: str | None = None) -> ConversationEnd:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._caller_audio)
            nursery.start_soon(self._model_events)
            nursery.start_soon(self._watchdogs)
            nursery.start_soon(self._media_watch)
            nursery.start_soon(self._max_duration)
            await self._say(note or _GREETING[_language(self.services)])
            await self._ended.wait()
            nursery.cancel_scope.cancel()
        assert self.end is not None
        if self.end.kind != "ai_failed":
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await self.ai.close()
        return self.end

    def finish(
        self, kind: str, reason: str = "", reply: HandoffReply | None = None, reparks: int = 0
    ) -> None:
        if self.end is None:
            self.end = ConversationEnd(kind, reason, reply, reparks)
            self._ended.set()

    def _set_model_deadline(self, when: float) -> None:
        self.model_deadline = when
        self._poke()

    def _set_caller_deadline(self, when: float) -> None:
        self.caller_deadline = when
        self._poke()

    def _poke(self) -> None:
        self._deadlines_changed.set()
        self._deadlines_changed = trio.Event()

    async def _say(self, text: str) -> None:
        """Make the model speak ``text``; from now on the caller is waiting for it."""
        self._set_model_deadline(trio.current_time() + self.settings.model_silence_seconds)
        await self.ai.say(say_instruction(text, _language(self.services)))

    # -- tasks ---------------------------------------------------------------------------

    async def _caller_audio(self) -> None:
        async for frame in self.media.frames():
            if not self.on_hold:
                await self.ai.send_audio(frame)

    async def _media_watch(self) -> None:
        await self.media.media_lost.wait()
        self.finish("media_lost", f"media_lost: {getattr(self.media, 'lost_reason', '')}")

    async def _max_duration(self) -> None:
        await trio.sleep(self.settings.max_call_seconds)
        self.log.info("call.max_duration", seconds=self.settings.max_call_seconds)
        self.after_response = self._hang_up
        await self._say(_GOODBYE[_language(self.services)])

    async def _watchdogs(self) -> None:
        while True:
            deadline = min(self.model_deadline, self.caller_deadline)
            with trio.move_on_at(deadline):
                await self._deadlines_changed.wait()
                continue
            now = trio.current_time()
            if self.model_deadline <= now:
                self.log.error("ai.silent", seconds=self.settings.model_silence_seconds)
                self.finish("ai_failed", "silent")
                return
            if self.caller_deadline <= now:
                await self._caller_silent()

    async def _caller_silent(self) -> None:
        self.caller_deadline = math.inf
        if self.asked_still_there:
            self.log.info("call.caller_silent", action="goodbye")
            self.after_response = self._hang_up
            await self._say(_GOODBYE[_language(self.services)])
            return
        self.asked_still_there = True
        self.log.info("call.caller_silent", action="ask_still_there")
        await self._say(_STILL_THERE[_language(self.services)])

    async def _model_events(self) -> None:
        async for event in self.ai.events():
            self.record.transcript.on_event(event)
            if isinstance(event, AudioDelta):
                self._set_model_deadline(math.inf)
                self.current_item = event.item_id
                await self.media.play(event.pcm, event.item_id)
            elif isinstance(event, SpeechStarted):
                await self._barge_in()
            elif isinstance(event, SpeechStopped):
                self._set_model_deadline(trio.current_time() + self.settings.model_silence_seconds)
            elif isinstance(event, ToolCall):
                self._set_model_deadline(math.inf)
                assert self._nursery is not None
                self._nursery.start_soon(self._tool, event)
            elif isinstance(event, ResponseDone):
                await self._response_done()
            elif isinstance(event, ProviderError):
                self.log.warning("ai.error", code=event.code, message=event.message,
                                 fatal=event.fatal)  # fmt: skip
                if event.fatal:
                    self.finish("ai_failed", f"error: {event.code}")
            elif isinstance(event, Closed):
                self.finish("ai_failed", f"closed: {event.reason}")
                return
        self.finish("ai_failed", "closed: event stream ended")

    async def _barge_in(self) -> None:
        self._set_model_deadline(math.inf)
        self._set_caller_deadline(math.inf)
        if not self.media.playing or self.current_item is None:
            return
        played = await self.media.interrupt()
        self.log.info("ai.barge_in", item_id=self.current_item, played_ms=played)
        await self.ai.truncate(self.current_item, played)

    async def _response_done(self) -> None:
        assert self._nursery is not None
        action, self.after_response = self.after_response, None
        self._nursery.start_soon(self._after_speech, action)

    async def _after_speech(self, action: Callable[[], Awaitable[None]] | None) -> None:
        with trio.move_on_after(GOODBYE_DRAIN_SECONDS):
            await self.media.drained()
        if action is not None:
            await action()
        elif not self.on_hold:
            self._set_caller_deadline(trio.current_time() + self.settings.caller_silence_seconds)

    # -- tools ---------------------------------------------------------------------------

    async def _tool(self, call: ToolCall) -> None:
        async with self._tool_lock:
            request = parse_tool_call(call.name, call.arguments or call.raw_arguments)
            self.log.info("ai.tool_call", tool=call.name, valid=not isinstance(
                request, ToolArgumentError))  # fmt: skip
            if isinstance(request, ToolArgumentError):
                await self._reply(call.call_id, request.output())
            elif isinstance(request, RequestHandoff):
                await self._handoff(call.call_id, request)
            elif isinstance(request, ScheduleCallback | TakeMessage):
                await self._save_request(call.call_id, request)
            elif isinstance(request, EndCall):
                self.after_response = self._hang_up
                await self._reply(call.call_id, tool_output(ok=True, note="say goodbye briefly"))

    async def _reply(self, call_id: str, output: str) -> None:
        self.record.transcript.add("tool", output)
        self._set_model_deadline(trio.current_time() + self.settings.model_silence_seconds)
        await self.ai.send_tool_result(call_id, output)

    def _hold(self) -> HoldMusic:
        music = self.settings.transfer_music_on_hold
        if isinstance(self.media, UnicastTransport):
            return ReparkHold(self.ctx.call, music, on_reparked=self._rearm)
        return BreakHold(self.ctx.call, music)

    def _whisper(self, reason: str) -> Callable[[str], Awaitable[None]] | None:
        if not self.settings.whisper_tts:
            return None
        who = self.who
        text = whisper_text(who.caller_name, who.caller_number, reason, self.settings.language)
        return speak_whisper(self.ctx, self.settings.whisper_tts, text)

    async def _rearm(self) -> None:
        await self.media.rearm()

    async def _handoff(self, call_id: str, request: RequestHandoff) -> None:
        reply = await self._ring_on_hold(request.destination, request.reason)
        if reply.success:
            return
        output = reply.as_tool_output()
        output["next"] = await self._plan_fallback(reply)
        await self._reply(call_id, tool_output(**output))

    async def _ring_on_hold(self, said: str, reason: str) -> HandoffReply:
        """The caller on hold, away from the model, while ``said`` rings; back if it fails."""
        if self.settings.transfer_announce_enabled:
            with trio.move_on_after(ANNOUNCE_DRAIN_SECONDS):
                await self.media.drained()  # let the model's "um momento" be heard first
        self.on_hold = True
        self._set_caller_deadline(math.inf)
        await self.media.suspend()
        reparks = self.ctx.reparks_after_bridge
        reply = await self.services.handoff.transfer(self.ctx, said, reason, hold=self._hold(),
                                                     whisper=self._whisper(reason))  # fmt: skip
        self.record.handoff = reply
        if reply.success:
            self.finish("bridged", "agent answered", reply, reparks)
            return reply
        await self.media.resume()
        self.on_hold = False
        return reply

    async def _transfer_to_default(self, failed: HandoffReply) -> None:
        """The ``transfer_default`` fallback, run by the server once the model has spoken."""
        who = self.who
        default = await self.services.handoff.default_besides(who, failed)
        if default is None:
            self.log.info("handoff.fallback", action="transfer_default", result="no other default")
            await self._say(_offer(_language(self.services)))
            return
        self.log.info("handoff.fallback", action="transfer_default", destination=default.name)
        reply = await self._ring_on_hold(default.name, "fallback")
        if not reply.success:
            await self._say(f"{reply.message} {_offer(_language(self.services))}")

    async def _plan_fallback(self, reply: HandoffReply) -> str:
        """Arrange what runs once the model has said what happened; tell the model."""
        who = self.who
        if reply.fallback == FallbackAction.VOICEMAIL.value and who.domain_name:
            number = await self.services.handoff.mailbox_of(who, reply)
            if number:
                domain = who.domain_name

                async def voicemail() -> None:
                    self.record.outcome = "voicemail"
                    await to_voicemail(self.ctx, number, domain)
                    self.finish("ended", "voicemail")

                self.after_response = voicemail
                return "say the sentence; the caller will then be sent to voicemail"
        if reply.fallback == FallbackAction.HANGUP.value:
            self.after_response = self._hang_up
            return "say the sentence and a short goodbye; the call will end"
        if reply.fallback == FallbackAction.TRANSFER_DEFAULT.value:

            async def transfer_default() -> None:
                await self._transfer_to_default(reply)

            self.after_response = transfer_default
            return "say the sentence; the call will then be transferred to the main line"
        return "say the sentence and offer to take a message or schedule a callback"

    async def _save_request(self, call_id: str, request: ScheduleCallback | TakeMessage) -> None:
        who = self.who
        last = self.record.handoff
        common: dict[str, Any] = {
            "phone_number": request.phone_number,
            "caller_name": request.name,
            "call_uuid": who.call_uuid,
            "domain_uuid": str(who.domain_uuid) if who.domain_uuid else None,
            "secretary_uuid": str(who.secretary_uuid) if who.secretary_uuid else None,
            "destination_uuid": last.destination_uuid if last else None,
            "destination_name": last.destination if last else None,
        }
        if isinstance(request, ScheduleCallback):
            await self._save_callback(call_id, request, common)
            return
        saved_request = CallbackRequest("message", message=request.message, **common)
        self.record.outcome = "message_taken"
        saved = await save_request(self.services.db, saved_request,
                                   helpdesk=bool(self.settings.omniplay_api_url))
        await self._reply(call_id, tool_output(ok=True, request_id=saved.request_uuid,
                                               note="saved; confirm it to the caller"))  # fmt: skip

    async def _save_callback(
        self, call_id: str, request: ScheduleCallback, common: dict[str, Any]
    ) -> None:
        number = normalise(request.phone_number)
        assert isinstance(number, PhoneNumber)  # the tool parser let only valid numbers through
        hours = await callback_hours(self.services.directory, self.who, self.record.handoff)
        own = await for_domain(self.services.db, self.settings, self.who.domain_uuid)
        when = callback_time(request.preferred_time, generated.now(own.tz), own, hours)
        extra = {"request_uuid": self.callback_request_uuid} if self.callback_request_uuid else {}
        # WhatsApp reaches a mobile only; a landline's wish is said back, not stored
        whatsapp = request.notify_via_whatsapp and number.kind is Kind.MOBILE
        saved_request = CallbackRequest(
            "callback", preferred_time=request.preferred_time, reason=request.reason,
            scheduled_at=when.scheduled_at, time_understood=when.understood,
            expires_at=when.expires_at, min_interval_minutes=own.callback_min_interval_minutes,
        max_attempts=1 + own.callback_retry_attempts,
            notify_via_whatsapp=whatsapp, **common, **extra,
        )  # fmt: skip
        self.record.outcome = "callback_requested"
        saved = await save_request(self.services.db, saved_request,
                                   helpdesk=bool(self.settings.omniplay_api_url))
        self.callback_request_uuid = saved.request_uuid
        self.log.info("callbacks.captured", request_uuid=saved.request_uuid,
                      scheduled_at=when.scheduled_at.isoformat(), understood=when.understood,
                      moved=when.moved)  # fmt: skip
        output = confirmation(number, when, _language(self.services),
                              whatsapp=request.notify_via_whatsapp)  # fmt: skip
        await self._reply(call_id, tool_output(ok=True, request_id=saved.request_uuid, **output))

    async def _hang_up(self) -> None:
        self.log.info("call.hangup", reason="conversation over")
        if self.record.outcome == "caller_hangup":
            self.record.outcome = "ended"
        with contextlib.suppress(ConnectionClosed):
            await self.ctx.call.hangup("NORMAL_CLEARING")
        self.finish("ended", "hung up by us")
