"""Media relay capacity: N concurrent calls streaming 20 ms frames both ways over native unicast.

Each call is a real ``UnicastTransport`` (UDP on loopback, L16 8 kHz line ↔ 24 kHz model, the
production codecs) whose caller frames go to an echo "model" that plays each frame straight
back, so both directions carry 50 frames/s. FreeSWITCH's side runs in a separate process (one
UDP socket per call, frames staggered over the 20 ms period like independent calls), so the
server process — one trio thread, i.e. one core — is measured alone.

Added relay latency, per frame:
* in:  kernel receive timestamp of the caller's datagram (SO_TIMESTAMPNS) → the frame, converted
  to 24 kHz, in the hands of the model-side consumer (socket queueing, loop lag, codecs, queue);
* out: the frame's 20 ms pacing slot → the moment it is handed to the kernel (loop lag).
A load passes when both p99s are ≤ 5 ms and ≥ 99 % of the caller's frames arrived. The
latencies are timed on every 4th call (``--measure-every``; the calls are alike, and the
instruments, a ``recvmsg`` with the kernel's stamp and four clock reads per frame, cost about
4 us a frame, which would be counted as the product's CPU); frames and CPU are counted for
every call. ``--measure-every 1`` times them all.

Under each load line, where that time went (``MeasuredEngine``, ``MeasuredTransport``): the in
latency split into kernel stamp → the start of the receive pass that read the frame → queued
for the call (after the batch's conversion) → the consumer task has it, and the out lateness
into slot → send phase start → sendto, each as p50 / p99 and as the mean of the slowest 1 %;
then the gaps between receive passes, frames per pass, the wall and CPU time of passes and of
send phases, and the calls per phase. queued → consumer is what any model-side consumer of
``frames()`` would wait (the echo consumer's own work is one ``play`` call, ~2 µs).

``--workers N`` measures calls per box instead of per core: every load runs once with one
server process and once with N, each on its own slice of the unicast ports as ``serve
--workers`` cuts them (``callcontrol.workers.split_ports``), against the same FreeSWITCH-side
process; nothing is pinned, so the workers and that process share the box's cores. It prints
the largest passing load for each and the ratio. Measured with ``--workers 2`` (L16, batched,
5 s, same 2-core box shared with other sessions, loadavg 2.4-12.7, 3 sweeps): no load passed
with either (p99 <= 5 ms both ways), so the ratio is not defined; at 200 calls the in p99 was
89 / 867 / 383 ms with 1 worker and 21 / 4508 / 108 ms with 2, at 300 327 against 36 ms in the
quietest sweep (loadavg 2.4-4.1), where 2 workers also delivered 100.4 % of frames against
93.4 %.

Two engines are measured in the same run (``--engine both``, the default): ``batched`` (the
media engine: one task that every 1 ms fires the due send phase, a twentieth of the sending
calls, and runs a receive pass, codecs vectorised over the batch) and ``percall`` (the shared
loops before it, one conversion per frame). The summary prints the largest passing load per
codec and engine and their ratio. The box is shared: repeat with ``--repeat`` and read the
medians. (``--workers`` runs the first codec with the first engine.)

Measured 2026-12-07 (2-core AMD EPYC VM, Python 3.11.7, the box shared with other work: load
average 3-7, this process waiting for a CPU 5-60 % of the time, ``runq``), ``--calls
100,200,300,400 --seconds 3 --repeat 2``: no load of 200 or more passed the 5 ms p99 with either
engine; 100 passed in one run of two for batched L16, batched PCMU and percall PCMU, never for
percall L16 (its sender fell to 54-76 % of the frames at 100 calls and 5-7 % at 200). CPU per
frame moved at 200-400 calls: L16 batched 21-25 us vs percall 64-81 us (about 3x); PCMU batched
18-22 us vs percall 19-25 us (no conversion to save there; what is left is the per-call consumer
task and the socket calls). That cost allows about 400 L16 / 500 PCMU calls per core at 100 %
CPU; whether 300 pass the p99 needs a quiet box.

Measured again 2026-12-07 15:23-15:28 after the engine rework (one task, 20 phases of 1 ms, a
timerfd clock, up to 4 receive rounds a pass, calls spread over phases), batched engine only,
the new engine and the one before it (a6d3e7a) alternating, ``--calls 100,200,300,400 --seconds
3``, two sweeps each; the box shared with 4 other sessions (loadavg 3.1-6.1, runq 1-67 %), so
no load of 200 or more passed with either and the absolute p99s are noise. What the breakdown
shows, at 200-300 calls in the calmer runs (runq <= 36 %):

* send phases: the old engine had every call in one phase (calls per phase p50 200 at 200 calls,
  300 at 300: the joining rule, see engine.py) and phase start -> sendto p50 1.6-4.1 ms; now
  11 and 16 calls per phase and p50 0.17-0.23 ms (p99 0.5-3.7);
* timing: receive passes p50 1.00-1.29 ms apart (old 1.6-2.6), slot -> phase start p50
  0.06-0.18 ms (1.6 at 300 PCMU, runq 36 %; old 0.40-1.08);
* backlog: the old engine, once passes fell under ~50/s, kept every socket's backlog (in p50
  126 ms-1.4 s in 3 of its 8 loads at 200-300 calls); the new one's in p50 stayed 0.5-17 ms;
* new, L16, 300 calls, runq 1.4 % (the calmest load of all): in p50 0.47 / p99 13.4 ms, out p50
  0.30 / p99 7.3 ms, 100.3 % of frames, CPU 77 %, 25.7 us a frame; the in p99 is queued ->
  consumer p99 7.0 (kernel -> pass p99 4.8, pass -> queued 2.8), the out p99 is slot -> phase
  p99 7.1 with phase -> sendto p99 0.5: the loop itself running late, i.e. at 77 % of a core a
  hiccup (gc max 2.3 ms, one 92 ms gap between passes) takes long to catch up on;
* CPU per frame at 100-200 calls: new 21-44 us, old 20-31 us: 1000 wake-ups a second while
  anything is sent (10 calls: 13-17 % CPU against 10-12 %) and five times as many send batches
  (each L16 conversion has a fixed numpy cost). That fixed cost is what a 2 ms tick would halve,
  at 1 ms more wait for a caller frame; not measured here (needs a quiet box).

Measured 2026-12-08 00:50-01:17 on the quiet box (load 0.3-1.8, nothing else running):
* ``--tick-ms 1`` against ``2``, alternating, three sweeps each at 200,300 calls: largest
  passing L16 load 200 / 200 / 0 (1 ms) against 300 / 0 / 200 (2 ms), PCMU 300 / 300 / 300
  against 300 / 200 / 200. No win for 2 ms, so 1 ms stays.
* Those failing runs were mostly the bench: the longest gap between passes ended 0.03-0.06 s
  after the measured window, when every call is cancelled at once, and the frames held up in
  that teardown were being counted. Now cut off at the window's end. After that,
  ``--calls 200,300 --repeat 3``: **300 calls pass for both codecs in all three sweeps**
  (L16 in p99 4.01 / 4.00 / 1.97 ms at 74-82 % CPU; PCMU 1.79 / 1.76 / 2.71 ms at 60-73 %),
  CPU per frame L16 26.9 us, PCMU 22.0 us. A second ``--calls 300,400 --repeat 3`` right
  after: L16 300 passed 3 of 3 (in p99 4.38 / 3.70 / 3.27 ms), PCMU 1 of 3 (5.27 / 2.57 /
  10.37 ms), 400 failed for both (in p99 6.3-38.6 ms at 80-96 % CPU). So 300 holds for L16
  (6 of 6) and mostly for PCMU (4 of 6); the ceiling is between 300 and 400.
* ``--workers 2`` (L16; the FreeSWITCH-side process shares the two cores), after the same
  window cut in the workers' side: ``--calls 300,350,400``: 1 worker passed none (in p99 6.3 /
  13.7 / 19.2 ms), 2 workers passed all three (4.2 / 4.7 / 4.6 ms); ``--calls
  200,300,400,500``: both passed 300 (ratio 1.00), neither 400 (12.1 against 7.4 ms), at 500
  86 against 16 ms. Before that cut the same runs gave 16.5 against 6.6 ms at 350. So a second
  worker adds up to 100 calls on this box, where the simulator's own process is the third user
  of two cores; a box whose switch is elsewhere has more to gain.

Run: .venv/bin/python bench/media.py [--calls 100,200,300] [--seconds 5] [--codec L16,PCMU]
     [--engine both|batched|percall] [--repeat 3] [--workers 2] [--tick-ms 1|2] [--quick]
"""

from __future__ import annotations

import os

# One BLAS thread: the batched resampler's matrix products are small, and OpenBLAS threads would
# take the other core (and be counted as this process's CPU) for no gain.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import resource
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcontrol.config import PortRange
from callcontrol.esl import Event, serialize
from callcontrol.esl.connection import EslConnection
from callcontrol.esl.outbound import OutboundCall
from callcontrol.logs import configure_logging
from callcontrol.media import engine as engine_module
from callcontrol.media.codecs import model_format_for_line, ulaw_encode
from callcontrol.media.engine import MediaEngine
from callcontrol.media.transport import CALLER_BUFFER_MS, FRAME_MS
from callcontrol.media.unicast import UnicastPorts, UnicastTransport, line_format_for
from callcontrol.server import settle_collector
from callcontrol.workers import WorkerRole, split_ports

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
FRAME = 0.020
HOST = "127.0.0.1"
# Every k-th call carries the timing instruments (kernel stamps through recvmsg, four clock
# reads and three deques per frame: about 4 us a frame); the others are plain production
# transports, so the CPU figures are the product's and the latencies a sample of its calls.
MEASURE_EVERY = int(os.environ.get("CALLCONTROL_BENCH_MEASURE_EVERY", "4"))


# --- FreeSWITCH's side (separate process) ------------------------------------------------------


def run_peers(base: int, n: int, seconds: float, codec: str) -> None:
    """n UDP endpoints bound at base+2k sending 20 ms frames to base+2k+1 every 20 ms."""
    sel = selectors.DefaultSelector()
    socks = []
    for k in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((HOST, base + 2 * k))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    t = np.arange(160) / 8000
    frame = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    if codec == "PCMU":
        frame = ulaw_encode(frame)  # flags: native on a PCMU leg: 160-byte G.711 frames
    # The server side closes our stdin once it has measured: stop then, not at ``seconds``
    # (a margin for a slow start), so a quick run does not wait out the margin.
    sel.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    start = time.monotonic()
    received = late = sent = 0
    slot = 0
    done = False
    while time.monotonic() - start < seconds and not done:
        due = start + slot * FRAME / 20
        # one twentieth of the calls per millisecond: independent calls are not in phase
        for k in range(slot % 20, n, 20):
            try:
                socks[k].sendto(frame, (HOST, base + 2 * k + 1))
                sent += 1
            except OSError:
                pass
        if time.monotonic() - due > 0.005:
            late += 1
        slot += 1
        while True:
            timeout = start + slot * FRAME / 20 - time.monotonic()
            if timeout <= 0:
                break
            for key, _ in sel.select(timeout):
                if key.fileobj is sys.stdin:
                    done = True  # EOF: the server side is done
                    sel.unregister(sys.stdin)
                    continue
                sock: Any = key.fileobj
                try:
                    while True:
                        sock.recv(2048)
                        received += 1
                except BlockingIOError:
                    pass
    print(f"peers sent={sent} received={received} late_slots={late}", flush=True)


# --- the server side ---------------------------------------------------------------------------


class MeasuredEngine(MediaEngine):
    """The production engine plus when each receive pass and send phase really ran."""

    def __init__(self) -> None:
        super().__init__()
        self.pass_at_ns = 0  # time.time_ns() when the current receive pass began
        self.fire_at = 0.0  # trio time when the current send phase began
        self.pass_frames: list[int] = []
        self.pass_gap: list[float] = []  # ms between the starts of two passes
        self.pass_gap_end: list[int] = []  # time.time_ns() at the end of each such gap
        self.pass_wall: list[float] = []  # ms each pass took, and of that the CPU it used
        self.pass_cpu: list[float] = []
        self.fire_wall: list[float] = []  # likewise per send phase
        self.fire_cpu: list[float] = []
        self.fire_calls: list[int] = []
        self.delivered = 0  # caller frames delivered so far (to count each pass's)
        self._last_pass_ns = 0

    def _receive_pass(self, now: float) -> None:
        t = self.pass_at_ns = time.time_ns()
        if self._last_pass_ns:
            self.pass_gap.append((t - self._last_pass_ns) / 1e6)
            self.pass_gap_end.append(t)
        self._last_pass_ns = t
        before = self.delivered
        c = time.thread_time_ns()
        super()._receive_pass(now)
        self.pass_cpu.append((time.thread_time_ns() - c) / 1e6)
        self.pass_wall.append((time.time_ns() - t) / 1e6)
        self.pass_frames.append(self.delivered - before)

    def _deliver(self, conv: Any) -> None:
        self.delivered += conv.pending  # every call's, measured or not
        super()._deliver(conv)

    def _fire(self, phase: int, tick: float) -> None:
        self.fire_at = trio.current_time()
        calls = len(self._phases[phase])
        t, c = time.time_ns(), time.thread_time_ns()
        super()._fire(phase, tick)
        if calls:
            self.fire_cpu.append((time.thread_time_ns() - c) / 1e6)
            self.fire_wall.append((time.time_ns() - t) / 1e6)
            self.fire_calls.append(calls)


class MeasuredTransport(UnicastTransport):
    """Production transport plus kernel receive stamps and pacing lateness, for the bench.

    Each caller frame carries four instants (CLOCK_REALTIME, as the kernel's stamp): the
    kernel's receive stamp, the start of the receive pass that read it, its delivery to the
    call's queue (after the batch's conversion) and the moment the model-side consumer task
    got it. Each sent frame: its slot, the start of the send phase, the sendto."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Three parallel deques of ints, not one of tuples: tuples are tracked by the cyclic GC,
        # and the bench must not add to the collections it measures.
        depth = CALLER_BUFFER_MS // FRAME_MS
        self.stamps: deque[int] = deque(maxlen=depth)
        self.pass_stamps: deque[int] = deque(maxlen=depth)
        self.queued_stamps: deque[int] = deque(maxlen=depth)
        self.lateness: list[float] = []
        self.out_split: list[float] = []  # slot -> phase start, phase start -> sendto (s), flat
        self.in_latency: list[float] = []
        self.in_split: list[float] = []  # kernel->pass, pass->queued, queued->consumer (ms), flat
        self._stamp = 0
        self._pass_ns = 0

    def _bind_fresh_pair(self) -> tuple[Any, socket.socket]:
        pair, sock = super()._bind_fresh_pair()
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return pair, sock

    def _read_into(self, sock: socket.socket, buf: memoryview) -> int:
        nbytes, ancdata, _flags, _addr = sock.recvmsg_into([buf], 64)
        self._kernel_stamp(ancdata)
        engine = self._engine
        self._pass_ns = engine.pass_at_ns if isinstance(engine, MeasuredEngine) else self._stamp
        return nbytes

    def _kernel_stamp(self, ancdata: list[tuple[int, int, bytes]]) -> None:
        self._stamp = time.time_ns()
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", payload[:16])
                self._stamp = sec * 1_000_000_000 + nsec

    def _read_datagram(self, sock: socket.socket) -> bytes:
        data, ancdata, _flags, _addr = sock.recvmsg(4096, 64)
        self._kernel_stamp(ancdata)
        self._pass_ns = time.time_ns()
        return data

    def _deliver(self, frame: bytes) -> None:
        # drops oldest in step with the caller queue
        self.stamps.append(self._stamp)
        self.pass_stamps.append(self._pass_ns)
        self.queued_stamps.append(time.time_ns())
        super()._deliver(frame)

    def consumed(self) -> None:
        """The model-side consumer has the oldest queued frame now."""
        if not self.stamps:
            return
        now = time.time_ns()
        kernel = self.stamps.popleft()
        pass_at, queued = self.pass_stamps.popleft(), self.queued_stamps.popleft()
        self.in_latency.append((now - kernel) / 1e6)
        self.in_split += ((pass_at - kernel) / 1e6, (queued - pass_at) / 1e6, (now - queued) / 1e6)

    def _sent(self, lateness: float) -> None:
        self.lateness.append(lateness)
        engine = self._engine
        if isinstance(engine, MeasuredEngine):
            phase = engine.fire_at - (trio.current_time() - lateness)
            self.out_split += (phase, lateness - phase)


async def answer_ok(stream: trio.abc.Stream) -> None:
    """The ESL side: '+OK' to every command (the only one is ``sendmsg unicast``)."""
    buf = b""
    while True:
        data = await stream.receive_some(65536)
        if not data:
            return
        buf += data
        while b"\n\n" in buf:
            _cmd, _, buf = buf.partition(b"\n\n")
            await stream.send_all(serialize.command_reply("+OK"))


async def one_call(k: int, ports: UnicastPorts, calls: list[UnicastTransport],
                   ready: trio.Event, n: int, codec: str, batched: bool = True) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = EslConnection(ours)
    uuid = f"bench-{k:05d}"
    pairs = [("Event-Name", "CHANNEL_DATA"), ("Unique-ID", uuid),
             ("Channel-Read-Codec-Name", codec), ("Channel-Read-Codec-Rate", "8000")]
    call = OutboundCall(conn, Event.from_plain(serialize.event_plain_text(pairs)))
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        nursery.start_soon(answer_ok, theirs)
        # As the call session does: a G.711 line talks G.711 to the model (no conversion), an
        # L16 line is resampled to and from the model's 24 kHz.
        line, _native = line_format_for(call.channel)
        kind = MeasuredTransport if k % MEASURE_EVERY == 0 else UnicastTransport
        media = kind(call, ports, model_format=model_format_for_line(line), lost_after=30.0,
                     batched=batched)
        assert media.batched == batched
        async with media:
            await media.start()
            calls.append(media)
            if len(calls) == n:
                ready.set()
            if isinstance(media, MeasuredTransport):
                async for frame in media.frames():  # the echo "model"
                    media.consumed()
                    await media.play(frame, "echo")
            else:
                async for frame in media.frames():
                    await media.play(frame, "echo")


class GcPauses:
    """Cyclic-GC pauses in the server process (they stall every call at once)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._t0)

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


def set_tick(seconds: float) -> None:
    """The engine's tick for this run (before its engine exists): phases, passes, join window.

    Each wake-up of the loop costs about 56 us of CPU on the 2-core VM (a bare trio timer wait,
    1000 a second = 5.6 % of a core) and each send batch a fixed numpy cost; a longer tick
    halves both and lets a caller frame wait up to a tick for its pass."""
    engine_module.PHASES = round(engine_module.FRAME_SECONDS / seconds)
    engine_module.PHASE_SECONDS = seconds
    engine_module.RECEIVE_BATCH_SECONDS = seconds
    engine_module.JOIN_PHASES = max(1, round(0.005 / seconds))  # first frame within 5 ms


def loadavg() -> str:
    """The box's load (other work on a shared machine skews every latency figure)."""
    return Path("/proc/loadavg").read_text().strip()


def runqueue_wait() -> float:
    """Seconds this (single-threaded) server spent runnable but waiting for a CPU."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def measure(n: int, seconds: float, base: int, codec: str,
                  batched: bool) -> dict[str, Any]:
    # Started before the measured window; blocking here costs the loop nothing that is timed.
    peer = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, __file__, "--peer", str(base), str(n), str(seconds + 4), codec],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,  # communicate() closes stdin
    )
    assert peer.stdout is not None
    assert peer.stdout.readline().strip() == "ready"
    ports = UnicastPorts(PortRange(HOST, base, base + 2 * n - 1))
    calls: list[UnicastTransport] = []
    ready = trio.Event()
    settle_collector()  # as serve does once it listens
    rss0 = rss_kib()
    async with trio.open_nursery() as nursery:
        for k in range(n):
            nursery.start_soon(one_call, k, ports, calls, ready, n, codec, batched)
        with trio.fail_after(30):
            await ready.wait()
        await trio.sleep(1.0)  # warm-up
        rss1 = rss_kib()
        measured = [c for c in calls if isinstance(c, MeasuredTransport)]
        for c in measured:
            c.lateness.clear()
            c.in_latency.clear()
            c.in_split.clear()
            c.out_split.clear()
        for c in calls:
            c.stats.caller_frames = 0
        engine = MediaEngine.current() if batched else None
        for samples in engine_samples(engine):
            samples.clear()
        pauses = GcPauses()
        cpu0, wall0, waited0 = time.process_time(), time.monotonic(), runqueue_wait()
        await trio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        waited = runqueue_wait() - waited0
        pauses.close()
        # The window ends here. Cancelling every call at once (each one's teardown on this one
        # thread) then holds the engine up for 30-140 ms, and frames caught in that were being
        # counted: the longest gap between passes ended 0.03-0.06 s after the window, and
        # that single stall alone pushed the in p99 of a 200-call L16 run to 15 ms. A relay
        # whose calls all hang up in the same millisecond is the bench's, not a PBX's, so
        # the figures are taken before it (nothing runs meanwhile: no await).
        lat_in = np.concatenate([np.asarray(c.in_latency) for c in measured])
        lat_out = np.concatenate([np.asarray(c.lateness) for c in measured]) * 1000
        breakdown = split_report(measured, engine)
        frames = sum(c.stats.caller_frames for c in calls)
        send_dropped = sum(c.stats.send_dropped for c in calls)
        nursery.cancel_scope.cancel()
    out, _ = peer.communicate(timeout=30)
    return {
        "breakdown": breakdown,
        "n": n,
        "in_p50": float(np.percentile(lat_in, 50)),
        "in_p99": float(np.percentile(lat_in, 99)),
        "out_p50": float(np.percentile(lat_out, 50)),
        "out_p99": float(np.percentile(lat_out, 99)),
        "delivered": frames / (n * wall / FRAME),
        "cpu": cpu / wall,
        "cpu_ms_per_call_s": cpu / wall / n * 1000,
        "sent": len(lat_out) / (len(measured) * wall / FRAME),
        # CPU per frame moved (caller's in + model's out): comparable even when a load falls
        # behind, unlike CPU per call-second
        "us_per_frame": cpu / max(1, frames + len(lat_out) * n / len(measured)) * 1e6,
        "runq": waited / wall,
        "rss_kib_per_call": (rss1 - rss0) / n,
        "gc_max_ms": max(pauses.pauses, default=0.0) * 1000,
        "gc_count": len(pauses.pauses),
        "send_dropped": send_dropped,
        "peer": out.strip().splitlines()[-1] if out.strip() else "",
    }


def pcts(name: str, values: list[float]) -> str:
    a = np.asarray(values)
    return f"{name} p50 {np.percentile(a, 50):.2f} p99 {np.percentile(a, 99):.2f} ms"


def engine_samples(engine: MediaEngine | None) -> list[list[Any]]:
    """The batched engine's per-pass and per-phase records (none for the per-call engine)."""
    if not isinstance(engine, MeasuredEngine):
        return []
    return [engine.pass_gap, engine.pass_gap_end, engine.pass_frames, engine.pass_wall,
            engine.pass_cpu, engine.fire_wall, engine.fire_cpu, engine.fire_calls]  # fmt: skip


def split_report(calls: list[MeasuredTransport], engine: MediaEngine | None) -> str:
    """Where the relay time goes: each leg's p50/p99, and what the slowest 1 % spent in each."""
    lines = []
    split_in = np.concatenate([np.asarray(c.in_split).reshape(-1, 3) for c in calls])
    split_out = np.concatenate([np.asarray(c.out_split).reshape(-1, 2) for c in calls]) * 1000
    for name, legs, split in (
        ("in ", ("kernel->pass", "pass->queued", "queued->consumer"), split_in),
        ("out", ("slot->phase", "phase->sendto"), split_out),
    ):
        if not len(split):
            continue
        total = split.sum(axis=1)
        worst = split[total >= np.percentile(total, 99)].mean(axis=0)
        cells = "  ".join(
            f"{leg} p50 {np.percentile(split[:, i], 50):.2f} p99 "
            f"{np.percentile(split[:, i], 99):.2f} worst1% {worst[i]:.2f}"
            for i, leg in enumerate(legs)
        )
        lines.append(f"    {name} {cells}")
    if isinstance(engine, MeasuredEngine) and engine.pass_gap:
        gap, per = np.asarray(engine.pass_gap), np.asarray(engine.pass_frames)
        # Where the longest gap fell, and the longest pass and phase: a stall inside the
        # engine's own work shows as a long pass or phase, one outside it (another task, the
        # process off the CPU) only as the gap.
        worst = int(gap.argmax())
        into = (engine.pass_gap_end[worst] - engine.pass_gap_end[0]) / 1e9
        lines.append(
            f"    longest gap ends {into:.2f} s into the window; longest pass wall "
            f"{max(engine.pass_wall):.2f} cpu {max(engine.pass_cpu):.2f} ms, longest phase wall "
            f"{max(engine.fire_wall, default=0):.2f} cpu {max(engine.fire_cpu, default=0):.2f} ms"
        )
        lines.append(
            f"    passes {len(gap) + 1}: gap p50 {np.percentile(gap, 50):.2f} p99 "
            f"{np.percentile(gap, 99):.2f} max {gap.max():.2f} ms; frames/pass p50 "
            f"{np.percentile(per, 50):.0f} p99 {np.percentile(per, 99):.0f} max {per.max()}; "
            f"{pcts('wall', engine.pass_wall)} {pcts('cpu', engine.pass_cpu)}"
        )
        lines.append(
            f"    phases {len(engine.fire_wall)}: calls p50 "
            f"{np.percentile(engine.fire_calls, 50):.0f}; "
            f"{pcts('wall', engine.fire_wall)} {pcts('cpu', engine.fire_cpu)}"
        )
    return "\n".join(lines)


# --- --workers: the server side in N processes ------------------------------------------------


async def server_side(n: int, seconds: float, base: int, codec: str,
                      batched: bool) -> dict[str, Any]:  # fmt: skip
    """One worker's share: n calls on ports base..base+2n-1, measured for ``seconds`` after
    a warm-up; the raw latencies go back to the parent, which merges the workers."""
    ports = UnicastPorts(PortRange(HOST, base, base + 2 * n - 1))
    calls: list[UnicastTransport] = []
    ready = trio.Event()
    async with trio.open_nursery() as nursery:
        for k in range(n):
            nursery.start_soon(one_call, k, ports, calls, ready, n, codec, batched)
        with trio.fail_after(30):
            await ready.wait()
        await trio.sleep(1.0)  # warm-up
        measured = [c for c in calls if isinstance(c, MeasuredTransport)]
        for c in measured:
            c.lateness.clear()
            c.in_latency.clear()
        for c in calls:
            c.stats.caller_frames = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        await trio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        # before the teardown, as in measure()
        result = {
            "in": np.concatenate([np.asarray(c.in_latency) for c in measured]),
            "out": np.concatenate([np.asarray(c.lateness) for c in measured]) * 1000,
            "frames": sum(c.stats.caller_frames for c in calls),
            "cpu": cpu,
            "wall": wall,
        }
        nursery.cancel_scope.cancel()
    return result


def run_server_worker(base: int, n: int, seconds: float, codec: str, engine: str,
                      out: str) -> None:  # fmt: skip
    configure_logging("json", level=40)
    result = trio.run(server_side, n, seconds, base, codec, engine == "batched")
    np.savez(out, **{k: np.asarray(v) for k, v in result.items()})


def measure_workers(n: int, workers: int, seconds: float, base: int, codec: str, engine: str,
                    tmp: Path) -> dict[str, Any]:  # fmt: skip
    """n calls (rounded down to a multiple of ``workers``) over ``workers`` server processes."""
    n -= n % workers
    peer = subprocess.Popen(
        [sys.executable, __file__, "--peer", str(base), str(n), str(seconds + 8), codec],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,  # communicate() closes stdin
    )  # fmt: skip
    assert peer.stdout is not None
    assert peer.stdout.readline().strip() == "ready"
    whole = PortRange(HOST, base, base + 2 * n - 1)
    servers = []
    for i in range(workers):
        share = split_ports(whole, WorkerRole(i, workers))
        out = tmp / f"worker{i}.npz"
        servers.append((out, subprocess.Popen(
            [sys.executable, __file__, "--server-worker", str(share.first),
             str(len(share) // 2), str(seconds), codec, engine, str(out)],
        )))  # fmt: skip
    for _, server in servers:
        server.wait(timeout=seconds + 60)
    out_text, _ = peer.communicate(timeout=30)
    parts = [np.load(out) for out, _ in servers]
    lat_in = np.concatenate([p["in"] for p in parts])
    lat_out = np.concatenate([p["out"] for p in parts])
    wall = float(np.mean([p["wall"] for p in parts]))

    def pct(values: Any, q: float) -> float:
        # no frame at all in the window (a starved box): a failed load, not a crash
        return float(np.percentile(values, q)) if len(values) else float("inf")

    return {
        "n": n,
        "in_p50": pct(lat_in, 50),
        "in_p99": pct(lat_in, 99),
        "out_p50": pct(lat_out, 50),
        "out_p99": pct(lat_out, 99),
        "delivered": sum(int(p["frames"]) for p in parts) / (n * wall / FRAME),
        "cpu": sum(float(p["cpu"]) / float(p["wall"]) for p in parts),
        "peer": out_text.strip().splitlines()[-1] if out_text.strip() else "",
    }


def passing(r: dict[str, Any]) -> bool:
    return bool(r["in_p99"] <= 5 and r["out_p99"] <= 5 and r["delivered"] >= 0.99)


def main_workers(counts: list[int], workers: int, seconds: float, codec: str, engine: str,
                 first_port: int) -> None:  # fmt: skip
    print(f"calls per box ({codec}, {engine}): each load with 1 server process, then {workers}"
          " (nothing pinned)")
    print(f"{'calls':>6} {'workers':>7} {'in p50':>7} {'in p99':>7} {'out p50':>8} "
          f"{'out p99':>8} {'frames':>7} {'cpu':>6}  ok")
    best = {1: 0, workers: 0}
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(counts):
            for count in (1, workers):
                r = measure_workers(n, count, seconds, first_port + (i % 4) * 5000, codec,
                                    engine, Path(tmp))  # fmt: skip
                ok = passing(r)
                best[count] = r["n"] if ok else best[count]
                print(f"{r['n']:>6} {count:>7} {r['in_p50']:>6.2f}ms {r['in_p99']:>6.2f}ms "
                      f"{r['out_p50']:>7.2f}ms {r['out_p99']:>7.2f}ms {r['delivered']:>6.1%} "
                      f"{r['cpu']:>6.1%}  {'yes' if ok else 'NO'}   [{r['peer']}]", flush=True)
    ratio = f"{best[workers] / best[1]:.2f}" if best[1] else "n/a (1 worker passes no load)"
    print(f"largest passing load per box: 1 worker {best[1]} calls, {workers} workers"
          f" {best[workers]} calls; ratio {ratio}")


costs: dict[tuple[str, str], list[float]] = {}
top_cost: dict[tuple[str, str], float] = {}  # this sweep's cost at its largest kept-up load


async def run_loads(counts: list[int], seconds: float, codec: str, engine: str,
                    first_port: int) -> int:
    """One sweep of loads; the largest passing load (0 when none passes)."""
    print(f"-- codec={codec} engine={engine}  loadavg {loadavg()}")
    print(f"{'calls':>6} {'in p50':>7} {'in p99':>7} {'out p50':>8} {'out p99':>8} "
          f"{'frames':>7} {'sent':>6} {'cpu':>6} {'cpu/frame':>9} {'runq':>6} {'RSS/call':>9} "
          f"{'gc max':>8}  ok")
    best = 0
    for i, n in enumerate(counts):
        r = await measure(n, seconds, first_port + (i % 4) * 5000, codec, engine == "batched")
        if r["delivered"] >= 0.99 and r["sent"] >= 0.99:  # kept up: its cost is what it costs
            top_cost[(codec, engine)] = r["us_per_frame"]
        ok = passing(r)
        best = n if ok else best
        print(f"{n:>6} {r['in_p50']:>6.2f}ms {r['in_p99']:>6.2f}ms {r['out_p50']:>7.2f}ms "
              f"{r['out_p99']:>7.2f}ms {r['delivered']:>6.1%} {r['sent']:>6.1%} {r['cpu']:>6.1%} "
              f"{r['us_per_frame']:>7.1f}us {r['runq']:>6.1%} {r['rss_kib_per_call']:>6.0f}KiB "
              f"{r['gc_max_ms']:>6.2f}ms  "
              f"{'yes' if ok else 'NO'}   [{r['peer']}; send drops {r['send_dropped']}]",
              flush=True)
        if r["breakdown"]:
            print(r["breakdown"], flush=True)
    print(f"largest passing load on one core ({codec}, {engine}): {best} calls", flush=True)
    return best


async def main_async(counts: list[int], seconds: float, codecs: list[str], engines: list[str],
                     repeat: int, first_port: int) -> None:
    best: dict[tuple[str, str], list[int]] = {}
    for _ in range(repeat):
        for codec in codecs:
            for engine in engines:
                passing_load = await run_loads(counts, seconds, codec, engine, first_port)
                best.setdefault((codec, engine), []).append(passing_load)
                if (codec, engine) in top_cost:
                    costs.setdefault((codec, engine), []).append(top_cost.pop((codec, engine)))
    print(f"\nlargest passing load per core, median of {repeat} run(s) "
          f"(p99 in/out <= 5 ms, >= 99 % frames); loadavg {loadavg()}")
    for codec in codecs:
        row = {e: statistics.median(best[(codec, e)]) for e in engines}
        cells = "  ".join(f"{e}: {row[e]:g} {best[(codec, e)]}" for e in engines)
        ratio = ""
        if "batched" in row and "percall" in row:
            ratio = (f"  ratio {row['batched'] / row['percall']:.1f}x" if row["percall"]
                     else "  ratio: percall passes no load")
        print(f"  {codec:>5}: {cells}{ratio}   (goal >= 300)")
    print("CPU per frame moved (in + out) at the largest load that kept up (>= 99 % of frames "
          "both ways), median over runs, and the calls one core could carry at 100 % CPU at "
          "that cost (50 frames/s each way per call; an estimate, not a latency pass):")
    for codec in codecs:
        cells = []
        for e in engines:
            if not costs.get((codec, e)):
                cells.append(f"{e}: no load kept up")
                continue
            us = statistics.median(costs[(codec, e)])
            cells.append(f"{e}: {us:.1f} us/frame = {1e6 / (us * 100):.0f} calls/core")
        print(f"  {codec:>5}: " + "  ".join(cells))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        run_peers(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--server-worker":
        run_server_worker(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5],
                          sys.argv[6], sys.argv[7])  # fmt: skip
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="100,200,300,400,500,600")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--codec", default="L16,PCMU",
                        help="line codecs, comma-separated: L16 (8 kHz, resampled to 24 kHz) "
                             "and/or PCMU (pass-through)")
    parser.add_argument("--engine", choices=("both", "batched", "percall"), default="both",
                        help="media engine(s) to measure in this run")
    parser.add_argument("--repeat", type=int, default=1,
                        help="sweeps per codec and engine (the summary takes the median)")
    parser.add_argument("--first-port", type=int, default=20000,
                        help="UDP ports used: from this one to 20000 above it (default 20000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="N > 1: each load with 1 server process and with N; calls per box")
    parser.add_argument("--measure-every", type=int, default=None,
                        help="time every k-th call's frames (default 4; 1 = all calls, at "
                             "about 4 us a frame of instrument cost on the CPU figures)")
    parser.add_argument("--quick", action="store_true",
                        help="one small load (20 calls, 1 s) to check it works")
    parser.add_argument("--tick-ms", type=int, choices=(1, 2), default=1,
                        help="the batched engine's tick (1 = as shipped; 2 = half the wake-ups "
                             "and send batches, up to 2 ms wait for a caller frame), to compare")
    args = parser.parse_args()
    global MEASURE_EVERY  # one run, one setting; read by one_call
    if args.measure_every is not None:
        MEASURE_EVERY = max(1, args.measure_every)
    os.environ["CALLCONTROL_BENCH_MEASURE_EVERY"] = str(MEASURE_EVERY)  # for --workers' servers
    if args.quick:
        args.calls, args.seconds = "20", 1.0
    configure_logging("json", level=40)
    engine_module.MediaEngine = MeasuredEngine  # type: ignore[misc]
    if args.tick_ms != 1:
        set_tick(args.tick_ms / 1000)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    codecs = args.codec.split(",")
    if not set(codecs) <= {"L16", "PCMU"}:
        parser.error("--codec takes L16 and/or PCMU")
    engines = ["batched", "percall"] if args.engine == "both" else [args.engine]
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} codecs={codecs} "
          f"engines={engines}")
    if args.workers > 1:
        print(f"load average (/proc/loadavg): {Path('/proc/loadavg').read_text().strip()}")
        main_workers([int(x) for x in args.calls.split(",")], args.workers, args.seconds,
                     codecs[0], engines[0], args.first_port)  # fmt: skip
        return
    trio.run(main_async, [int(x) for x in args.calls.split(",")], args.seconds, codecs,
             engines, args.repeat, args.first_port)


if __name__ == "__main__":
    main()
