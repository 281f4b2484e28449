"""A small PBX for handoff tests: real PostgreSQL, simulated FreeSWITCH, the real server
handler, all on MockClock (the database runs inline so the clock never jumps mid-query)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
import trio
import trio.testing

from callcontrol.config import load_settings
from callcontrol.destinations.directory import Directory
from callcontrol.handoff.hold import BreakHold
from callcontrol.handoff.service import HandoffReply, HandoffService
from callcontrol.metrics import Metrics
from callcontrol.server import App, handle_call
from callcontrol.testing.database import add_domain, add_extension, add_secretary
from callcontrol.testing.freeswitch import FreeSwitchSim, SimCall, open_freeswitch_sim

DOMAIN = "pbx.example.com"
MOH = "local_stream://moh"
# A Wednesday, 10:00 in São Paulo: inside ordinary business hours.
WEDNESDAY_10AM = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


@attrs.define
class Pbx:
    db: Any
    sim: FreeSwitchSim
    nursery: trio.Nursery
    domain_uuid: Any
    secretary_uuid: Any
    service: HandoffService
    metrics: Metrics
    replies: list[HandoffReply] = attrs.field(factory=list)
    now: datetime = WEDNESDAY_10AM
    _reply_send: Any = None
    _reply_receive: Any = None

    def __attrs_post_init__(self) -> None:
        self._reply_send, self._reply_receive = trio.open_memory_channel[HandoffReply](100)

    def record(self, reply: HandoffReply) -> None:
        self.replies.append(reply)
        self._reply_send.send_nowait(reply)

    async def next_reply(self) -> HandoffReply:
        # On MockClock a deadlock jumps straight to this deadline: a failure, never a hang.
        with trio.fail_after(3600):
            reply: HandoffReply = await self._reply_receive.receive()
        return reply

    def call(
        self,
        flow: Callable[[Any], Awaitable[None]],
        *,
        wrap: Callable[[trio.abc.Stream], trio.abc.Stream] | None = None,
        **kwargs: Any,
    ) -> SimCall:
        """A call into the server; ``wrap`` puts something between the server and its end of
        the socket (to hold back what the switch says, say)."""
        ours, theirs = trio.testing.memory_stream_pair()
        app = App(settings=self.service.settings, flow=flow)
        self.nursery.start_soon(handle_call, wrap(ours) if wrap else ours, app)
        variables = {
            "domain_uuid": str(self.domain_uuid),
            "domain_name": DOMAIN,
            "voice_secretary_uuid": str(self.secretary_uuid),
        }
        return self.sim.attach_outbound(
            theirs,
            caller_number=kwargs.pop("caller_number", "5511988887777"),
            caller_name=kwargs.pop("caller_name", "Maria Souza"),
            variables=variables,
            **kwargs,
        )

    def transfer_flow(self, said: str) -> Callable[[Any], Awaitable[None]]:
        """Answer, hand off to ``said`` on hold music, keep the reply; hang up on failure."""

        async def flow(ctx: Any) -> None:
            await ctx.call.answer()
            reply = await self.service.transfer(ctx, said, hold=BreakHold(ctx.call, MOH))
            self.record(reply)
            if not reply.success:
                await ctx.call.hangup()
                return
            await ctx.caller_gone.wait()

        return flow

    async def extension(self, number: str, **kwargs: Any) -> None:
        await add_extension(self.db, self.domain_uuid, number, **kwargs)


@pytest.fixture
async def pbx(db, nursery):
    domain_uuid = await add_domain(db, DOMAIN)
    secretary_uuid = await add_secretary(db, domain_uuid)
    metrics = Metrics()
    settings = load_settings({})
    holder: dict[str, Pbx] = {}
    service = HandoffService(
        Directory(db), db, settings, metrics, now=lambda: holder["pbx"].now
    )
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        holder["pbx"] = Pbx(db, sim, nursery, domain_uuid, secretary_uuid, service, metrics)
        yield holder["pbx"]
