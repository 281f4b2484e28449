"""At start: the agent legs an earlier run of this instance left behind.

A ``serve`` that was killed (SIGKILL, a crash, the OOM killer) ran no cleanup: an agent's
phone may still ring for a caller who is gone from us, or an agent who answered that moment
sits in the leg's ``park`` hearing nothing. Every leg we originate carries
``callcontrol_instance=<CALLCONTROL_INSTANCE_ID>``, so the next start asks FreeSWITCH's inbound
Event Socket for the outbound channels, and kills those of this instance that nobody is
talking on: still ringing (callstate ``DOWN``/``RINGING``/``EARLY``), or answered but still in
the ``park`` they were originated into. A leg bridged to a caller is a live conversation and
is never touched. Without an inbound Event Socket this is skipped with one warning: the legs
then end at their own ``originate_timeout``. With several boxes in ``ESL_HOST`` each is asked
at once, on its own connection: a box that cannot be asked is one warning naming it, and the
others are cleaned all the same.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from callcontrol.config import EslBox, Settings
from callcontrol.esl import CommandError, ConnectionClosed, ProtocolError, commands
from callcontrol.esl.connection import EslConnection
from callcontrol.logs import get_logger

TIMEOUT_SECONDS = 5.0
_NOT_ANSWERED = frozenset({"DOWN", "RINGING", "EARLY"})


def is_orphan_candidate(row: dict[str, Any]) -> bool:
    """From ``show channels as json``: one of our legs nobody talks on (instance not known)."""
    if row.get("direction") != "outbound":
        return False
    return row.get("callstate") in _NOT_ANSWERED or row.get("application") == "park"


async def kill_orphaned_legs(settings: Settings, *, timeout: float = TIMEOUT_SECONDS) -> int:
    """Kill this instance's leftover agent legs on every box; returns how many. Never raises
    for FreeSWITCH's sake: a start is not stopped by a switch that cannot be asked."""
    killed: list[int] = []

    async def one(box: EslBox) -> None:
        killed.append(await _kill_on_box(settings, box, timeout))

    async with trio.open_nursery() as nursery:
        for box in settings.esl_boxes:
            nursery.start_soon(one, box)
    return sum(killed)


async def _kill_on_box(settings: Settings, box: EslBox, timeout: float) -> int:
    log = get_logger("callcontrol.server", esl=box.name)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(box.host, box.port)
    except (OSError, trio.TooSlowError) as exc:
        log.warning("server.orphans_not_checked", error=repr(exc),
                    effect="legs left by an earlier run ring until their originate_timeout",
                    fix="set ESL_HOST/ESL_PORT/ESL_PASSWORD to FreeSWITCH's inbound Event "
                        "Socket")  # fmt: skip
        return 0
    conn = EslConnection(stream, reply_timeout=timeout, log=log)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        try:
            with trio.fail_after(4 * timeout):
                return await _kill_ours(conn, settings, log)
        except (trio.TooSlowError, ConnectionClosed, ProtocolError, CommandError,
                ValueError) as exc:  # fmt: skip
            log.warning("server.orphans_not_checked", error=repr(exc))
            return 0
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()
            nursery.cancel_scope.cancel()
    raise AssertionError("unreachable")  # pragma: no cover


async def _kill_ours(conn: EslConnection, settings: Settings, log: Any) -> int:
    await conn.wait_greeting()
    await conn.send_ok(commands.auth(settings.esl_password))
    listing = await conn.api("show", "channels", "as", "json")
    rows: list[dict[str, Any]] = json.loads(listing).get("rows", [])
    in_socket_app = {str(r.get("uuid")) for r in rows if r.get("application") == "socket"}
    killed = 0
    for row in rows:
        uuid = str(row.get("uuid", ""))
        if not is_orphan_candidate(row) or not _looks_like_uuid(uuid):
            continue
        owner = (await conn.api("uuid_getvar", uuid, "callcontrol_instance")).strip()
        if owner != settings.instance_id:
            continue
        caller = (await conn.api("uuid_getvar", uuid, "callcontrol_call_uuid")).strip()
        if caller in in_socket_app:
            # its caller is under a socket right now: another process with the same
            # CALLCONTROL_INSTANCE_ID is ringing for it
            log.info("server.leg_kept", leg=uuid, caller=caller,
                     reason="its caller is still under a socket")  # fmt: skip
            continue
        reply = (await conn.api("uuid_kill", uuid, "ORIGINATOR_CANCEL")).strip()
        log.warning("server.orphan_leg_killed", leg=uuid, name=row.get("name"),
                    callstate=row.get("callstate"), reply=reply,
                    reason="left by an earlier run of this instance")  # fmt: skip
        killed += 1
    log.info("server.orphans_checked", channels=len(rows), killed=killed)
    return killed


def _looks_like_uuid(text: str) -> bool:
    return len(text) == 36 and all(c in "0123456789abcdefABCDEF-" for c in text)
