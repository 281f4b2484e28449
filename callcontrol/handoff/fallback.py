"""What happens after a handoff: the caller's time with the agent, and the fallbacks.

* ``wait_while_bridged``: the caller talks to the agent. With ``park_after_bridge=true`` (set
  before every bridge), an agent who hangs up first leaves A parked — CHANNEL_UNBRIDGE then
  CHANNEL_PARK on the call's socket (callflow.md §3) — instead of dropping the caller. The
  caller hanging up ends the call as usual (the session cancels the flow).
* ``goodbye_and_hang_up``: a short prompt, then a clean hangup: the default when the agent
  leaves first, and the ``hangup`` fallback.
* ``to_voicemail``: FusionPBX leaves a message with the ``*99<extension>`` feature code in
  the domain's context, so the caller is transferred there and leaves our socket.
"""

from __future__ import annotations

import re
from typing import Any

import trio

from callcontrol.esl import CommandError, ConnectionClosed, commands

_EXTENSION = re.compile(r"[0-9A-Za-z*#+]{1,32}")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?")
GOODBYE_SECONDS = 15.0


def is_dialable_number(text: str) -> bool:
    """A number we may put in a ``uuid_transfer`` (digits, letters, ``*#+``; nothing else)."""
    return _EXTENSION.fullmatch(text) is not None


def is_domain_name(text: str) -> bool:
    return _DOMAIN.fullmatch(text) is not None


class UnsafeTransferTarget(ValueError):
    """A voicemail box or context that could change the meaning of the command."""


async def wait_while_bridged(ctx: Any, agent_leg: str, since: int) -> bool:
    """True when the agent hung up first and A is parked again (the caller still here);
    False when ``serve`` is stopping and the conversation was left to FreeSWITCH
    (``let_go_of_bridge``): the flow then ends without a word to anyone.

    ``since`` is ``ctx.reparks_after_bridge`` read before the handoff started.
    """
    agent_left = False
    async with trio.open_nursery() as race:

        async def agent_leaves() -> None:
            nonlocal agent_left
            await ctx.wait_repark_after_bridge(since)
            agent_left = True
            race.cancel_scope.cancel()

        async def serve_stops() -> None:
            await ctx.shutting_down.wait()
            race.cancel_scope.cancel()

        race.start_soon(agent_leaves)
        race.start_soon(serve_stops)
    if agent_left:
        ctx.log.info("handoff.agent_left_first", agent_leg=agent_leg)
        return True
    await let_go_of_bridge(ctx, agent_leg)
    return False


async def let_go_of_bridge(ctx: Any, agent_leg: str) -> None:
    """Leave a caller who talks to an agent to FreeSWITCH, untouched (``serve`` stopping).

    Our socket then ends with ``exit`` and no ``resume`` (``resume`` would take A out of the
    bridge, back into its extension's fallback). ``park_after_bridge`` is turned off — with
    nobody controlling A, a park would hold the caller in silence after the agent hangs up —
    and ``hangup_after_bridge`` makes the agent's hangup end the caller's leg, as on any
    phone call."""
    uuid = ctx.call.uuid
    try:
        await ctx.call.conn.send_many(
            commands.api("uuid_setvar", uuid, "park_after_bridge", "false"),
            commands.api("uuid_setvar", uuid, "hangup_after_bridge", "true"),
        )
    except ConnectionClosed:
        return
    ctx.log.info("call.left_bridged", agent_leg=agent_leg,
                 reason="serve is stopping; the bridge needs no socket")  # fmt: skip


async def goodbye_and_hang_up(ctx: Any, prompt: str | None) -> None:
    """Play ``prompt`` (if any) to the caller, then hang up with NORMAL_CLEARING."""
    call = ctx.call
    if prompt:
        try:
            execution = await call.conn.execute("playback", prompt)
            with trio.move_on_after(GOODBYE_SECONDS):
                await execution.completed()
        except (CommandError, ConnectionClosed) as exc:
            ctx.log.warning("call.goodbye_failed", error=repr(exc))
    ctx.log.info("call.hangup", reason="goodbye")
    await call.hangup("NORMAL_CLEARING")


async def to_voicemail(ctx: Any, extension: str, domain_name: str) -> None:
    """Transfer the caller to the voicemail of ``extension`` (FusionPBX ``*99<ext>``)."""
    if not is_dialable_number(extension) or not is_domain_name(domain_name):
        raise UnsafeTransferTarget(f"voicemail target {extension!r}@{domain_name!r}")
    ctx.log.info("handoff.fallback", action="voicemail", extension=extension)
    reply = await ctx.call.api("uuid_transfer", ctx.call.uuid, f"*99{extension}", "XML",
                               domain_name)  # fmt: skip
    if not reply.startswith("+OK"):
        ctx.log.error("handoff.voicemail_refused", reply=reply.strip())
