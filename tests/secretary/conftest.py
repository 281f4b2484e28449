"""An office for AI-secretary tests: real PostgreSQL, the simulated FreeSWITCH, the scripted
realtime model over real websockets, and the real server handler with the secretary flow.

The model's websocket is real, so these tests run on the real clock with short scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from callcontrol.config import load_settings
from callcontrol.destinations.directory import Directory
from callcontrol.handoff.service import HandoffService
from callcontrol.media.unicast import UnicastPorts
from callcontrol.metrics import Metrics
from callcontrol.secretary import secretary_flow
from callcontrol.server import App, handle_call
from callcontrol.services import Services
from callcontrol.testing.database import (
    NIL_SECRETARY,
    StockPBX,
    add_destination,
    add_domain,
    add_extension,
    add_secretary,
    add_voicemail,
    set_secretary,
)
from callcontrol.testing.freeswitch import FreeSwitchSim, SimCall, open_freeswitch_sim
from callcontrol.testing.realtime import ScriptedRealtime
from tests.ports import unicast_ports

DOMAIN = "pbx.example.com"
SUPORTE = "user/1001@pbx.example.com"
ATENDIMENTO = "loopback/9000/pbx.example.com"


@attrs.define
class Office:
    db: Any
    sim: FreeSwitchSim
    nursery: trio.Nursery
    domain_uuid: Any
    secretary_uuid: Any
    metrics: Metrics = attrs.field(factory=Metrics)
    ports: UnicastPorts = attrs.field(factory=lambda: UnicastPorts(load_settings(
        {"CALLCONTROL_UNICAST_PORTS": unicast_ports(46000, 46999)}).unicast_ports))

    def services(self, model_url: str, **settings: Any) -> Services:
        env = {
            "REALTIME_URL": model_url,
            "OPENAI_API_KEY": "sk-test-not-a-real-key",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(46000, 46999),
        }
        config = load_settings(env, **settings)
        directory = Directory(self.db)
        return Services(
            settings=config,
            db=self.db,
            directory=directory,
            handoff=HandoffService(directory, self.db, config, self.metrics),
            metrics=self.metrics,
            unicast_ports=self.ports,
            # The simulator keeps unicast *state* but sends no caller audio: do not take
            # the silence for a dead stream.
            media_lost_after=60.0,
        )

    def call(self, services: Services, **kwargs: Any) -> SimCall:
        ours, theirs = trio.testing.memory_stream_pair()
        app = App(settings=services.settings, flow=secretary_flow, services=services)
        self.nursery.start_soon(handle_call, ours, app)
        variables = {
            "domain_uuid": str(self.domain_uuid),
            "domain_name": DOMAIN,
            "voice_secretary_uuid": str(self.secretary_uuid or NIL_SECRETARY),
        }
        return self.sim.attach_outbound(
            theirs,
            caller_number="5511988887777",
            caller_name="Maria Souza",
            variables=variables,
            **kwargs,
        )

    @asynccontextmanager
    async def model(
        self, script: list[Any], **kwargs: Any
    ) -> AsyncIterator[tuple[ScriptedRealtime, str]]:
        server = ScriptedRealtime(script, **kwargs)
        async with server as url:
            yield server, url


@pytest.fixture
async def office(db, nursery, fusionpbx_schema: StockPBX):
    """A clinic's domain. On a stock FusionPBX: the domain's secretary (callcontrol's own row)
    and the shipped dialplan's nil ``voice_secretary_uuid``; where the other voice-secretary app
    is installed, one of its secretaries, named by the call. Destinations serve the domain."""
    domain_uuid = await add_domain(db, DOMAIN)
    secretary_uuid = None
    if fusionpbx_schema.secretary_app:
        secretary_uuid = await add_secretary(db, domain_uuid, company_name="Clínica Exemplo")
    else:
        await set_secretary(db, domain_uuid, company_name="Clínica Exemplo")
    await add_extension(db, domain_uuid, "1001")
    await add_voicemail(db, domain_uuid, "1001")
    await add_destination(
        db,
        domain_uuid,
        "Suporte",
        "extension",
        "1001",
        department="Suporte técnico",
        ring_timeout_seconds=3,
    )
    await add_destination(
        db,
        domain_uuid,
        "Atendimento",
        "ring_group",
        "9000",
        is_default=True,
        ring_timeout_seconds=3,
    )
    async with open_freeswitch_sim(domain=DOMAIN, latency=0.005) as sim:
        yield Office(db, sim, nursery, domain_uuid, secretary_uuid)


async def wait_for_command(call: SimCall, text: str, timeout: float = 10.0) -> Any:
    with trio.fail_after(timeout):
        return await call.wait_for_command(
            lambda c: text in c.line or any(text == value for _, value in c.headers)
        )
