"""One call: the per-call nursery, hangup detection and shielded cleanup.

Theory of operation
-------------------
``CallSession.run`` starts the call's *flow* (the AI secretary, or any handler) inside a
cancel scope, and a watcher on the caller's leg. The caller is gone when the first of these
arrives: the A-leg's CHANNEL_HANGUP, or the end of the socket (disconnect notice, EOF). Then
the flow is cancelled — whatever it was doing, ringing an agent included — and the cleanups it
registered run shielded, each in its own time box: kill a ringing agent leg, stop hold music,
close the AI websocket. Cleanups run newest first; one failing or running out of time does
not stop the others. The ones registered ``last`` (the call's record, its metrics) run after
all the others, with their own budget, so what happened is written down even when a reply
from FreeSWITCH never comes. The flow may also finish on its own (bridged to an agent, or
hung up by us); cleanups run then too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from callcontrol.esl import CommandError, ConnectionClosed, Event, commands
from callcontrol.esl.outbound import OutboundCall

CLEANUP_SECONDS = 5.0  # each cleanup's own budget
# What the session's watcher of the caller's leg acts on (``_note_a_event``, the hangup);
# the leg's other events do not wake it.
WATCHED_A_EVENTS = frozenset({"CHANNEL_UNBRIDGE", "CHANNEL_PARK", "CHANNEL_HANGUP",
                              "CHANNEL_HANGUP_COMPLETE"})  # fmt: skip

Cleanup = Callable[[], Awaitable[None]]


@attrs.define(eq=False)
class CallContext:
    """What a call flow gets: the controlled leg, a logger bound to the call, and services."""

    call: OutboundCall
    log: Any
    services: Any
    nursery: trio.Nursery
    caller_gone: trio.Event = attrs.field(factory=trio.Event)
    hangup_cause: str | None = None
    # How often A was parked again after a bridge ended (the agent hung up first). Counted
    # from the session's own watcher, so an agent who hangs up within milliseconds of the
    # bridge is never missed by a flow that starts waiting a little later.
    reparks_after_bridge: int = 0
    _a_changed: trio.Event = attrs.field(factory=trio.Event)
    # A handoff that was still running when the caller left, as the handoff service settled
    # it during the teardown (status ``cancelled``): the call's record stores it.
    interrupted_handoff: Any = None
    # Set when ``serve`` is stopping (SIGTERM): flows that no longer need us (a caller talking
    # to an agent) let go at once; the others are handed back after the drain.
    shutting_down: trio.Event = attrs.field(factory=trio.Event)
    handing_back: bool = False
    # Where a handed-back call goes when its dialplan fallback is gone (we transferred it):
    # "<number> XML <context>", asked of the flow (the domain's default destination).
    hand_back_target: Callable[[], Awaitable[str | None]] | None = None
    _cleanups: list[_Cleanup] = attrs.field(factory=list)

    def _note_a_event(self, name: str, state: dict[str, bool]) -> None:
        if name == "CHANNEL_UNBRIDGE":
            state["unbridged"] = True
        elif name == "CHANNEL_PARK" and state.get("unbridged"):
            state["unbridged"] = False
            self.reparks_after_bridge += 1
            self._a_changed.set()
            self._a_changed = trio.Event()

    async def wait_repark_after_bridge(self, since: int) -> None:
        """Return once A has been parked again after a bridge more than ``since`` times."""
        while self.reparks_after_bridge <= since:
            await self._a_changed.wait()

    def on_cleanup(
        self, name: str, func: Cleanup, *, seconds: float = CLEANUP_SECONDS, last: bool = False
    ) -> Callable[[], None]:
        """Register a cleanup; returns a function that unregisters it (the job got done).

        ``last``: run after every other cleanup (the record of what happened)."""
        entry = _Cleanup(name, func, seconds, last)
        self._cleanups.append(entry)

        def cancel() -> None:
            if entry in self._cleanups:
                self._cleanups.remove(entry)

        return cancel

    async def run_cleanups(self, *, include_last: bool = True) -> None:
        """Every registered cleanup, newest first, the ``last`` ones at the end (or left
        registered: ``include_last=False``, when the call goes on after an error)."""
        while self._cleanups:
            ordinary = [c for c in self._cleanups if not c.last]
            if not ordinary and not include_last:
                return
            entry = (ordinary or self._cleanups)[-1]
            self._cleanups.remove(entry)
            await self._run_one(entry)

    async def _run_one(self, entry: _Cleanup) -> None:
        with trio.move_on_after(entry.seconds) as scope:
            try:
                await entry.func()
            except Exception as exc:
                self.log.error("call.cleanup_failed", cleanup=entry.name, error=repr(exc))
        if scope.cancelled_caught:
            self.log.error("call.cleanup_timeout", cleanup=entry.name, seconds=entry.seconds)


@attrs.frozen(eq=False)
class _Cleanup:
    name: str
    func: Cleanup
    seconds: float
    last: bool


CallFlow = Callable[[CallContext], Awaitable[None]]


class CallSession:
    """Runs one call's flow until it ends or the caller hangs up."""

    def __init__(
        self,
        call: OutboundCall,
        flow: CallFlow,
        log: Any,
        services: Any = None,
        shutting_down: trio.Event | None = None,
    ) -> None:
        self.call = call
        self.flow = flow
        self.log = log
        self.services = services
        self.shutting_down = shutting_down if shutting_down is not None else trio.Event()
        self.context: CallContext | None = None
        self.finished = trio.Event()
        self._flow_scope = trio.CancelScope()
        # told when serve hands the call back (the recorder writes it into the trace)
        self.on_hand_back: Callable[[], None] | None = None

    def hand_back(self) -> None:
        """End our part in the call while the caller is still there (``serve`` stopping):
        the flow is cancelled, its cleanups run (ringing legs killed), everything we play
        is stopped and the dialplan takes the call on (``return_to_dialplan``)."""
        if self.on_hand_back is not None:
            self.on_hand_back()
        if self.context is not None:
            self.context.handing_back = True
        self._flow_scope.cancel()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            ctx = CallContext(self.call, self.log, self.services, nursery,
                              shutting_down=self.shutting_down)  # fmt: skip
            self.context = ctx
            flow_scope = self._flow_scope
            nursery.start_soon(self._watch_caller, ctx, flow_scope)
            try:
                with flow_scope:
                    await self.flow(ctx)
            except ConnectionClosed as exc:
                self.log.info("call.socket_closed", reason=str(exc))
            except Exception:
                # Even the flow's own error path failed: never let go of a caller in silence.
                self.log.exception("call.flow_failed", next="hand back to the dialplan")
                ctx.handing_back = True
            finally:
                with trio.CancelScope(shield=True):
                    await ctx.run_cleanups()  # each one time-boxed
                    if ctx.handing_back and not ctx.caller_gone.is_set():
                        await return_to_dialplan(ctx)
                nursery.cancel_scope.cancel()
                self.finished.set()
                self.log.info("call.ended", hangup_cause=ctx.hangup_cause)

    async def _watch_caller(self, ctx: CallContext, flow_scope: trio.CancelScope) -> None:
        conn = self.call.conn
        state: dict[str, bool] = {}
        async with conn.subscribe(self.call.uuid, names=WATCHED_A_EVENTS) as events, \
                trio.open_nursery() as inner:  # fmt: skip
            inner.start_soon(self._wait_socket_end, flow_scope, ctx, inner.cancel_scope)
            async for event in events:
                ctx._note_a_event(event.name, state)
                if _is_caller_hangup(event, self.call.uuid):
                    ctx.hangup_cause = event.get("Hangup-Cause")
                    self.log.info("call.caller_hangup", cause=ctx.hangup_cause)
                    break
            ctx.caller_gone.set()
            flow_scope.cancel()
            inner.cancel_scope.cancel()

    async def _wait_socket_end(
        self, flow_scope: trio.CancelScope, ctx: CallContext, done: trio.CancelScope
    ) -> None:
        await self.call.conn.closed.wait()
        ctx.caller_gone.set()
        flow_scope.cancel()
        done.cancel()


HAND_BACK_SECONDS = 3.0


async def return_to_dialplan(ctx: CallContext) -> None:
    """Give the caller back to FreeSWITCH, hearing nothing of ours.

    ``uuid_break all`` first: an endless hold-music playback we started would otherwise keep
    the socket app's park, and the dialplan's fallback, from ever running. Then ``resume``
    (the extension goes on after ``socket``), or — when we transferred the call and that
    extension is gone — a transfer to the domain's default destination."""
    call = ctx.call
    target: str | None = None
    with trio.move_on_after(HAND_BACK_SECONDS):
        try:
            if call.transferred and ctx.hand_back_target is not None:
                target = await ctx.hand_back_target()
            await call.api("uuid_break", call.uuid, "all")
            if target is not None:
                number, _, rest = target.partition(" ")
                dialplan, _, context = rest.partition(" ")
                reply = await call.api("uuid_transfer", call.uuid, number, dialplan, context)
                ctx.log.info("call.handed_back", via="transfer", to=target, reply=reply.strip(),
                             reason="our transfer replaced the extension")  # fmt: skip
                return
            await call.conn.send(commands.resume())
            ctx.log.info("call.handed_back", via="resume",
                         reason="the dialplan goes on after socket (its fallback)")  # fmt: skip
        except (ConnectionClosed, CommandError) as exc:
            ctx.log.warning("call.hand_back_failed", error=repr(exc))


def _is_caller_hangup(event: Event, a_uuid: str) -> bool:
    return event.name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE") and (
        event.unique_id == a_uuid
    )
