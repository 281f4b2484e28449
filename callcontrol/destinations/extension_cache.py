"""The last known state of each extension (enabled, DND, forward-all), read without waiting.

A handoff to an extension needs its ``v_extensions`` row before it rings: DND is reported as
DND, a disabled one is never rung, forward-all rings the other number (fusionpbx.py). That
read is a PostgreSQL round trip (a worker thread, then the server), and at 500 concurrent
handoffs it was most of the time between the AI's tool call and ``bgapi originate``. So the
handoff rings on what this cache already knows and reads the row again *while* it rings:

* a hit younger than ``max_age`` is used at once; a miss (the first handoff to that extension,
  or one not rung for ``max_age``) is read before ringing, as before;
* every handoff that used a hit reads the row again concurrently with its originate (the
  recheck, ``HandoffService``); that read refreshes the cache, so under load the state used is
  as old as the previous handoff's read, and ``max_age`` only bounds a quiet system's;
* DND or disabled found by the recheck withdraws the attempt: the leg is killed, the hold
  music stops, the AI hears DND / unavailable, and no retry rings it again. Until the recheck
  lands the phone still does not ring: FusionPBX's directory makes a DND extension's dial
  string ``error/user_busy`` (the originate fails at once with USER_BUSY; a busy that the
  recheck then explains is reported as DND) and leaves a disabled one out of the directory;
* a forward-all switched on, off or elsewhere inside that window is caught by the same
  recheck: the attempt is withdrawn (its leg killed) and the handoff rings again where the
  fresh state sends the call, so for the read's milliseconds the old target rings.

Why not prefetch when the AI's tool call starts streaming its arguments: the destination is
only known once they are complete (they name it in the caller's words), the lead over the
``done`` is a few tens of milliseconds, and the read would still be on the path whenever the
provider sends the call in one piece. The cache needs no provider support and no background
task: the handoffs themselves keep it fresh.

The rechecks are gathered: the first one waits ``gather`` (50 ms) and reads the rows of every
recheck asked meanwhile in one query, one worker thread for all of them. A read was the
largest single cost of a handoff call in the server (bench/handoff.py: about 1.5 ms of CPU
per call, a worker-thread hop and four PostgreSQL round trips each passing the GIL back and
forth with the event loop); a few tens of milliseconds more before a DND found while it rings
withdraws the attempt change nothing for the caller (the phone in DND does not ring).

Entries are per (domain, number), at most ``max_entries`` of them, the least recently stored
dropped first; a process (each ``serve`` worker) has its own.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import attrs
import trio

from callcontrol.db import Database, DatabaseUnavailable
from callcontrol.destinations import fusionpbx
from callcontrol.destinations.fusionpbx import ExtensionState

MAX_AGE_SECONDS = 30.0
MAX_ENTRIES = 10_000
GATHER_SECONDS = 0.05

Key = tuple[UUID, str]


@attrs.define(eq=False)
class _Batch:
    """Rechecks read together: the keys asked, then the states (or the error) for all."""

    keys: set[Key] = attrs.field(factory=set)
    done: trio.Event = attrs.field(factory=trio.Event)
    states: dict[Key, ExtensionState] = attrs.field(factory=dict)
    error: DatabaseUnavailable | None = None


@attrs.define(eq=False)
class ExtensionStates:
    db: Database
    max_age: float = MAX_AGE_SECONDS
    max_entries: int = MAX_ENTRIES
    clock: Callable[[], float] = trio.current_time
    gather: float = GATHER_SECONDS
    _known: dict[Key, tuple[float, ExtensionState]] = attrs.field(factory=dict)
    _gathering: _Batch | None = None

    def cached(self, domain_uuid: UUID, number: str) -> ExtensionState | None:
        """The state last read, if it is younger than ``max_age``; never waits."""
        entry = self._known.get((domain_uuid, number))
        if entry is None or self.clock() - entry[0] > self.max_age:
            return None
        return entry[1]

    async def read(self, domain_uuid: UUID, number: str) -> ExtensionState:
        """Read the row now (raises ``DatabaseUnavailable``) and remember it."""
        state = await fusionpbx.extension_state(self.db, domain_uuid, number)
        self._store((domain_uuid, number), state)
        return state

    async def reread(self, domain_uuid: UUID, number: str) -> ExtensionState:
        """``read``, gathered with the other rereads asked within ``gather`` (the recheck
        while it rings): one query for all of them. Raises ``DatabaseUnavailable``."""
        key = (domain_uuid, number)
        batch = self._gathering
        if batch is not None:
            batch.keys.add(key)
            await batch.done.wait()
        else:
            batch = self._gathering = _Batch({key})
            try:
                await trio.sleep(self.gather)
                self._gathering = None  # asked from now on: the next batch
                batch.states = await fusionpbx.extension_states(self.db, batch.keys)
            except DatabaseUnavailable as exc:
                batch.error = exc
            finally:
                if self._gathering is batch:
                    self._gathering = None
                batch.done.set()
            for known, state in batch.states.items():
                self._store(known, state)
        if batch.error is not None:
            raise batch.error
        found = batch.states.get(key)
        if found is None:  # the batch's own task was cancelled before the rows came back
            return await self.read(domain_uuid, number)
        return found

    def _store(self, key: Key, state: ExtensionState) -> None:
        self._known.pop(key, None)
        self._known[key] = (self.clock(), state)
        while len(self._known) > self.max_entries:
            del self._known[next(iter(self._known))]

