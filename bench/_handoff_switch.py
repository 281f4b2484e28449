"""The switch side of ``bench/handoff.py``: a simulated FreeSWITCH in its own process.

Run by ``bench/handoff.py`` (not by hand): pinned to its own core, it dials ``--calls`` calls
into the server over TCP, ramped in over ``--ramp`` seconds. Every agent leg (B) rings until a
random moment 0.5–3 s after the ramp ends, so every B-leg is ringing at the same time before
the first one answers. Each call is hung up ``--talk`` seconds after its bridge.

To split the server's waits into "the switch working" and "bytes in flight", every socket is
wrapped: for each command the switch notes when it parsed it and when it wrote its reply, and
when it wrote the B-leg's CHANNEL_ANSWER and the hold music's CHANNEL_EXECUTE_COMPLETE, all
on ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, the same clock in both processes on Linux).
The records go to ``--out`` as JSON, keyed by the caller's UUID.

``bench/handoff.py --switches K`` runs K of these, each dialling every K-th slot of one shared
ramp from the same ``--start-ns``: each process then routes its events among N/K sockets, not
N, which is what made one simulator saturate at 500 calls.

Two changes, in this process only, let the simulator keep up with hundreds of calls on one
core without changing a byte it writes: its event routing skips sockets whose filters cannot
match (``publish_routed``), an event is encoded once however many sockets receive it
(``encode_once``), and the per-byte ``url_encode`` of event headers is memoised
(header values repeat across a call's events). Even so, the simulator costs far more CPU per
call than the server; its share of the waits is reported as "switch".
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import structlog
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it

from callcontrol.esl import _serialize  # noqa: E402
from callcontrol.testing.freeswitch import (  # noqa: E402
    Answer,
    Endpoints,
    FreeSwitchSim,
    Outcome,
    SimEvent,
    open_freeswitch_sim,
)

DOMAIN = "pbx.example.com"
WATCHED = frozenset(
    {
        "api uuid_break",
        "api uuid_setvar",
        "api uuid_bridge",
        "bgapi originate",
        "filter",
        "execute playback",
    }
)


def label_of(command: Any) -> str:
    """The same labels as bench/handoff.py gives the commands it sends."""
    line: str = command.line
    if line.startswith("sendmsg"):
        return "execute " + (command.header("execute-app-name") or "")
    if line.startswith("filter"):
        return "filter"
    return " ".join(line.split(" ", 2)[:2])


_ROUTED_BY = ("unique-id", "job-owner-uuid")


def publish_routed(sim: FreeSwitchSim, event: SimEvent) -> None:
    """``FreeSwitchSim.publish`` without its N² cost at N calls.

    The stock ``publish`` offers every event to every socket, and each socket's filter check
    scans the event's ~100 headers once per filter: 500 calls made the simulator, not the
    server, the bottleneck. A socket whose filters are all plain ``Unique-ID`` /
    ``Job-Owner-UUID`` values (every call socket here) can only want an event carrying one of
    those values, so the others are skipped before the full check; any other socket gets the
    stock ``offer`` with its full ``Subscription.wants``.
    """
    sim.events.append(event)
    _encoded.clear()
    keys = {(event.unique_id or "").lower(), (event.get("Job-Owner-UUID") or "").lower()}
    for listener in list(sim.listeners):
        filters = listener.sub.filters
        routable = filters and all(h.lower() in _ROUTED_BY and not v.startswith(("-", "/"))
                                   for h, v in filters)  # fmt: skip
        if routable and not any(v.lower() in keys for _, v in filters):
            continue
        listener.offer(event)
    _encoded.clear()
    sim._notify()


_encoded: dict[tuple[int, str], bytes] = {}  # the event being published, by format
_encode = SimEvent.encode


def encode_once(event: SimEvent, fmt: str) -> bytes:
    """``SimEvent.encode``, done once per event however many sockets receive it."""
    key = (id(event), fmt)
    data = _encoded.get(key)
    if data is None:
        data = _encoded[key] = _encode(event, fmt)
    return data


class RingUntil(Endpoints):
    """Every leg answers at ``answer_from`` + U(0, spread) on the trio clock (≥ 0.5 s rings)."""

    def __init__(self, answer_from: float, spread: float) -> None:
        super().__init__()
        self.answer_from = answer_from
        self.spread = spread

    def lookup(self, dial: str) -> Outcome:
        due = self.answer_from + random.uniform(0.0, self.spread)
        return Answer(after=max(0.5, due - trio.current_time()))


class Stamped(trio.abc.Stream):
    """The switch's end of one call's socket, noting when replies and key events are written."""

    def __init__(self, inner: trio.abc.Stream, offset_ns: int) -> None:
        self.inner = inner
        self.offset_ns = offset_ns  # perf_counter_ns() - trio.current_time() in ns
        self.listener: Any = None
        self.replies = 0
        self.commands: list[list[Any]] = []  # [line, parsed_ns, reply_ns]
        self.answer_ns: int | None = None
        self.moh_done_ns: int | None = None
        self.originated = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        now = time.perf_counter_ns()
        head = bytes(data[:64])
        if self.replies == 0 or head.startswith(
            (b"Content-Type: command/reply", b"Content-Type: api/response")
        ):
            index = self.replies
            self.replies += 1
            cmds = self.listener.commands if self.listener is not None else []
            if index < len(cmds):
                label = label_of(cmds[index])
                if label in WATCHED:
                    self.originated = self.originated or label == "bgapi originate"
                    parsed = int(cmds[index].at * 1e9) + self.offset_ns
                    self.commands.append([label, parsed, now])
        elif self.originated and b"Content-Type: text/event-plain" in head:
            if self.answer_ns is None and b"Event-Name: CHANNEL_ANSWER" in data:
                self.answer_ns = now
            elif (
                self.moh_done_ns is None
                and b"Event-Name: CHANNEL_EXECUTE_COMPLETE" in data
                and b"Application: playback" in data
            ):
                self.moh_done_ns = now
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.inner.aclose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    offset_ns = time.perf_counter_ns() - int(trio.current_time() * 1e9)
    if args.start_ns:
        # Several switch processes share one ramp: all start dialling at the same moment.
        await trio.sleep(max(0.0, (args.start_ns - time.perf_counter_ns()) / 1e9))
    start = trio.current_time()
    endpoints = RingUntil(start + args.ramp + 0.5, 2.5)
    variables = {"domain_uuid": args.domain_uuid, "domain_name": DOMAIN,
                 "voice_secretary_uuid": args.secretary_uuid}  # fmt: skip
    records: dict[str, Any] = {}
    bridged = 0
    failed = 0
    async with open_freeswitch_sim(domain=DOMAIN, endpoints=endpoints,
                                   latency=args.latency) as sim:  # fmt: skip

        async def one_call(delay: float) -> None:
            nonlocal bridged, failed
            await trio.sleep(delay)
            tcp = await trio.open_tcp_stream("127.0.0.1", args.port)
            stamped = Stamped(tcp, offset_ns)
            call = sim.attach_outbound(
                stamped, caller_number="5511988887777", caller_name="Maria Souza",
                variables=variables, socket_address=f"127.0.0.1:{args.port}",
            )  # fmt: skip
            stamped.listener = call.listener
            # Polled: sim.wait_for wakes every waiter on any change, which 500 waiters can't afford.
            deadline = trio.current_time() + args.ramp + 10
            while call.bridged_to is None and call.alive and trio.current_time() < deadline:  # noqa: ASYNC110
                await trio.sleep(0.05)
            if call.bridged_to is None:
                failed += 1
            else:
                bridged += 1
                await trio.sleep(args.talk)
            if call.alive:
                await call.hangup()
            records[call.uuid] = {"commands": stamped.commands, "answer": stamped.answer_ns,
                                  "moh_done": stamped.moh_done_ns}  # fmt: skip

        async with trio.open_nursery() as nursery:
            # This process's share of the ramp's slots: calls index, index + of, index + 2*of...
            total = args.calls * args.of
            for i in range(args.calls):
                nursery.start_soon(one_call, args.ramp * (i * args.of + args.index) / total)
        peak = sim.peak_sessions
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"bridged": bridged, "failed": failed, "peak_sessions": peak,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "calls": records}  # fmt: skip


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--ramp", type=float, default=1.5)
    parser.add_argument("--talk", type=float, default=0.5)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--domain-uuid", required=True)
    parser.add_argument("--secretary-uuid", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--index", type=int, default=0, help="this process, of --of")
    parser.add_argument("--of", type=int, default=1, help="how many switch processes share")
    parser.add_argument("--start-ns", type=int, default=0, help="perf_counter_ns to start at")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and args.cpu >= 0:  # -1: left to the kernel
        os.sched_setaffinity(0, {args.cpu})
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=devnull))
    # This process only: the simulator made to keep up with N calls (see the module's doc).
    FreeSwitchSim.publish = publish_routed  # type: ignore[method-assign]
    SimEvent.encode = encode_once  # type: ignore[method-assign]
    _serialize.url_encode = functools.lru_cache(maxsize=1 << 18)(_serialize.url_encode)
    result = trio.run(main, args)
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    cli()
