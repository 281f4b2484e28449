"""One Event Socket connection as mod_event_socket's listener thread runs it.

The listener reads commands, answers each one, and sends queued events whenever it is not
busy with a command. Events fired while a command runs wait until its reply is written —
so replies come before the events they caused, and a blocking ``api originate`` freezes
the whole socket until it returns (callflow.md §4). Events are filtered when they are
fired (``Subscription``), as FreeSWITCH does.

At the controlled channel's hangup, a listener that does not linger discards its queued
events and closes after the disconnect notice; a lingering one sends the hangup events,
then the ``linger`` notice, and stays open (``linger``) or closes after N seconds.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import attrs
import trio

from callcontrol.esl import ProtocolError, serialize
from callcontrol.testing.freeswitch._events import SimEvent
from callcontrol.testing.freeswitch._parser import ClientCommand, CommandParser
from callcontrol.testing.freeswitch._subscription import MYEVENTS, Subscription

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._channel import Channel
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim

DEFAULT_PASSWORD = "ClueCon"  # noqa: S105 - FreeSWITCH's well-known default

# Commands that need ``full`` on an outbound socket; without it they are "not found".
_FULL_ONLY = frozenset({"event", "nixevent", "noevents", "api", "bgapi", "log", "nolog",
                        "linger", "nolinger", "sendevent"})


@attrs.frozen
class _Frame:
    data: bytes
    is_event: bool = False
    close: bool = False


@attrs.define(eq=False)
class Listener:
    sim: FreeSwitchSim
    stream: trio.abc.Stream
    outbound: bool
    channel: Channel | None = None
    full: bool = True
    password: str = DEFAULT_PASSWORD
    sub: Subscription = attrs.field(factory=Subscription)
    linger: int | None = None
    connected: bool = False
    authed: bool = False
    commands: list[ClientCommand] = attrs.field(factory=list)
    sent: list[tuple[float, bytes]] = attrs.field(factory=list)
    closed: trio.Event = attrs.field(factory=trio.Event)
    linger_notice_sent: bool = False
    _queue: deque[_Frame | ClientCommand] = attrs.field(factory=deque)
    _lot: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _dropping: bool = False
    _changed: trio.Event = attrs.field(factory=trio.Event)

    # -- the connection ---------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_loop, nursery.cancel_scope)
                await self._main_loop()
                nursery.cancel_scope.cancel()
        finally:
            self.closed.set()
            self._notify()
            self.sim.listener_closed(self)
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    async def _read_loop(self, scope: trio.CancelScope) -> None:
        parser = CommandParser()
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._put(_Frame(b"", close=True))
                return
            parser.feed(bytes(data))
            try:
                for command in parser:
                    self._put(attrs.evolve(command, at=trio.current_time()))
            except ProtocolError:
                self._put(_Frame(b"", close=True))
                return

    def _put(self, item: _Frame | ClientCommand) -> None:
        self._queue.append(item)
        self._lot.unpark_all()

    async def _main_loop(self) -> None:
        if not self.outbound:
            await self._write(serialize.auth_request())
        while True:
            while not self._queue:
                await self._lot.park()
            item = self._queue.popleft()
            if isinstance(item, _Frame):
                if item.data:
                    await self._write(item.data)
                if item.close:
                    return
                continue
            self.commands.append(item)
            self._notify()
            if not await self._handle(item):
                return

    async def _write(self, data: bytes) -> None:
        self.sent.append((trio.current_time(), data))
        self._notify()
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._put(_Frame(b"", close=True))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Wait until a command arrives or a frame is sent (for ``wait_for`` helpers)."""
        await self._changed.wait()

    # -- events -----------------------------------------------------------------------

    def offer(self, event: SimEvent) -> None:
        """Called for every event FreeSWITCH fires; keeps the ones this socket would get."""
        if self._dropping or self.closed.is_set() or not self.sub.wants(event):
            return
        if self.outbound and event.name == "CHANNEL_DESTROY" and self.channel is not None \
                and event.unique_id == self.channel.uuid:
            # The session is gone when CHANNEL_DESTROY fires: its socket never sees it.
            return
        self._put(_Frame(event.encode(self.sub.fmt), is_event=True))

    def session_hangup_begins(self) -> None:
        if self.linger is not None:
            return
        # FreeSWITCH flushes the queue and closes as soon as it sees the channel down.
        self._dropping = True
        self._queue = deque(i for i in self._queue if not (isinstance(i, _Frame) and i.is_event))
        self._put(self._disconnect_frame())

    def session_hangup_ends(self) -> None:
        if self.linger is None or self.channel is None:
            return
        self._put(_Frame(serialize.linger_notice(self.channel.uuid, self.channel.name,
                                                 self.linger)))
        self.linger_notice_sent = True
        if self.linger > 0:
            self.sim.nursery.start_soon(self._linger_timeout, self.linger)

    async def _linger_timeout(self, seconds: int) -> None:
        await trio.sleep(seconds)
        if not self.closed.is_set():
            self._dropping = True
            self._put(self._disconnect_frame())

    def _disconnect_frame(self) -> _Frame:
        uuid = self.channel.uuid if self.outbound and self.channel is not None else None
        return _Frame(serialize.disconnect_notice(uuid), close=True)

    # -- commands ---------------------------------------------------------------------

    async def _reply(self, text: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        await self._write(serialize.command_reply(text, extra))

    async def _handle(self, cmd: ClientCommand) -> bool:
        """Answer one command; False ends the connection."""
        verb = cmd.verb
        if not self.outbound and not self.authed:
            return await self._auth(cmd)
        if self.outbound and not self.connected:
            if verb != "connect":
                await self._reply("-ERR command not found")
                return True
            await self._connect()
            return True
        if verb == "exit":
            await self._reply("+OK bye")
            self._dropping = True
            await self._write(self._disconnect_frame().data)
            return False
        if self.outbound and not self.full and verb in _FULL_ONLY:
            await self._reply("-ERR command not found")
            return True
        handler = _HANDLERS.get(verb)
        if handler is None:
            await self._reply("-ERR command not found")
            return True
        await handler(self, cmd)
        return True

    async def _auth(self, cmd: ClientCommand) -> bool:
        if cmd.verb == "auth" and cmd.arg == self.password:
            self.authed = True
            await self._reply("+OK accepted")
            return True
        if cmd.verb == "auth":
            await self._reply("-ERR invalid")
            return False
        await self._reply("-ERR command not found")
        return True

    async def _connect(self) -> None:
        assert self.channel is not None
        self.connected = True
        pairs = self.sim.factory.channel_data(self.channel)
        await self._write(serialize.connect_reply(pairs, control="full" if self.full
                                                  else "single-channel"))
        self.sim.socket_connected(self)

    async def _myevents(self, cmd: ClientCommand) -> None:
        if self.sub.myevents_uuid is not None:
            await self._reply("-ERR aready enabled.")
            return
        target = cmd.arg.split()[0] if cmd.arg and not self.outbound else None
        fmt = cmd.arg.split()[-1].lower() if cmd.arg else "plain"
        uuid = self.channel.uuid if self.channel is not None else target
        if uuid is None:
            await self._reply("-ERR invalid syntax")
            return
        self.sub.myevents_uuid = uuid
        self.sub.fmt = fmt if fmt in ("plain", "json", "xml") else "plain"
        self.sub.names.update(MYEVENTS)
        await self._reply("+OK Events Enabled")

    async def _event(self, cmd: ClientCommand) -> None:
        words = cmd.arg.split()
        if not words:
            await self._reply("-ERR no keywords supplied")
            return
        self.sub.subscribe(words)
        await self._reply(f"+OK event listener enabled {self.sub.fmt}")

    async def _nixevent(self, cmd: ClientCommand) -> None:
        self.sub.unsubscribe(cmd.arg.split())
        await self._reply("+OK events nixed")

    async def _noevents(self, cmd: ClientCommand) -> None:
        if not self.sub.active:
            await self._reply("-ERR not listening for events")
            return
        # noevents clears the list but not the myevents rule (callflow.md §1.3, x3).
        self.sub.clear()
        await self._reply("+OK no longer listening for events")

    async def _filter(self, cmd: ClientCommand) -> None:
        words = cmd.arg.split(" ", 1)
        header, value = words[0], (words[1] if len(words) > 1 else None)
        if header.lower() == "delete" and value:
            header, _, rest = value.partition(" ")
            self.sub.delete_filter(header, rest or None)
            await self._reply(f"+OK filter deleted. [{header}]=[{rest}]")
            return
        if header.lower() == "add" and value:
            header, _, value = value.partition(" ")
        if not header or not value:
            await self._reply("-ERR invalid syntax")
            return
        self.sub.add_filter(header, value)
        await self._reply(f"+OK filter added. [{header}]=[{value}]")

    async def _linger(self, cmd: ClientCommand) -> None:
        if self.channel is None:
            await self._reply("-ERR not controlling a session")
            return
        if cmd.arg.strip().isdigit() and int(cmd.arg) > 0:
            self.linger = int(cmd.arg)
            await self._reply(f"+OK will linger {self.linger} seconds")
        else:
            self.linger = -1
            await self._reply("+OK will linger")

    async def _nolinger(self, cmd: ClientCommand) -> None:
        if self.channel is None:
            await self._reply("-ERR not controlling a session")
            return
        self.linger = None
        await self._reply("+OK will not linger")

    async def _getvar(self, cmd: ClientCommand) -> None:
        value = self.channel.variables.get(cmd.arg, "") if self.channel is not None else ""
        await self._reply(value)

    async def _resume(self, cmd: ClientCommand) -> None:
        if self.channel is not None:
            self.channel.variables["socket_resume"] = "true"
        await self._reply("+OK")

    async def _divert(self, cmd: ClientCommand) -> None:
        on = cmd.arg.strip().lower() == "on"
        await self._reply("+OK events diverted" if on else "+OK events not diverted")

    async def _log(self, cmd: ClientCommand) -> None:
        await self._reply(f"+OK log level {cmd.arg or 'debug'} [7]")

    async def _nolog(self, cmd: ClientCommand) -> None:
        await self._reply("+OK no longer logging")

    async def _sendmsg(self, cmd: ClientCommand) -> None:
        await self._reply(self.sim.sendmsg(self, cmd))

    async def _sendevent(self, cmd: ClientCommand) -> None:
        await self._reply("+OK " + self.sim.sendevent(cmd))

    async def _api(self, cmd: ClientCommand) -> None:
        # Runs inline: nothing else is read or sent on this socket until it returns.
        # mod_event_socket answers an empty output with "-ERR no reply"
        output = await self.sim.api(cmd.arg, owner=self.channel) or "-ERR no reply\n"
        if self.linger_notice_sent and cmd.arg.split(" ", 1)[0] in self.sim.unanswered_api:
            return  # a fault a test asked for: the command runs, its reply never comes
        await self._write(serialize.api_response(output))

    async def _bgapi(self, cmd: ClientCommand) -> None:
        job_uuid = cmd.header("Job-UUID") or self.sim.new_uuid()
        await self._write(serialize.bgapi_reply(job_uuid))
        self.sim.bgapi(cmd.arg, job_uuid, owner=self.channel)


_HANDLERS = {
    "myevents": Listener._myevents,
    "event": Listener._event,
    "nixevent": Listener._nixevent,
    "noevents": Listener._noevents,
    "filter": Listener._filter,
    "linger": Listener._linger,
    "nolinger": Listener._nolinger,
    "getvar": Listener._getvar,
    "resume": Listener._resume,
    "divert_events": Listener._divert,
    "log": Listener._log,
    "nolog": Listener._nolog,
    "sendmsg": Listener._sendmsg,
    "sendevent": Listener._sendevent,
    "api": Listener._api,
    "bgapi": Listener._bgapi,
}
