"""Random interleavings of everything FreeSWITCH and the caller can do during a handoff.

FreeSWITCH is modelled by what it may legally say about each agent leg (answer, hang up with
a cause, report the job) in any order, plus the caller hanging up at any moment; the
invariants of the handoff hold on every run.
"""

from __future__ import annotations

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from callcontrol.handoff import machine as m
from callcontrol.handoff.outcomes import Outcome

CAUSES = [
    "USER_BUSY",
    "NO_ANSWER",
    "CALL_REJECTED",
    "USER_NOT_REGISTERED",
    "NORMAL_TEMPORARY_FAILURE",
    "SUBSCRIBER_ABSENT",
    "NO_USER_RESPONSE",
]


class Leg:
    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        self.answered = False
        self.ended = False  # FreeSWITCH said it is gone (hangup or -ERR job)
        self.job_reported = False
        self.killed = False


class HandoffInterleavings(RuleBasedStateMachine):
    @initialize(retries=st.integers(0, 2), hold=st.booleans(), whisper=st.booleans())
    def start(self, retries, hold, whisper):
        ids = (f"leg-{i}" for i in itertools.count(1))
        plan = m.Plan(
            ring_timeout=20, max_retries=retries, retry_delay=5, hold_music=hold, whisper=whisper
        )
        self.machine = m.HandoffMachine(plan=plan, new_leg_id=lambda: next(ids))
        self.legs: dict[str, Leg] = {}
        self.actions: list[m.Action] = []
        self.caller_gone_at: int | None = None
        self.pending_bridge: str | None = None
        self.pending_whisper: str | None = None
        self.guard: str | None = None
        self.retry_armed = False
        self.apply(self.machine.start())

    # -- the world reacting to actions ---------------------------------------------------

    def apply(self, actions):
        for action in actions:
            self.actions.append(action)
            if isinstance(action, m.Originate):
                self.legs[action.leg] = Leg(action.leg)
            elif isinstance(action, m.StartRingGuard):
                self.guard = action.leg
            elif isinstance(action, m.StartRetryTimer):
                self.retry_armed = True
            elif isinstance(action, m.Bridge):
                self.pending_bridge = action.leg
            elif isinstance(action, m.Whisper):
                self.pending_whisper = action.leg
            elif isinstance(action, m.KillLeg):
                self.legs[action.leg].killed = True

    def feed(self, inp):
        self.apply(self.machine.handle(inp))

    def live(self):
        return [leg for leg in self.legs.values() if not leg.ended]

    # -- rules: what FreeSWITCH / the caller may do --------------------------------------

    @precondition(lambda self: any(not leg_.answered for leg_ in self.live()))
    @rule(data=st.data())
    def agent_answers(self, data):
        leg = data.draw(st.sampled_from([leg_ for leg_ in self.live() if not leg_.answered]))
        leg.answered = True
        self.feed(m.LegAnswered(leg.uuid))

    @precondition(lambda self: any(not leg_.answered for leg_ in self.live()))
    @rule(data=st.data())
    def voicemail_answers(self, data):
        leg = data.draw(st.sampled_from([leg_ for leg_ in self.live() if not leg_.answered]))
        leg.answered = True
        self.feed(m.LegAnsweredByVoicemail(leg.uuid))

    @precondition(
        lambda self: any(leg_.answered and not leg_.job_reported for leg_ in self.legs.values())
    )
    @rule(data=st.data())
    def job_reports_success(self, data):
        leg = data.draw(
            st.sampled_from(
                [leg_ for leg_ in self.legs.values() if leg_.answered and not leg_.job_reported]
            )
        )
        leg.job_reported = True
        self.feed(m.JobResult(leg.uuid, ok=True))

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data(), cause=st.sampled_from(CAUSES))
    def leg_hangs_up(self, data, cause):
        leg = data.draw(st.sampled_from(self.live()))
        leg.ended = True
        if leg.killed:
            cause = "ORIGINATOR_CANCEL"
        self.feed(m.LegHungUp(leg.uuid, cause))
        if not leg.answered and not leg.job_reported:
            leg.job_reported = True
            self.feed(m.JobResult(leg.uuid, ok=False, cause=cause))

    @precondition(
        lambda self: any(not leg_.answered and not leg_.job_reported for leg_ in self.live())
    )
    @rule(data=st.data(), cause=st.sampled_from(CAUSES))
    def originate_fails_without_channel(self, data, cause):
        leg = data.draw(
            st.sampled_from(
                [leg_ for leg_ in self.live() if not leg_.answered and not leg_.job_reported]
            )
        )
        leg.ended = leg.job_reported = True
        self.feed(m.JobResult(leg.uuid, ok=False, cause=cause))

    @precondition(lambda self: self.pending_bridge is not None)
    @rule(ok=st.booleans())
    def bridge_answer(self, ok):
        leg, self.pending_bridge = self.pending_bridge, None
        if self.caller_gone_at is not None or self.legs[leg].ended:
            ok = False
        self.feed(m.CallerBridged(leg) if ok else m.BridgeRefused(leg, "-ERR Invalid uuid"))

    @precondition(lambda self: self.pending_whisper is not None)
    @rule()
    def whisper_finishes(self):
        leg, self.pending_whisper = self.pending_whisper, None
        self.feed(m.WhisperDone(leg))

    @precondition(lambda self: self.guard is not None)
    @rule()
    def ring_guard_fires(self):
        leg, self.guard = self.guard, None
        self.feed(m.RingGuardExpired(leg))

    @precondition(lambda self: self.retry_armed)
    @rule()
    def retry_timer_fires(self):
        self.retry_armed = False
        self.feed(m.RetryDue())

    @rule(outcome=st.sampled_from([Outcome.DND, Outcome.UNAVAILABLE]))
    def destination_withdrawn(self, outcome):
        # the extension's state, read again while it rings, says it must not be rung
        self.feed(m.Withdrawn(outcome, "DO_NOT_DISTURB"))

    @precondition(lambda self: self.caller_gone_at is None)
    @rule()
    def caller_hangs_up(self):
        self.caller_gone_at = len(self.actions)
        self.feed(m.CallerHungUp())

    @precondition(lambda self: self.caller_gone_at is not None)
    @rule()
    def caller_hangup_reported_again(self):
        # CHANNEL_HANGUP then CHANNEL_HANGUP_COMPLETE, or our own wind-down after the event
        self.feed(m.CallerHungUp())

    @rule()
    def nothing_happens_for_a_while(self):
        pass

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def one_outcome_at_most(self):
        assert sum(isinstance(a, m.Finish) for a in self.actions) <= 1

    @invariant()
    def one_kill_per_leg(self):
        kills = [a.leg for a in self.actions if isinstance(a, m.KillLeg)]
        assert len(kills) == len(set(kills)), "FreeSWITCH asked twice to kill one leg"

    @invariant()
    def one_bridge_at_most(self):
        assert sum(isinstance(a, m.Bridge) for a in self.actions) <= 1

    @invariant()
    def only_cleanup_after_the_caller_left(self):
        if self.caller_gone_at is None:
            return
        for action in self.actions[self.caller_gone_at :]:
            assert isinstance(action, m.KillLeg | m.Finish), action

    @invariant()
    def hold_music_is_off_before_a_failure_is_reported(self):
        hold_on = False
        for action in self.actions:
            if isinstance(action, m.StartHold):
                hold_on = True
            elif isinstance(action, m.StopHold):
                hold_on = False
            elif isinstance(action, m.Finish) and action.outcome is not Outcome.CANCELLED:
                assert not hold_on, "the AI would speak over the hold music"

    @invariant()
    def nothing_rings_after_a_withdrawal(self):
        for i, action in enumerate(self.actions):
            if isinstance(action, m.Finish) and action.outcome in (Outcome.DND,
                                                                    Outcome.UNAVAILABLE):
                later = self.actions[i:]
                assert not any(isinstance(a, m.Originate | m.Bridge) for a in later), later

    @invariant()
    def an_answered_leg_we_do_not_bridge_is_killed(self):
        if not self.machine.finished:
            return
        for leg in self.legs.values():
            if leg.answered and not leg.ended and leg.uuid != self.machine.bridged_leg:
                assert leg.killed, f"{leg.uuid} left talking to nobody"

    def teardown(self):
        # Let FreeSWITCH finish every leg we asked it to kill; then nothing may be left alive.
        if not hasattr(self, "machine"):
            return
        for _ in range(20):
            for leg in self.live():
                if leg.killed:
                    leg.ended = True
                    self.feed(m.LegHungUp(leg.uuid, "ORIGINATOR_CANCEL"))
        if self.machine.state is m.State.DONE:
            for leg in self.legs.values():
                assert leg.ended or leg.killed or leg.uuid == self.machine.bridged_leg


HandoffInterleavings.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
TestHandoffInterleavings = HandoffInterleavings.TestCase
