"""``request_handoff``: from what the caller asked for to a typed, spoken result.

The AI calls this with what the caller said ("suporte", "o João do financeiro"). In order:
find the destination in the directory (an ambiguous match goes back as a question, no match
goes to the default destination); check its working hours (closed → say when it opens);
check DND for an extension (reported as DND without ringing it, since FusionPBX would make the
phone look merely busy); then ring it on hold through ``HandoffRunner``. The extension's state
is the one last read (``ExtensionStates``), so the ring does not wait for PostgreSQL; it is read
again while the phone rings, and DND or disabled found then withdraws the attempt, a changed
forward-all rings again where it now sends the call (destinations/extension_cache.py says why
that is safe). Whatever happens, the AI gets a ``HandoffReply``: a status, the pt-BR sentence
to say, and what can be offered next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import attrs
import trio

from callcontrol import generated
from callcontrol.config import Settings
from callcontrol.db.database import Database, DatabaseUnavailable
from callcontrol.destinations.directory import Directory, availability
from callcontrol.destinations.extension_cache import ExtensionStates
from callcontrol.destinations.fusionpbx import (
    ExtensionState,
    domain_fallback,
    extension_state,
    mailbox_enabled,
)
from callcontrol.destinations.matching import Ambiguous, Matched, MatchKind, NoMatch
from callcontrol.destinations.model import Destination, DestinationType, FallbackAction
from callcontrol.handoff import machine as m
from callcontrol.handoff.dialstring import (
    UnsafeDialStringValue,
    dial_string_for,
    originate_argument,
)
from callcontrol.handoff.fallback import is_dialable_number, is_domain_name
from callcontrol.handoff.hold import HoldMusic
from callcontrol.handoff.outcomes import Outcome, caller_message
from callcontrol.handoff.runner import (
    KILL_REPLY_SECONDS,
    WIND_DOWN_SECONDS,
    HandoffResult,
    HandoffRunner,
)
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics
from callcontrol.secretary_settings import secretary_uuid_of

# Outcomes after which offering a callback makes sense: someone exists but could not answer.
CALLBACK_OUTCOMES = frozenset(
    {Outcome.BUSY, Outcome.NO_ANSWER, Outcome.DND, Outcome.OFFLINE, Outcome.REJECTED,
     Outcome.UNAVAILABLE, Outcome.FAILED}
)  # fmt: skip


# finish_legs waits for the legs' own hangups, then may still send one kill.
WIND_DOWN_BUDGET = WIND_DOWN_SECONDS + KILL_REPLY_SECONDS + 1.0
# How long a handoff that ended busy waits for its recheck to say whether that was DND (the
# read is milliseconds; a database that does not answer leaves it busy).
RECHECK_WAIT_SECONDS = 2.0
# The cause of an attempt the recheck withdrew because forward-all changed meanwhile: the
# handoff rings again where the fresh state sends it, so the AI never hears this one.
FORWARD_ALL_CHANGED = "FORWARD_ALL_CHANGED"


@attrs.frozen
class HandoffReply:
    """What the AI learns from a handoff request (sent as the tool's JSON output)."""

    status: str  # an Outcome value, or: ambiguous | closed | no_destination | disabled
    message: str
    destination: str | None = None
    destination_type: str | None = None
    fallback: str | None = None
    can_offer_callback: bool = False
    candidates: tuple[str, ...] = ()
    next_opening: str | None = None
    cause: str | None = None
    attempts: int = 0
    destination_uuid: str | None = None

    @property
    def success(self) -> bool:
        return self.status == Outcome.SUCCESS.value

    def as_tool_output(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "say": self.message}
        for key in ("destination", "fallback", "next_opening", "cause"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.candidates:
            out["candidates"] = list(self.candidates)
        out["can_offer_callback"] = self.can_offer_callback
        return out


@attrs.frozen
class CallIdentity:
    """Who is calling and where from, read once from the connect data."""

    call_uuid: str
    domain_uuid: UUID | None
    domain_name: str | None
    secretary_uuid: UUID | None
    caller_number: str | None
    caller_name: str | None

    @classmethod
    def of(cls, call: Any) -> CallIdentity:
        return cls(
            call_uuid=call.uuid,
            domain_uuid=_uuid_or_none(call.variable("domain_uuid")),
            domain_name=call.variable("domain_name"),
            secretary_uuid=secretary_uuid_of(call.variable("voice_secretary_uuid")),
            caller_number=call.header("Caller-Caller-ID-Number"),
            caller_name=call.header("Caller-Caller-ID-Name"),
        )


@attrs.define(eq=False)
class _Recheck:
    """The second read of an extension whose cached state a handoff rings on."""

    domain_uuid: UUID
    number: str
    used: ExtensionState
    done: trio.Event = attrs.field(factory=trio.Event)
    withdrawal: tuple[Outcome, str] | None = None
    # the state read again, when its forward-all differs from the one rung on
    reroute: ExtensionState | None = None


def _uuid_or_none(text: str | None) -> UUID | None:
    try:
        return UUID(text) if text else None
    except ValueError:
        return None


Whisper = Callable[[str], Awaitable[None]]
_log = get_logger("callcontrol.handoff")


@attrs.define(eq=False)
class HandoffService:
    directory: Directory
    db: Database
    settings: Settings
    metrics: Metrics
    now: Callable[[], datetime] = lambda: generated.now(UTC)
    states: ExtensionStates = attrs.field(
        default=attrs.Factory(lambda self: ExtensionStates(self.db), takes_self=True)
    )

    async def transfer(
        self,
        ctx: Any,
        said: str,
        reason: str = "",
        *,
        hold: HoldMusic,
        whisper: Whisper | None = None,
    ) -> HandoffReply:
        who = CallIdentity.of(ctx.call)
        log = ctx.log.bind(handoff_said=said)
        if who.domain_uuid is None or not who.domain_name:
            log.error("handoff.no_domain", reason="the call has no domain_uuid/domain_name")
            return self._reply_failed(None, "NO_DOMAIN")
        try:
            found = await self.directory.find(who.domain_uuid, who.secretary_uuid, said)
        except DatabaseUnavailable as exc:
            log.error("handoff.directory_unavailable", error=str(exc))
            return self._reply_failed(None, "DATABASE_UNAVAILABLE")
        if isinstance(found, Ambiguous):
            names = tuple(c.name for c in found.candidates)
            log.info("handoff.ambiguous", candidates=list(names))
            return HandoffReply("ambiguous", found.question(self.settings.language),
                                candidates=names)  # fmt: skip
        if isinstance(found, NoMatch):
            fallback = await self._domain_fallback(who.domain_uuid, who.secretary_uuid, log)
            if fallback is None:
                log.info("handoff.no_destination", reason="no match and no default destination")
                return HandoffReply("no_destination", self._text_no_destination(),
                                    can_offer_callback=True)  # fmt: skip
            found = Matched(fallback, MatchKind.DEFAULT, said)
        assert isinstance(found, Matched)
        destination = found.destination
        log = log.bind(destination=destination.name, match=found.kind.value)
        return await self.ring(ctx, who, destination, log, hold=hold, whisper=whisper)

    async def ring(
        self,
        ctx: Any,
        who: CallIdentity,
        destination: Destination,
        log: Any,
        *,
        hold: HoldMusic,
        whisper: Whisper | None = None,
        state: ExtensionState | None = None,
    ) -> HandoffReply:
        """Ring ``destination``; ``state``: its extension's state just read (a re-ring after
        the recheck found forward-all changed), else the cached one or a read."""
        opened = availability(destination, self.now(), self.settings.language)
        if not opened.is_open:
            log.info("handoff.closed", next_opening=str(opened.next_opening))
            self._count("closed", destination)
            return HandoffReply(
                "closed", opened.message or "", destination.name,
                destination.destination_type.value, destination.fallback_action.value,
                can_offer_callback=True,
                next_opening=opened.next_opening.isoformat() if opened.next_opening else None,
                destination_uuid=str(destination.uuid),
            )  # fmt: skip
        target = destination
        recheck: _Recheck | None = None
        if destination.destination_type is DestinationType.EXTENSION and who.domain_uuid:
            cached = False
            if state is None:
                state, cached = await self._extension(who.domain_uuid, destination.number, log)
            if cached:
                recheck = _Recheck(who.domain_uuid, destination.number, state)
            if not state.enabled:
                log.info("handoff.result", status="unavailable",
                         reason="v_extensions.enabled is false")  # fmt: skip
                return self._reply(destination, Outcome.UNAVAILABLE, "EXTENSION_DISABLED", 0, 0.0)
            if state.dnd:
                log.info("handoff.result", status="dnd", reason="v_extensions.do_not_disturb")
                return self._reply(destination, Outcome.DND, "DO_NOT_DISTURB", 0, 0.0)
            if state.forward_all is not None:
                target = await self._forwarded(who.domain_uuid, destination, state.forward_all)
                log.info("handoff.forward_all", to=state.forward_all,
                         via=target.destination_type.value,
                         reason="v_extensions.forward_all_enabled")  # fmt: skip
        try:
            dial = self._dial_function(who, target)
            dial(generated.uuid4_text(), 1)  # refuse a hostile row before ringing anything
        except UnsafeDialStringValue as exc:
            log.error("handoff.unsafe_destination", error=str(exc))
            return self._reply(destination, Outcome.FAILED, "INVALID_DESTINATION", 0, 0.0)
        plan = m.Plan(
            ring_timeout=float(destination.ring_timeout_seconds
                               or self.settings.transfer_default_timeout),
            max_retries=destination.max_retries,
            retry_delay=float(destination.retry_delay_seconds),
            hold_music=True,
            whisper=whisper is not None,
        )  # fmt: skip
        runner = HandoffRunner(ctx.call, plan, dial, hold, log, whisper=whisper)
        decided = False

        async def wind_down() -> None:
            await runner.finish_legs()
            result = runner.result
            if not decided and result is not None:
                # The caller left while it rang: settled by finish_legs as ``cancelled``.
                ctx.interrupted_handoff = self._reply(
                    destination, result.outcome, result.cause, result.attempts, result.seconds,
                    result)  # fmt: skip

        ctx.on_cleanup("handoff.finish_legs", wind_down, seconds=WIND_DOWN_BUDGET)
        if recheck is not None:
            # In the call's nursery: a read of milliseconds, harmless once the ring is over.
            ctx.nursery.start_soon(self._recheck, recheck, runner, log)
        result = await runner.run()
        if recheck is not None and result.outcome is Outcome.BUSY:
            result = await self._busy_or_withdrawn(recheck, result)
        decided = True
        reroute = recheck.reroute if recheck is not None else None
        if reroute is not None and result.cause == FORWARD_ALL_CHANGED:
            await runner.finish_legs()  # the withdrawn leg is gone before the other rings
            return await self.ring(ctx, who, destination, log, hold=hold, whisper=whisper,
                                   state=reroute)  # fmt: skip
        reply = self._reply(destination, result.outcome, result.cause, result.attempts,
                            result.seconds, result)  # fmt: skip
        if result.outcome is Outcome.CANCELLED:
            ctx.interrupted_handoff = reply  # the caller left; the flow is being cancelled
        if result.outcome is not Outcome.SUCCESS:
            await runner.finish_legs()
        return reply

    async def mailbox_of(self, who: CallIdentity, reply: HandoffReply) -> str | None:
        """The voicemail box of the destination ``reply`` is about: its number, for an
        extension whose box exists and is enabled in ``v_voicemails`` (ring groups and queues
        have none; ``*99`` to a missing box would only play an error)."""
        if who.domain_uuid is None or reply.destination_uuid is None:
            return None
        for destination in await self.directory.destinations(who.domain_uuid, who.secretary_uuid):
            if (
                str(destination.uuid) == reply.destination_uuid
                and destination.destination_type is DestinationType.EXTENSION
            ):
                if await mailbox_enabled(self.db, who.domain_uuid, destination.number):
                    return destination.number
                _log.info("handoff.no_mailbox", extension=destination.number,
                          reason="no enabled v_voicemails box")  # fmt: skip
                return None
        return None

    async def hand_back_target(self, who: CallIdentity) -> str | None:
        """Where a call handed back on shutdown goes when its own dialplan fallback is gone
        (we transferred it): the domain's default destination, dialled in its context, as
        "<number> XML <domain>"; None when there is none or the row is not dialable."""
        if who.domain_uuid is None or not who.domain_name:
            return None
        try:
            default = await self.directory.default(who.domain_uuid, who.secretary_uuid)
            if default is None:
                default = await domain_fallback(self.db, who.domain_uuid)
        except DatabaseUnavailable as exc:
            _log.warning("handoff.hand_back_target_unknown", error=str(exc))
            return None
        if default is None or not is_dialable_number(default.number):
            return None
        if not is_domain_name(who.domain_name):
            return None
        return f"{default.number} XML {who.domain_name}"

    async def default_besides(self, who: CallIdentity, failed: HandoffReply) -> Destination | None:
        """The default destination, unless it is the one that just failed."""
        if who.domain_uuid is None:
            return None
        default = await self.directory.default(who.domain_uuid, who.secretary_uuid)
        if default is None or str(default.uuid) == failed.destination_uuid:
            return None
        return default

    async def _extension(
        self, domain_uuid: UUID, number: str, log: Any
    ) -> tuple[ExtensionState, bool]:
        """The extension's state, and whether it is the cached one (to be read again)."""
        cached = self.states.cached(domain_uuid, number)
        if cached is not None:
            return cached, True
        try:
            return await self.states.read(domain_uuid, number), False
        except DatabaseUnavailable as exc:
            # Ring anyway: a busy phone is reported as busy, and nobody is lost to a DB blip.
            log.warning("handoff.extension_state_unknown", error=str(exc))
            return ExtensionState(exists=False), False

    async def _recheck(self, recheck: _Recheck, runner: HandoffRunner, log: Any) -> None:
        """Read the state the handoff rings on again, while it rings; withdraw the attempt if
        it says DND or disabled now, or forward-all changed (then ``ring`` rings again where
        the fresh state sends the call)."""
        try:
            fresh = await self.states.reread(recheck.domain_uuid, recheck.number)
        except DatabaseUnavailable as exc:
            log.warning("handoff.recheck_unknown", error=str(exc))
            return
        finally:
            recheck.done.set()
        used = recheck.used
        if fresh.exists and not fresh.enabled and used.enabled:
            recheck.withdrawal = (Outcome.UNAVAILABLE, "EXTENSION_DISABLED")
        elif fresh.dnd and not used.dnd:
            recheck.withdrawal = (Outcome.DND, "DO_NOT_DISTURB")
        elif fresh.exists and fresh.enabled and fresh.forward_all != used.forward_all:
            recheck.reroute = fresh
            recheck.withdrawal = (Outcome.UNAVAILABLE, FORWARD_ALL_CHANGED)
            log.info("handoff.rerouted", forward_all=fresh.forward_all, was=used.forward_all,
                     reason="v_extensions read again while it rang")  # fmt: skip
            runner.withdraw(*recheck.withdrawal)
            return
        if recheck.withdrawal is not None:
            outcome, cause = recheck.withdrawal
            log.info("handoff.withdrawn", status=outcome.value, cause=cause,
                     reason="v_extensions read again while it rang")  # fmt: skip
            runner.withdraw(outcome, cause)

    async def _busy_or_withdrawn(self, recheck: _Recheck, result: HandoffResult) -> HandoffResult:
        """A busy from a phone put in DND after its state was cached (FusionPBX's directory
        answers USER_BUSY for it) is DND: the recheck says which."""
        with trio.move_on_after(RECHECK_WAIT_SECONDS):
            await recheck.done.wait()
        if recheck.withdrawal is None:
            return result
        outcome, cause = recheck.withdrawal
        return attrs.evolve(result, outcome=outcome, cause=cause)

    async def _forwarded(self, domain_uuid: UUID, destination: Destination, to: str
                         ) -> Destination:  # fmt: skip
        """Where FusionPBX's forward-all would send the call: one of the domain's extensions is
        rung directly (one hop, so our own fallback still follows); anything else (a ring
        group, an outside number) through the domain's dialplan, as FusionPBX's transfer."""
        forwarded = await extension_state(self.db, domain_uuid, to)
        if forwarded.exists and forwarded.enabled and not forwarded.dnd:
            return attrs.evolve(destination, number=to)
        return attrs.evolve(destination, destination_type=DestinationType.RING_GROUP,
                            number=to, context=None, gateway=None)  # fmt: skip

    async def _domain_fallback(
        self, domain_uuid: UUID, secretary_uuid: UUID | None, log: Any
    ) -> Destination | None:
        """With no destination configured at all (a fresh install), someone of the domain
        rather than nobody: its first ring group, else its first extension."""
        if await self.directory.destinations(domain_uuid, secretary_uuid):
            return None
        fallback = await domain_fallback(self.db, domain_uuid)
        if fallback is not None:
            log.warning("handoff.domain_fallback", destination=fallback.name,
                        number=fallback.number, type=fallback.destination_type.value,
                        reason="no destination configured for this domain: run "
                               "`callcontrol destinations import`")  # fmt: skip
        return fallback

    def _dial_function(
        self, who: CallIdentity, destination: Destination
    ) -> Callable[[str, int], str]:
        assert who.domain_name is not None
        domain_name = who.domain_name

        def dial(leg: str, attempt: int) -> str:
            return originate_argument(
                dial_string_for(
                    destination,
                    domain_name,
                    origination_uuid=leg,
                    call_uuid=who.call_uuid,
                    instance=self.settings.instance_id,
                    caller_id_number=who.caller_number,
                    caller_id_name=who.caller_name,
                )
            )

        return dial

    def _count(self, status: str, destination: Destination | None, seconds: float = 0) -> None:
        kind = destination.destination_type.value if destination else "none"
        self.metrics.transfers.labels(status=status, destination_type=kind).inc()
        self.metrics.transfer_seconds.labels(status=status).observe(seconds)

    def _reply(
        self,
        destination: Destination,
        outcome: Outcome,
        cause: str,
        attempts: int,
        seconds: float,
        result: HandoffResult | None = None,
    ) -> HandoffReply:
        self._count(outcome.value, destination, seconds)
        failed = outcome is not Outcome.SUCCESS and outcome is not Outcome.CANCELLED
        fallback = destination.fallback_action.value if failed else None
        return HandoffReply(
            status=outcome.value,
            message=caller_message(
                outcome, destination.name,
                destination_type=destination.destination_type.value,
                language=self.settings.language,
            ),
            destination=destination.name,
            destination_type=destination.destination_type.value,
            fallback=fallback,
            can_offer_callback=failed and outcome in CALLBACK_OUTCOMES
            and destination.fallback_action is FallbackAction.OFFER_CALLBACK,
            cause=cause,
            attempts=attempts,
            destination_uuid=str(destination.uuid),
        )  # fmt: skip

    def _reply_failed(self, destination: Destination | None, cause: str) -> HandoffReply:
        self._count(Outcome.FAILED.value, destination)
        english = self.settings.language.startswith("en")
        text = ("I could not complete the transfer right now." if english
                else "Não consegui completar a transferência agora.")  # fmt: skip
        return HandoffReply(Outcome.FAILED.value, text, fallback="offer_callback",
                            can_offer_callback=True, cause=cause)  # fmt: skip

    def _text_no_destination(self) -> str:
        if self.settings.language.startswith("en"):
            return "There is nobody I can transfer you to right now."
        return "Não há ninguém disponível para transferência agora."
