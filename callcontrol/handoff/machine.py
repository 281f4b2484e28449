"""The handoff state machine: what happens between "quero falar com o suporte" and either a
person on the line or the AI back with a useful next step.

Rules of this file: everything that decides *what to do next* in a handoff lives here, as a
table; it performs no I/O and reads no clock. The driver (``handoff.runner``) turns FreeSWITCH
events and timer expiries into the inputs below, feeds them in, and carries out the actions
that come back, in order.

Theory of operation
-------------------
A handoff rings one destination, maybe several times (``max_retries``), while the caller
listens to hold music. Each attempt is a new agent leg (B) with our own UUID, originated with
``bgapi`` so the call's socket keeps hearing the caller. An attempt ends in one of these ways:

* voicemail or a forward answers instead of the agent (a leg that ran the domain's
  dialplan, fusionpbx.md): that is no agent — the leg is hung up and the attempt counts as
  NO_ANSWER;
* the agent answers (CHANNEL_ANSWER of B, or the job's ``+OK``): optionally a one-line
  whisper to the agent, then the hold music stops and A and B are bridged; SUCCESS once A's
  CHANNEL_BRIDGE names B;
* the leg fails (B's CHANNEL_HANGUP, the job's ``-ERR <CAUSE>`` when no channel was ever
  created, our ring guard, a refused bridge): the cause becomes a typed outcome; a retryable
  outcome with attempts left waits ``retry_delay`` on hold and rings again; otherwise the hold
  music stops and the handoff finishes with that outcome, so the AI can say what happened;
* the destination is withdrawn (its state, read again while it rang, says DND or disabled):
  every live leg is killed, the hold music stops, the handoff finishes with that outcome and
  is not retried;
* the caller hangs up: every live agent leg is killed at once (FreeSWITCH never cancels a
  B-leg by itself), the outcome is CANCELLED, and nothing but that cleanup is sent.

Legs are tracked until FreeSWITCH confirms they are gone: a leg that answers after the
handoff finished (the caller left, or we gave up on it) is killed, never bridged. There is at
most one bridge per handoff. The hold music is always stopped before a failure is reported, so
the AI never speaks over it.

Reading the table: ``TRANSITIONS[(state, input type)]`` is the handler for that input in that
state. A pair that is not in the table is an input that cannot change anything there (a late
progress event, a duplicate answer); it is ignored and reported as such, never an error.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import attrs

from callcontrol.handoff.outcomes import Outcome, outcome_for_cause

RING_GUARD_GRACE = 5.0
RETRYABLE = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.UNAVAILABLE, Outcome.FAILED})


class State(enum.Enum):
    RINGING = "ringing"  # an agent leg is being originated / is ringing
    WHISPERING = "whispering"  # the agent answered and hears who is calling
    BRIDGING = "bridging"  # uuid_bridge sent, waiting for CHANNEL_BRIDGE
    RETRY_WAIT = "retry_wait"  # between attempts, caller still on hold
    DONE = "done"  # outcome decided (legs may still be winding down)


# -- inputs ------------------------------------------------------------------------------------


@attrs.frozen
class LegAnswered:
    leg: str


@attrs.frozen
class LegAnsweredByVoicemail:
    """Answered, but by voicemail or a forward in the domain's dialplan, not by the agent."""

    leg: str


@attrs.frozen
class LegHungUp:
    leg: str
    cause: str


@attrs.frozen
class JobResult:
    """The BACKGROUND_JOB of an originate: ``+OK <uuid>`` or ``-ERR <CAUSE>``."""

    leg: str
    ok: bool
    cause: str = ""


@attrs.frozen
class WhisperDone:
    leg: str


@attrs.frozen
class BridgeRefused:
    leg: str
    reply: str


@attrs.frozen
class CallerBridged:
    other_leg: str


@attrs.frozen
class CallerHungUp:
    cause: str = "NORMAL_CLEARING"


@attrs.frozen
class RingGuardExpired:
    leg: str


@attrs.frozen
class RetryDue:
    pass


@attrs.frozen
class Withdrawn:
    """The destination turned out not to be ringable after all (its state, read again while
    it rang, says DND or disabled): stop, with this outcome, and do not retry."""

    outcome: Outcome
    cause: str


Input = (
    LegAnswered
    | LegAnsweredByVoicemail
    | LegHungUp
    | JobResult
    | WhisperDone
    | BridgeRefused
    | CallerBridged
    | CallerHungUp
    | RingGuardExpired
    | RetryDue
    | Withdrawn
)

# -- actions -----------------------------------------------------------------------------------


@attrs.frozen
class StartHold:
    pass


@attrs.frozen
class StopHold:
    """Stop the hold music; ``for_bridge`` when a bridge follows (it re-parks A anyway)."""

    for_bridge: bool = False


@attrs.frozen
class Originate:
    """Watch leg ``leg`` (filter before originating), then ``bgapi originate`` it."""

    leg: str
    attempt: int


@attrs.frozen
class Whisper:
    leg: str


@attrs.frozen
class Bridge:
    leg: str


@attrs.frozen
class KillLeg:
    leg: str
    cause: str


@attrs.frozen
class StartRingGuard:
    leg: str
    seconds: float


@attrs.frozen
class StartRetryTimer:
    seconds: float


@attrs.frozen
class Finish:
    outcome: Outcome
    cause: str
    attempts: int


Action = (
    StartHold
    | StopHold
    | Originate
    | Whisper
    | Bridge
    | KillLeg
    | StartRingGuard
    | StartRetryTimer
    | Finish
)


@attrs.frozen
class Plan:
    """What one handoff should do; built from the destination row and configuration."""

    ring_timeout: float
    max_retries: int = 0
    retry_delay: float = 0.0
    hold_music: bool = True
    whisper: bool = False


class IllegalInput(Exception):
    """An input that the driver must never produce in this state (a bug, not a peer error)."""


@attrs.define
class HandoffMachine:
    """The state of one handoff. Feed inputs with ``handle``; it returns the actions to run."""

    plan: Plan
    new_leg_id: Callable[[], str]
    state: State = State.RINGING
    attempt: int = 0
    current_leg: str | None = None
    live_legs: set[str] = attrs.field(factory=set)
    bridged_leg: str | None = None
    outcome: Finish | None = None
    hold_on: bool = False
    caller_gone: bool = False
    # Legs already asked to die: FreeSWITCH is asked once per leg, however many inputs
    # (A's CHANNEL_HANGUP and HANGUP_COMPLETE, our own wind-down) say the caller left.
    killed: set[str] = attrs.field(factory=set)
    ignored: list[tuple[State, Input]] = attrs.field(factory=list)

    def start(self) -> list[Action]:
        actions: list[Action] = []
        if self.plan.hold_music:
            self.hold_on = True
            actions.append(StartHold())
        return actions + self._ring()

    def handle(self, event: Input) -> list[Action]:
        handler = TRANSITIONS.get((self.state, type(event)))
        if handler is None:
            return self._outside_table(event)
        return handler(self, event)

    @property
    def finished(self) -> bool:
        """Decided, and no agent leg of ours is still alive."""
        return self.state is State.DONE and not self.live_legs

    # -- helpers used by the transitions ----------------------------------------------------

    def _ring(self) -> list[Action]:
        self.attempt += 1
        leg = self.new_leg_id()
        self.current_leg = leg
        self.live_legs.add(leg)
        self.state = State.RINGING
        guard = self.plan.ring_timeout + RING_GUARD_GRACE
        return [Originate(leg, self.attempt), StartRingGuard(leg, guard)]

    def _finish(self, outcome: Outcome, cause: str) -> list[Action]:
        actions: list[Action] = []
        if self.hold_on and not self.caller_gone:
            actions.append(StopHold())
        self.hold_on = False
        self.state = State.DONE
        self.current_leg = None
        self.outcome = Finish(outcome, cause, self.attempt)
        return [*actions, self.outcome]

    def _attempt_failed(self, leg: str, cause: str) -> list[Action]:
        outcome = outcome_for_cause(cause)
        if outcome in RETRYABLE and self.attempt <= self.plan.max_retries:
            self.state = State.RETRY_WAIT
            self.current_leg = None
            return [StartRetryTimer(self.plan.retry_delay)]
        return self._finish(outcome, cause)

    def _kill(self, legs: Iterable[str], cause: str) -> list[Action]:
        fresh = sorted(set(legs) - self.killed)
        self.killed.update(fresh)
        return [KillLeg(leg, cause) for leg in fresh]

    def _leg_gone(self, leg: str) -> None:
        self.live_legs.discard(leg)

    def _outside_table(self, event: Input) -> list[Action]:
        # Inputs about legs we no longer want still matter: an agent who answers after the
        # caller left (or after we gave up on that leg) must be hung up, never left talking
        # to silence.
        if (
            isinstance(event, LegAnswered | LegAnsweredByVoicemail | JobResult)
            and event.leg in self.live_legs
            and event.leg not in (self.current_leg, self.bridged_leg)
        ):
            if isinstance(event, JobResult) and not event.ok:
                self._leg_gone(event.leg)
                return []
            return self._kill([event.leg], "ORIGINATOR_CANCEL")
        if isinstance(event, LegHungUp):
            self._leg_gone(event.leg)
            if event.leg == self.bridged_leg:
                self.bridged_leg = None
            return []
        if isinstance(event, JobResult) and not event.ok:
            self._leg_gone(event.leg)
            return []
        self.ignored.append((self.state, event))
        return []


# -- transitions -------------------------------------------------------------------------------

Handler = Callable[[HandoffMachine, Input], list[Action]]


def _current(m: HandoffMachine, leg: str) -> bool:
    return leg == m.current_leg


def ringing_answered(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, LegAnswered | JobResult)
    if not _current(m, event.leg):
        return m._outside_table(event)
    if m.plan.whisper:
        m.state = State.WHISPERING
        return [Whisper(event.leg)]
    return _bridge(m, event.leg)


def _bridge(m: HandoffMachine, leg: str) -> list[Action]:
    m.state = State.BRIDGING
    actions: list[Action] = []
    if m.hold_on:
        actions.append(StopHold(for_bridge=True))
        m.hold_on = False
    return [*actions, Bridge(leg)]


def ringing_job(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, JobResult)
    if event.ok:
        return ringing_answered(m, event)
    if not _current(m, event.leg):
        return m._outside_table(event)
    m._leg_gone(event.leg)
    return m._attempt_failed(event.leg, event.cause)


def attempt_leg_hungup(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, LegHungUp)
    if not _current(m, event.leg):
        return m._outside_table(event)
    m._leg_gone(event.leg)
    cause = event.cause
    if m.state is not State.RINGING:
        # answered, then hung up before the bridge: the agent turned the call down
        cause = "CALL_REJECTED"
    return m._attempt_failed(event.leg, cause)


def ringing_guard(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, RingGuardExpired)
    if not _current(m, event.leg):
        return []
    m.current_leg = None
    return [*m._kill([event.leg], "ORIGINATOR_CANCEL"), *m._attempt_failed(event.leg, "NO_ANSWER")]


def ringing_voicemail(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, LegAnsweredByVoicemail)
    if not _current(m, event.leg):
        return m._outside_table(event)
    m.current_leg = None
    return [*m._kill([event.leg], "NORMAL_CLEARING"), *m._attempt_failed(event.leg, "NO_ANSWER")]


def whisper_done(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, WhisperDone)
    if not _current(m, event.leg):
        return []
    return _bridge(m, event.leg)


def bridge_refused(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, BridgeRefused)
    m.current_leg = None
    kill = m._kill([event.leg], "NORMAL_TEMPORARY_FAILURE")
    return kill + m._finish(Outcome.FAILED, "BRIDGE_FAILED")


def bridged(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, CallerBridged)
    if not _current(m, event.other_leg):
        return m._outside_table(event)
    m.bridged_leg = event.other_leg
    m.live_legs.discard(event.other_leg)
    m.state = State.DONE
    m.current_leg = None
    m.outcome = Finish(Outcome.SUCCESS, "NORMAL_CLEARING", m.attempt)
    return [m.outcome]


def caller_hungup(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, CallerHungUp)
    m.caller_gone = True
    kills = m._kill(m.live_legs, "ORIGINATOR_CANCEL")
    m.hold_on = False
    m.state = State.DONE
    m.current_leg = None
    m.outcome = Finish(Outcome.CANCELLED, event.cause, m.attempt)
    return [*kills, m.outcome]


def caller_hungup_after(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, CallerHungUp)
    m.caller_gone = True
    return m._kill(m.live_legs, "ORIGINATOR_CANCEL")


def retry_due(m: HandoffMachine, event: Input) -> list[Action]:
    return m._ring()


def withdrawn(m: HandoffMachine, event: Input) -> list[Action]:
    assert isinstance(event, Withdrawn)
    m.current_leg = None
    kills = m._kill(m.live_legs, "ORIGINATOR_CANCEL")
    return [*kills, *m._finish(event.outcome, event.cause)]


_ACTIVE = (State.RINGING, State.WHISPERING, State.BRIDGING, State.RETRY_WAIT)

TRANSITIONS: dict[tuple[State, type], Handler] = {
    (State.RINGING, LegAnswered): ringing_answered,
    (State.RINGING, JobResult): ringing_job,
    (State.RINGING, LegHungUp): attempt_leg_hungup,
    (State.RINGING, RingGuardExpired): ringing_guard,
    (State.RINGING, LegAnsweredByVoicemail): ringing_voicemail,
    (State.WHISPERING, WhisperDone): whisper_done,
    (State.WHISPERING, LegHungUp): attempt_leg_hungup,
    (State.BRIDGING, LegHungUp): attempt_leg_hungup,
    (State.BRIDGING, BridgeRefused): bridge_refused,
    (State.BRIDGING, CallerBridged): bridged,
    (State.RETRY_WAIT, RetryDue): retry_due,
    # Once answered, a person took the call: too late to withdraw it.
    (State.RINGING, Withdrawn): withdrawn,
    (State.RETRY_WAIT, Withdrawn): withdrawn,
    **{(state, CallerHungUp): caller_hungup for state in _ACTIVE},
    (State.DONE, CallerHungUp): caller_hungup_after,
}
