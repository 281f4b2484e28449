"""The handoff driver: runs ``HandoffMachine`` against the call's Event Socket.

It turns what FreeSWITCH says into machine inputs and carries out the machine's actions, in
order, one at a time. All agent-leg events arrive on the call's own socket: the connection
already filters ``Unique-ID <a>`` and ``Job-Owner-UUID <a>``; ``Originate`` adds
``filter Unique-ID <b>`` before the ``bgapi originate`` so not one event of B is missed.

Every decision is one log line with its reason (``handoff.*`` events). The outcome is returned
as soon as it is decided; legs still winding down (a B-leg killed because the caller left,
whose job has not reported yet) are finished by ``finish_legs``, which the call registers as
a cleanup so it runs even when the call is being torn down.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from callcontrol import generated
from callcontrol.esl import CommandError, ConnectionClosed, Event, commands
from callcontrol.esl.connection import Subscription
from callcontrol.esl.outbound import OutboundCall
from callcontrol.handoff import machine as m
from callcontrol.handoff.hold import HoldMusic
from callcontrol.handoff.outcomes import Outcome

WHISPER_MAX_SECONDS = 15.0
WIND_DOWN_SECONDS = 8.0
# A kill's reply is only a courtesy (the leg's own CHANNEL_HANGUP is the proof): one that
# never comes must not hold up the rest of the call's cleanup.
KILL_REPLY_SECONDS = 2.0

# The events ``_translate`` turns into inputs; the socket's other events (executes, parks,
# progress of either leg: most of a call's) never wake the runner.
EVENTS = frozenset({"BACKGROUND_JOB", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_HANGUP",
                    "CHANNEL_HANGUP_COMPLETE"})  # fmt: skip

# (leg uuid, attempt number) -> the originate argument: "{vars}endpoint &park()"
DialFunction = Callable[[str, int], str]


@attrs.frozen
class HandoffResult:
    outcome: Outcome
    cause: str
    attempts: int
    leg: str | None
    seconds: float


_MACHINE_APPS = frozenset({"voicemail", "vm_box"})


def _answered_by_machine(event: Event) -> bool:
    """A leg through the domain's dialplan can be answered by voicemail, never an agent."""
    app = event.get("variable_current_application") or ""
    return app in _MACHINE_APPS or event.get("variable_answered_by") == "voicemail"


class HandoffRunner:
    def __init__(
        self,
        call: OutboundCall,
        plan: m.Plan,
        dial: DialFunction,
        hold: HoldMusic,
        log: Any,
        *,
        whisper: Callable[[str], Awaitable[None]] | None = None,
        new_leg_id: Callable[[], str] = generated.uuid4_text,
    ) -> None:
        self.call = call
        self.conn = call.conn
        self.dial = dial
        self.hold = hold
        self.log = log
        self.whisper = whisper
        self.machine = m.HandoffMachine(plan=plan, new_leg_id=new_leg_id)
        self._jobs: dict[str, str] = {}  # Job-UUID -> leg
        self._timers: dict[str, tuple[float, m.Input]] = {}
        self._events: Subscription | None = None
        self._stack = AsyncExitStack()
        self._started_at = 0.0
        self.result: HandoffResult | None = None
        self._bridge_prelude: list[bytes] = []
        self._withdrawn: list[m.Withdrawn] = []
        self._waiting: trio.CancelScope | None = None

    # -- public --------------------------------------------------------------------------

    async def run(self) -> HandoffResult:
        """Ring until an outcome is decided; returns it (legs may still be winding down)."""
        self._started_at = trio.current_time()
        self._events = await self._stack.enter_async_context(self.conn.subscribe(names=EVENTS))
        self.log.info(
            "handoff.start",
            ring_timeout=self.machine.plan.ring_timeout,
            max_retries=self.machine.plan.max_retries,
        )
        await self._perform(self.machine.start())
        while self.result is None:
            await self._step()
        return self.result

    def withdraw(self, outcome: Outcome, cause: str) -> None:
        """From another task: stop ringing with ``outcome`` (ignored once a person answered
        or the outcome is decided). The loop takes it at its next step."""
        self._withdrawn.append(m.Withdrawn(outcome, cause))
        if self._waiting is not None:
            self._waiting.cancel()

    async def finish_legs(self) -> None:
        """After the outcome (or when the caller left): make sure no agent leg is left alive."""
        try:
            if self.machine.state is not m.State.DONE:
                await self._feed(m.CallerHungUp("ORIGINATOR_CANCEL"))
            elif self.result is None and self.machine.outcome is not None:
                # Decided while the flow was being cancelled: report it now.
                await self._do(self.machine.outcome)
            with trio.move_on_after(WIND_DOWN_SECONDS) as scope:
                while not self.machine.finished and self._events is not None:
                    await self._step()
            if scope.cancelled_caught:
                for leg in sorted(self.machine.live_legs):
                    # Killed already: its originate_timeout still ends it; asking again
                    # would only be a second kill for the same leg.
                    killed = leg in self.machine.killed
                    self.log.error("handoff.leg_unconfirmed", leg=leg, killed=killed)
                    if not killed:
                        self.machine.killed.add(leg)
                        await self._kill(leg, "ORIGINATOR_CANCEL")
        except ConnectionClosed:
            self.log.warning(
                "handoff.socket_gone_during_wind_down", live_legs=sorted(self.machine.live_legs)
            )
        finally:
            await self._stack.aclose()
            self._events = None

    # -- the loop ------------------------------------------------------------------------

    async def _step(self) -> None:
        assert self._events is not None
        if self._withdrawn:
            await self._feed(self._withdrawn.pop(0))
            return
        deadline = min((due for due, _ in self._timers.values()), default=math.inf)
        event: Event | None = None
        # Only the wait is in this scope, so a withdrawal cancels a receive, never a command.
        with trio.move_on_at(deadline) as self._waiting:
            event = await self._events.receive()
        self._waiting = None
        if event is not None:
            inp = self._translate(event)
            if inp is not None:
                await self._feed(inp)
            return
        await self._fire_timers()

    async def _fire_timers(self) -> None:
        now = trio.current_time()
        for name, (due, inp) in sorted(self._timers.items(), key=lambda kv: kv[1][0]):
            if due <= now:
                del self._timers[name]
                await self._feed(inp)

    async def _feed(self, inp: m.Input) -> None:
        before = self.machine.state
        actions = self.machine.handle(inp)
        if self.machine.ignored and self.machine.ignored[-1][1] is inp:
            self.log.debug("handoff.input_ignored", state=before.value, input=repr(inp))
        await self._perform(actions)

    def _translate(self, event: Event) -> m.Input | None:
        name = event.name
        uid = event.unique_id
        if name == "BACKGROUND_JOB":
            leg = self._jobs.get(event.job_uuid or "")
            if leg is None:
                return None
            text = event.body_text.strip()
            ok = text.startswith("+OK")
            cause = "" if ok else text.removeprefix("-ERR").strip() or "NORMAL_UNSPECIFIED"
            return m.JobResult(leg, ok, cause)
        if uid == self.call.uuid:
            if name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
                return m.CallerHungUp(event.get("Hangup-Cause") or "NORMAL_CLEARING")
            if name == "CHANNEL_BRIDGE":
                return m.CallerBridged(event.get("Other-Leg-Unique-ID") or "")
            return None
        if uid is None or (uid not in self.machine.live_legs and uid != self.machine.bridged_leg):
            return None
        if name == "CHANNEL_ANSWER":
            if _answered_by_machine(event):
                self.log.info("handoff.answered_by_voicemail", leg=uid)
                return m.LegAnsweredByVoicemail(uid)
            return m.LegAnswered(uid)
        if name == "CHANNEL_HANGUP":
            return m.LegHungUp(uid, event.get("Hangup-Cause") or "NORMAL_CLEARING")
        return None

    # -- actions -------------------------------------------------------------------------

    async def _perform(self, actions: list[m.Action]) -> None:
        for i, action in enumerate(actions):
            await self._do(action, actions[i + 1] if i + 1 < len(actions) else None)

    async def _do(self, action: m.Action, following: m.Action | None = None) -> None:
        if self.machine.caller_gone and not isinstance(action, m.KillLeg | m.Finish):
            # The machine never asks for more than cleanup once the caller left; this guard
            # only keeps a bug there from reaching FreeSWITCH.
            self.log.error("handoff.action_after_hangup_skipped", action=type(action).__name__)
            return
        if isinstance(action, m.StartHold):
            self.log.info("handoff.hold", state="on")
            # Before the originate (the machine's start: music, then ring), the music's
            # command goes in the originate's write, which always follows.
            await self.hold.start(with_next=isinstance(following, m.Originate))
        elif isinstance(action, m.StopHold):
            self.log.info(
                "handoff.hold",
                state="off",
                reason="bridge" if action.for_bridge else "attempt_over",
            )
            if action.for_bridge:
                # The machine's next action is the bridge: the break goes in its write, a
                # round trip (and a wait for its reply) less between the answer and the bridge.
                self._bridge_prelude = self.hold.stop_with_bridge()
            else:
                await self.hold.stop()
        elif isinstance(action, m.Originate):
            await self._originate(action)
        elif isinstance(action, m.StartRingGuard):
            self._timers["guard:" + action.leg] = (
                trio.current_time() + action.seconds,
                m.RingGuardExpired(action.leg),
            )
        elif isinstance(action, m.StartRetryTimer):
            self.log.info(
                "handoff.retry_scheduled",
                attempt=self.machine.attempt + 1,
                in_seconds=action.seconds,
            )
            self._timers["retry"] = (trio.current_time() + action.seconds, m.RetryDue())
        elif isinstance(action, m.Whisper):
            await self._whisper(action.leg)
        elif isinstance(action, m.Bridge):
            await self._bridge(action.leg)
        elif isinstance(action, m.KillLeg):
            self._timers.pop("guard:" + action.leg, None)
            self.log.info("handoff.kill_leg", leg=action.leg, cause=action.cause)
            await self._kill(action.leg, action.cause)
        elif isinstance(action, m.Finish):
            self._timers.clear()
            seconds = trio.current_time() - self._started_at
            self.result = HandoffResult(
                action.outcome, action.cause, action.attempts, self.machine.bridged_leg, seconds
            )
            self.log.info(
                "handoff.result",
                status=action.outcome.value,
                cause=action.cause,
                attempts=action.attempts,
                seconds=round(seconds, 3),
            )

    async def _originate(self, action: m.Originate) -> None:
        leg = action.leg
        argument = self.dial(leg, action.attempt)
        job_uuid = generated.uuid4_text()
        self._jobs[job_uuid] = leg
        self.log.info("handoff.originate", leg=leg, attempt=action.attempt)
        try:
            # the leg's filter and its originate in one round trip, filter first
            await self.call.originate_watched(leg, argument, job_uuid)
        except CommandError as exc:
            self.log.error("handoff.originate_refused", leg=leg, reply=exc.reply)
            await self._feed(m.JobResult(leg, ok=False, cause="NORMAL_TEMPORARY_FAILURE"))

    async def _whisper(self, leg: str) -> None:
        if self.whisper is None:
            await self._feed(m.WhisperDone(leg))
            return
        self.log.info("handoff.whisper", leg=leg)
        with trio.move_on_after(WHISPER_MAX_SECONDS):
            await self.whisper(leg)
        await self._feed(m.WhisperDone(leg))

    async def _bridge(self, leg: str) -> None:
        self.log.info("handoff.bridge", leg=leg)
        # When the agent hangs up first, A parks again instead of being dropped (callflow §3).
        # One write: stop the music, set the variable, bridge; FreeSWITCH runs them in order.
        prelude, self._bridge_prelude = self._bridge_prelude, []
        replies = await self.conn.send_many(
            *prelude,
            commands.api("uuid_setvar", self.call.uuid, "park_after_bridge", "true"),
            commands.api("uuid_bridge", self.call.uuid, leg),
        )
        reply = replies[-1].reply_text
        if not reply.startswith("+OK"):
            self.log.warning("handoff.bridge_refused", leg=leg, reply=reply.strip())
            await self._feed(m.BridgeRefused(leg, reply.strip()))

    async def _kill(self, leg: str, cause: str) -> None:
        # Shielded: the machine counts a leg as killed once it asks, so the kill must go out
        # even when the flow is being cancelled because the caller left.
        with trio.CancelScope(shield=True), trio.move_on_after(KILL_REPLY_SECONDS) as scope:
            reply = await self.call.api("uuid_kill", leg, cause)
        if scope.cancelled_caught:
            self.log.warning("handoff.kill_unanswered", leg=leg, seconds=KILL_REPLY_SECONDS)
            return
        if not reply.startswith("+OK"):
            self.log.debug("handoff.kill_reply", leg=leg, reply=reply.strip())
