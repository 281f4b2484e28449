"""The API commands (``api`` / ``bgapi``) with the outputs a real FreeSWITCH 1.10 gives.

Outputs are byte-for-byte those of the recordings: ``+OK\\n`` for uuid_kill / uuid_setvar /
uuid_break / uuid_transfer, ``+OK <b>\\n`` for uuid_bridge, ``true``/``false`` (no newline)
for uuid_exists, the bare value (no newline) or ``_undef_`` for uuid_getvar, ``-ERR <cmd>
Command not found!\\n`` for an unknown command (or one whose module is not loaded). From
FreeSWITCH's source (mod_commands.c, mod_local_stream.c): ``FreeSWITCH Version <full>
(<revision>)\\n`` for version, ``true``/``false`` (no newline) for module_exists, and
``local_stream show`` (``_local_stream``). An empty output reaches the socket as ``-ERR no
reply\\n`` (mod_event_socket; ``_listener``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from callcontrol.testing.freeswitch._channel import Channel, Message
from callcontrol.testing.freeswitch._dialplan import reach
from callcontrol.testing.freeswitch._local_stream import local_stream_api
from callcontrol.testing.freeswitch._originate import originate

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim

NO_CHANNEL = "-ERR No such channel!\n"
Handler = Callable[["FreeSwitchSim", str], Awaitable[str]]


async def run_api(sim: FreeSwitchSim, line: str) -> str:
    command, _, args = line.strip().partition(" ")
    handler = _COMMANDS.get(command.lower())
    if handler is None:
        return f"-ERR {command} Command not found!\n"
    return await handler(sim, args.strip())


def _channel(sim: FreeSwitchSim, uuid: str) -> Channel | None:
    ch = sim.channels.get(uuid)
    return ch if ch is not None and ch.alive else None


async def _status(sim: FreeSwitchSim, args: str) -> str:
    up = sim.uptime()
    ms = int(up * 1000)
    return (
        f"UP 0 years, 0 days, {ms // 3_600_000} hours, {ms // 60_000 % 60} minutes, "
        f"{ms // 1000 % 60} seconds, {ms % 1000} milliseconds, 0 microseconds\n"
        f"FreeSWITCH (Version {_full_human(sim)}) is ready\n"
        f"{sim.sessions_since_startup} session(s) since startup\n"
        f"{len(sim.channels)} session(s) - peak {sim.peak_sessions}, last 5min "
        f"{sim.peak_sessions} \n"
        "0 session(s) per Sec out of max 50, peak 2, last 5min 2 \n"
        "200 session(s) max\nmin idle cpu 0.00/99.00\nCurrent Stack Size/Max 240K/8192K\n"
    )


def _full_human(sim: FreeSwitchSim) -> str:
    # switch_version_full_human(): "1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit"
    return f"{sim.version.split('+', 1)[0]} {sim.version_revision}"


async def _version(sim: FreeSwitchSim, args: str) -> str:
    """mod_commands' version_function: ``short`` gives major.minor.micro."""
    if not args:
        return f"FreeSWITCH Version {sim.version} ({sim.version_revision})\n"
    if "short" in args.split(" ", 1)[0].lower():
        numbers = sim.version.split("-", 1)[0].split(".")
        return ".".join([*numbers, "0", "0"][:3]) + "\n"
    return f"FreeSWITCH Version {sim.version} ({_full_human(sim)})\n"


async def _module_exists(sim: FreeSwitchSim, args: str) -> str:
    if not args:
        return ""  # nothing written: "-ERR no reply" on the socket
    return "true" if args in sim.modules else "false"


async def _local_stream(sim: FreeSwitchSim, args: str) -> str:
    if "mod_local_stream" not in sim.modules:
        return "-ERR local_stream Command not found!\n"
    return local_stream_api(sim.local_streams, args)


async def _originate(sim: FreeSwitchSim, args: str) -> str:
    return await originate(sim, args)


async def _uuid_kill(sim: FreeSwitchSim, args: str) -> str:
    uuid, _, cause = args.partition(" ")
    ch = _channel(sim, uuid)
    if ch is None:
        return NO_CHANNEL
    sim.flow.hangup(ch, cause.strip() or "NORMAL_CLEARING")
    return "+OK\n"


async def _uuid_bridge(sim: FreeSwitchSim, args: str) -> str:
    words = args.split()
    if len(words) < 2:
        return "-USAGE: <uuid> <other_uuid>\n"
    a, b = _channel(sim, words[0]), _channel(sim, words[1])
    if a is None or b is None:
        return f"-ERR Invalid uuid {words[0] if a is None else words[1]}\n"
    if "answered" not in (a.answer_state, b.answer_state):
        return "-ERR Neither channel is answered, cannot bridge them.\n"
    sim.nursery.start_soon(sim.flow.bridge, a, b)
    return f"+OK {b.uuid}\n"


async def _uuid_transfer(sim: FreeSwitchSim, args: str) -> str:
    words = args.split()
    if len(words) < 2:
        return "-USAGE: [-bleg|-both] <uuid> <dest-exten> [<dialplan>] [<context>]\n"
    ch = _channel(sim, words[0])
    if ch is None:
        return NO_CHANNEL
    dest = [w for w in words[1:] if not w.startswith("-")]
    if dest[:2] != ["park", "inline"]:
        # CF_TRANSFER is set now: a socket ending meanwhile does not stop the transfer
        ch.extra["transferring"] = " ".join(dest)
        sim.nursery.start_soon(_transfer_away, sim, ch, " ".join(dest))
        return "+OK\n"
    ch.in_transit = True
    sim.nursery.start_soon(sim.flow.transfer_park_inline, ch)
    return "+OK\n"


async def _transfer_away(sim: FreeSwitchSim, ch: Channel, target: str) -> None:
    """A transfer into the dialplan (``*991001 XML pbx``, a ring group): the channel leaves
    the socket app and our world, alive (``SimLeg.reached``)."""
    await trio.sleep(sim.latency)
    if not ch.alive:
        return
    ch.extra["transferred"] = True
    sim.flow.leave_park(ch)
    reach(sim, ch, target)


async def _uuid_park(sim: FreeSwitchSim, args: str) -> str:
    ch = _channel(sim, args.split(maxsplit=1)[0] if args else "")
    if ch is None:
        return NO_CHANNEL
    sim.nursery.start_soon(sim.flow.uuid_park, ch)
    return "+OK\n"


async def _uuid_break(sim: FreeSwitchSim, args: str) -> str:
    words = args.split()
    ch = _channel(sim, words[0] if words else "")
    if ch is None:
        return NO_CHANNEL
    if "all" in words[1:]:
        ch.queue.clear()
    sim.nursery.start_soon(_break_later, sim, ch)
    return "+OK\n"


async def _break_later(sim: FreeSwitchSim, ch: Channel) -> None:
    await trio.sleep(sim.latency)
    if ch.alive and ch.app is not None and ch.app.name in ("playback", "endless_playback",
                                                            "sleep"):
        sim.flow.finish_app(ch, "FILE PLAYED")


async def _uuid_broadcast(sim: FreeSwitchSim, args: str) -> str:
    words = args.split()
    ch = _channel(sim, words[0] if words else "")
    if ch is None or len(words) < 2:
        return "-ERR invalid uuid\n"
    target = words[1]
    app, sep, app_arg = target.partition("::")
    message = Message("execute", app=app.split("!")[0], arg=app_arg) if sep else Message(
        "execute", app="playback", arg=target)
    ch.post(message)
    return "+OK Message sent\n"


async def _uuid_audio_stream(sim: FreeSwitchSim, args: str) -> str:
    """mod_audio_stream's api, when the module is loaded (``media_peers=True``)."""
    peer = sim.audio_stream
    if peer is None:
        return "-ERR uuid_audio_stream Command not found!\n"
    uuid = args.split(" ", 1)[0]
    if _channel(sim, uuid) is None:
        return "-ERR Operation Failed\n"
    # Empty output (e.g. mix "MONO") becomes "-ERR no reply" on the socket (media.md §2.4).
    return await peer.api(args) or "-ERR no reply\n"


async def _uuid_setvar(sim: FreeSwitchSim, args: str) -> str:
    uuid, _, rest = args.partition(" ")
    ch = _channel(sim, uuid)
    if ch is None:
        return NO_CHANNEL
    name, _, value = rest.strip().partition(" ")
    if value:
        ch.variables[name] = value
    else:
        ch.variables.pop(name, None)
    return "+OK\n"


async def _uuid_getvar(sim: FreeSwitchSim, args: str) -> str:
    uuid, _, name = args.partition(" ")
    ch = _channel(sim, uuid)
    if ch is None:
        return NO_CHANNEL
    return ch.variables.get(name.strip()) or "_undef_"


async def _uuid_exists(sim: FreeSwitchSim, args: str) -> str:
    return "true" if _channel(sim, args.strip()) is not None else "false"


async def _show(sim: FreeSwitchSim, args: str) -> str:
    words = args.split()
    what = words[0] if words else ""
    as_json = words[-2:] == ["as", "json"]
    if what == "registrations":
        rows = sim.registration_rows()
    elif what in ("channels", "calls"):
        rows = [_channel_row(sim, ch) for ch in sim.channels.values() if ch.alive]
    else:
        return "-USAGE: show codec|endpoint|application|api|dialplan|file|timer|calls [count]|" \
               "channels [count|like <match string>]|...\n"
    if not as_json:
        if not rows:
            return "\n0 total.\n"
        head = ",".join(rows[0])
        body = "\n".join(",".join(r.values()) for r in rows)
        return f"{head}\n{body}\n\n{len(rows)} total.\n"
    if not rows:
        return '{"row_count": 0}\n'
    return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))


def _channel_row(sim: FreeSwitchSim, ch: Channel) -> dict[str, str]:
    # the channels table keeps the last CHANNEL_EXECUTE's application (e.g. uuid_bridge)
    running = ch.app or ch.host_app
    app_name, app_arg = (running.name, running.arg) if running else (ch.last_app, ch.last_arg)
    return {
        "uuid": ch.uuid, "direction": ch.direction,
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ch.created)),
        "created_epoch": str(int(ch.created)), "name": ch.name, "state": ch.state,
        "cid_name": ch.caller_id_name, "cid_num": ch.caller_id_number,
        "ip_addr": ch.network_addr, "dest": ch.destination_number,
        "application": app_name, "application_data": app_arg,
        "dialplan": "XML" if ch.direction == "inbound" else "xml", "context": ch.context,
        "read_codec": ch.read_codec, "read_rate": str(ch.read_rate),
        "read_bit_rate": "64000", "write_codec": ch.read_codec,
        "write_rate": str(ch.read_rate), "write_bit_rate": "64000", "secure": "",
        "hostname": sim.factory.hostname, "presence_id": ch.variables.get("presence_id", ""),
        "presence_data": "", "accountcode": "", "callstate": ch.call_state,
        "callee_name": ch.callee_id_name, "callee_num": ch.callee_id_number,
        "callee_direction": "", "call_uuid": ch.uuid, "sent_callee_name": "",
        "sent_callee_num": "", "initial_cid_name": ch.caller_id_name,
        "initial_cid_num": ch.caller_id_number, "initial_ip_addr": ch.network_addr,
        "initial_dest": ch.destination_number, "initial_dialplan": "XML",
        "initial_context": ch.context,
    }


async def _sofia_contact(sim: FreeSwitchSim, args: str) -> str:
    target = args.rsplit("/", maxsplit=1)[-1]
    reg = sim.registrations.get(target)
    return reg["url"] if reg else "error/user_not_registered"


async def _user_exists(sim: FreeSwitchSim, args: str) -> str:
    words = args.split()
    if len(words) < 3:
        return "false"
    key = f"{words[1]}@{words[2]}"
    return "true" if key in sim.registrations or key in sim.directory else "false"


async def _hupall(sim: FreeSwitchSim, args: str) -> str:
    cause = args.split(maxsplit=1)[0] if args else "MANAGER_REQUEST"
    for ch in list(sim.channels.values()):
        sim.flow.hangup(ch, cause)
    return "+OK hupall\n"


_COMMANDS: dict[str, Handler] = {
    "status": _status,
    "version": _version,
    "module_exists": _module_exists,
    "local_stream": _local_stream,
    "originate": _originate,
    "uuid_kill": _uuid_kill,
    "uuid_bridge": _uuid_bridge,
    "uuid_transfer": _uuid_transfer,
    "uuid_park": _uuid_park,
    "uuid_break": _uuid_break,
    "uuid_broadcast": _uuid_broadcast,
    "uuid_setvar": _uuid_setvar,
    "uuid_audio_stream": _uuid_audio_stream,
    "uuid_getvar": _uuid_getvar,
    "uuid_exists": _uuid_exists,
    "show": _show,
    "sofia_contact": _sofia_contact,
    "user_exists": _user_exists,
    "hupall": _hupall,
}
