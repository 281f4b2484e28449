"""The inbound client against the simulated FreeSWITCH's Event Socket port (real TCP)."""

from __future__ import annotations

import json
import random

import trio

from callcontrol.esl.inbound import Backoff, InboundClient
from callcontrol.testing.freeswitch import open_freeswitch_sim


class _LongestWait(random.Random):
    """Jitter that always picks the longest allowed pause."""

    def uniform(self, a, b):
        return b


def _inbound(sim):
    return [listener for listener in sim.listeners if not listener.outbound]


async def test_connects_authenticates_and_runs_api_commands(nursery):
    async with open_freeswitch_sim() as sim:
        sim.register("1001", "pbx.example.com")
        port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        client = InboundClient("127.0.0.1", port, "ClueCon", events=["CHANNEL_CREATE"])
        nursery.start_soon(client.run)
        with trio.fail_after(10):
            rows = json.loads(await client.api("show", "registrations", "as", "json"))
        assert rows["row_count"] == 1
        assert rows["rows"][0]["reg_user"] == "1001"
        lines = [c.line for c in _inbound(sim)[0].commands]
        assert lines[:2] == ["auth ClueCon", "event plain CHANNEL_CREATE"]
        nursery.cancel_scope.cancel()


async def test_reconnects_and_subscribes_again_after_a_drop(nursery):
    async with open_freeswitch_sim() as sim:
        port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        client = InboundClient(
            "127.0.0.1", port, "ClueCon",
            events=["CHANNEL_HANGUP"], filters=[("Event-Name", "CHANNEL_HANGUP")],
            backoff=Backoff(base=0.01, cap=0.05), rng=random.Random(1),
        )
        nursery.start_soon(client.run)
        with trio.fail_after(10):
            first = await client.connection()
            await trio.aclose_forcefully(first.stream)  # the connection drops, say
            await first.closed.wait()
            second = await client.connection()
        assert second is not first
        assert client.connections == 2
        (listener,) = _inbound(sim)  # the first one is gone
        lines = [c.line for c in listener.commands]
        assert lines[:3] == [
            "auth ClueCon", "event plain CHANNEL_HANGUP", "filter Event-Name CHANNEL_HANGUP"
        ]
        nursery.cancel_scope.cancel()


async def test_wrong_password_is_retried_with_backoff_not_in_a_tight_loop(nursery):
    async with open_freeswitch_sim() as sim:
        port = (await sim.serve_inbound(password="secret"))[0].socket.getsockname()[1]
        client = InboundClient("127.0.0.1", port, "wrong", backoff=Backoff(base=0.05, cap=0.05),
                               rng=_LongestWait())
        nursery.start_soon(client.run)
        started = trio.current_time()
        with trio.fail_after(10):
            while client.auth_failures < 3:
                await client.wait_changed()
        assert client.connections == 0
        # three refusals took at least two backoff pauses, not a tight loop
        assert trio.current_time() - started >= 0.1
        nursery.cancel_scope.cancel()


def test_backoff_grows_and_is_capped():
    rng = random.Random(3)
    backoff = Backoff(base=0.5, cap=30)
    delays = [max(backoff.delay(n, rng) for _ in range(200)) for n in range(10)]
    assert delays[0] <= 0.5
    assert delays[3] <= 4.0 and delays[3] > 2.0
    assert all(d <= 30 for d in delays)
