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

from callcontrol.esl import CommandError, ConnectionClosed

_EXTENSION = re.compile(r"[0-9A-Za-z*#+]{1,32}")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?")
GOODBYE_SECONDS = 15.0


class UnsafeTransferTarget(ValueError):
    """A voicemail box or context that could change the meaning of the command."""


async def wait_while_bridged(ctx: Any, agent_leg: str, since: int) -> None:
    """Return when the agent hung up first and A is parked again (the caller still here).

    ``since`` is ``ctx.reparks_after_bridge`` read before the handoff started.
    """
    await ctx.wait_repark_after_bridge(since)
    ctx.log.info("handoff.agent_left_first", agent_leg=agent_leg)


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
    if not _EXTENSION.fullmatch(extension) or not _DOMAIN.fullmatch(domain_name):
        raise UnsafeTransferTarget(f"voicemail target {extension!r}@{domain_name!r}")
    ctx.log.info("handoff.fallback", action="voicemail", extension=extension)
    reply = await ctx.call.api("uuid_transfer", ctx.call.uuid, f"*99{extension}", "XML",
                               domain_name)  # fmt: skip
    if not reply.startswith("+OK"):
        ctx.log.error("handoff.voicemail_refused", reply=reply.strip())
