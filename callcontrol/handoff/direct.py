"""A handoff with nobody to talk to the caller: the AI failed, or there is no AI.

Rings the destination on hold like any handoff; on failure it follows the destination's
``fallback_action`` by itself (there is no AI to offer a callback, so that becomes the
default destination, then voicemail or a goodbye). Used when the AI websocket cannot be
reached or dies, so the caller is never left in silence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from callcontrol.destinations.model import FallbackAction
from callcontrol.handoff.fallback import goodbye_and_hang_up, to_voicemail, wait_while_bridged
from callcontrol.handoff.hold import HoldMusic
from callcontrol.handoff.service import CallIdentity, HandoffReply, HandoffService


@attrs.frozen
class DirectResult:
    replies: tuple[HandoffReply, ...]
    final: str  # voicemail | goodbye | agent_left | callback_requested | left_bridged


async def direct_handoff(
    ctx: Any,
    service: HandoffService,
    said: str,
    hold: HoldMusic,
    *,
    goodbye_prompt: str | None,
    on_reply: Callable[[HandoffReply], None] = lambda _reply: None,
    before_goodbye: Callable[[], Awaitable[bool]] | None = None,
) -> DirectResult:
    reparks = ctx.reparks_after_bridge
    replies = [await service.transfer(ctx, said, hold=hold)]
    reply = replies[-1]
    on_reply(reply)
    if not reply.success and reply.fallback in (
        FallbackAction.TRANSFER_DEFAULT.value,
        FallbackAction.OFFER_CALLBACK.value,
        None,
    ):
        who = CallIdentity.of(ctx.call)
        default = await service.default_besides(who, reply)
        if default is not None:
            ctx.log.info("handoff.fallback", action="transfer_default", destination=default.name)
            replies.append(await service.ring(ctx, who, default, ctx.log, hold=hold))
            reply = replies[-1]
            on_reply(reply)
    if reply.success:
        if not await wait_while_bridged(ctx, reply.destination or "", reparks):
            return DirectResult(tuple(replies), "left_bridged")
        await goodbye_and_hang_up(ctx, goodbye_prompt)
        return DirectResult(tuple(replies), "agent_left")
    if reply.fallback == FallbackAction.VOICEMAIL.value:
        who = CallIdentity.of(ctx.call)
        number = await service.mailbox_of(who, reply)
        if number and who.domain_name:
            await to_voicemail(ctx, number, who.domain_name)
            return DirectResult(tuple(replies), "voicemail")
    if before_goodbye is not None and await before_goodbye():
        return DirectResult(tuple(replies), "callback_requested")
    ctx.log.info("handoff.fallback", action="hangup", status=reply.status)
    await goodbye_and_hang_up(ctx, goodbye_prompt)
    return DirectResult(tuple(replies), "goodbye")
