"""``serve --workers N``: one supervisor, N worker processes, every core of the box.

The supervisor starts nothing of its own but the workers: it kills what a killed run left
ringing (once, before any worker can originate a leg of its own), then starts N copies of
``callcontrol serve`` marked ``--worker I/N`` and forwards SIGTERM / SIGINT to them.

What the workers share and what they split:

- FreeSWITCH's socket connections: every worker listens on ``CALLCONTROL_ESL_LISTEN`` with
  ``SO_REUSEPORT``, and the kernel hands each new connection — one call — to one of them. A
  call lives and ends in the worker that accepted it.
- Media: a call's media must reach the worker that holds the call, so nothing is shared. The
  unicast port range is cut into N slices (worker I takes slice I); mod_audio_stream's
  websocket listener is ``CALLCONTROL_MEDIA_LISTEN``'s port + I, and each worker tells
  FreeSWITCH its own URL.
- The HTTP API, the callback scanner, the helpdesk outbox and the spool run in worker 0 alone:
  one of each is what the database's claims expect, and one inbound Event Socket for
  availability is enough. ``/metrics`` there adds up every worker (prometheus-client's
  multiprocess mode, in a directory the supervisor makes and empties at start).

A worker that dies is started again (a call it held is gone: FreeSWITCH's dialplan goes on to
its fallback); a worker that cannot start (a port in use, the database down) stops the whole
``serve`` with its message. A worker whose supervisor disappears (SIGKILL) drains as on SIGTERM:
its calls end normally, nothing is left ringing. That is why the workers write their logs to
the stderr they inherit (the journal) rather than through the supervisor: a log line a worker
writes after its supervisor died is not lost. Lines up to 4 KiB — every line but a traceback —
reach a pipe whole, so two workers' lines do not mix.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from callcontrol.config import ConfigError, HostPort, PortRange, Settings
from callcontrol.logs import get_logger

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RESTART_BACKOFF_SECONDS = 1.0
MAX_RESTARTS = 5  # within RESTART_WINDOW_SECONDS: a worker that keeps dying stops the serve
RESTART_WINDOW_SECONDS = 60.0
READY_LINE = b"ready\n"

_log = get_logger("callcontrol.workers")


@attrs.frozen
class WorkerRole:
    index: int
    count: int

    @property
    def primary(self) -> bool:
        """Worker 0 (or a serve without workers) runs the API, the scanner and the outbox."""
        return self.index == 0

    @classmethod
    def parse(cls, text: str) -> WorkerRole:
        index, _, count = text.partition("/")
        role = cls(int(index), int(count))
        if not 0 <= role.index < role.count:
            raise ValueError(f"--worker {text}: expected I/N with 0 <= I < N")
        return role


SOLE = WorkerRole(0, 1)


def split_ports(ports: PortRange, role: WorkerRole) -> PortRange:
    """Worker ``role.index``'s share of the unicast range: whole pairs, none shared."""
    pairs = len(ports) // 2
    share = pairs // role.count
    first = ports.first + 2 * share * role.index
    return PortRange(ports.host, first, first + 2 * share - 1)


def check_workers(settings: Settings) -> None:
    """The mistakes that make ``--workers`` impossible, named before anything starts."""
    count = settings.workers
    problems = []
    if settings.media_transport == "unicast" and len(settings.unicast_ports) // 2 < count:
        problems.append(
            f"CALLCONTROL_UNICAST_PORTS {settings.unicast_ports.host}:"
            f"{settings.unicast_ports.first}-{settings.unicast_ports.last} holds "
            f"{len(settings.unicast_ports) // 2} port pairs, fewer than the {count} workers "
            "(each worker needs its own): widen the range or use fewer workers"
        )
    if settings.media_transport == "audio_stream" and settings.media_listen.port + count > 65536:
        problems.append(
            f"CALLCONTROL_MEDIA_LISTEN port {settings.media_listen.port} + {count} workers "
            "passes 65535: choose a lower port"
        )
    if settings.esl_listen.port == 0:
        problems.append("CALLCONTROL_ESL_LISTEN port 0 cannot be shared by workers: set a port")
    if problems:
        raise ConfigError(problems)


def worker_settings(settings: Settings, role: WorkerRole) -> Settings:
    """The settings one worker runs with: its own media ports."""
    if role.count == 1:
        return settings
    media = settings.media_listen
    return attrs.evolve(
        settings,
        unicast_ports=split_ports(settings.unicast_ports, role),
        media_listen=HostPort(media.host, media.port + role.index),
    )


async def open_shared_listeners(listen: HostPort) -> list[trio.SocketListener]:
    """TCP listeners that N processes open on one address (``SO_REUSEPORT``)."""
    infos = await trio.socket.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    for family, kind, proto, _name, address in infos:
        sock = trio.socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            await sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            for opened in listeners:
                await opened.aclose()
            raise
        listeners.append(trio.SocketListener(sock))
    return listeners


async def watch_supervisor(fd: int, on_gone: trio.Event) -> None:
    """Set ``on_gone`` when the supervisor's end of the pipe closes (it exited, or was killed)."""
    stream = trio.lowlevel.FdStream(fd)
    async with stream:
        while await stream.receive_some(64):
            pass
    _log.warning("worker.supervisor_gone", action="draining as on SIGTERM")
    on_gone.set()


def tell_ready(fd: int | None) -> None:
    if fd is not None:
        os.write(fd, READY_LINE)


# -- the supervisor ------------------------------------------------------------------------


@attrs.define(eq=False)
class _Worker:
    index: int
    process: trio.Process | None = None
    ready: bool = False
    restarts: list[float] = attrs.field(factory=list)


class Supervisor:
    def __init__(self, settings: Settings, serve_args: Sequence[str]) -> None:
        self.settings = settings
        self.count = settings.workers
        self.serve_args = list(serve_args)
        self.workers = [_Worker(i) for i in range(self.count)]
        self.stopping = False
        self.failed: int | None = None  # exit status of a worker that could not start
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="callcontrol-metrics-"))

    async def run(self) -> int:
        from callcontrol.orphans import kill_orphaned_legs  # noqa: PLC0415

        # before any worker can ring someone: what a killed run left ringing
        await kill_orphaned_legs(self.settings)
        _log.info("workers.starting", workers=self.count, listen=str(self.settings.esl_listen))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_signals)
                async with trio.open_nursery() as workers:
                    for worker in self.workers:
                        workers.start_soon(self._keep, worker)
                nursery.cancel_scope.cancel()
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        code = self.failed if self.failed is not None else 0
        _log.info("workers.stopped", exit_status=code)
        return code

    async def _keep(self, worker: _Worker) -> None:
        while not self.stopping:
            code = await self._run_once(worker)
            if self.stopping:
                return
            if not worker.ready:
                _log.error("workers.start_failed", worker=worker.index, exit_status=code)
                self.failed = code or 1
                self._stop_all(signal.SIGTERM)
                return
            now = trio.current_time()
            worker.restarts = [t for t in worker.restarts if now - t < RESTART_WINDOW_SECONDS]
            worker.restarts.append(now)
            if len(worker.restarts) > MAX_RESTARTS:
                _log.error(
                    "workers.gave_up", worker=worker.index, exit_status=code,
                    restarts=MAX_RESTARTS, window_seconds=RESTART_WINDOW_SECONDS,
                )  # fmt: skip
                self.failed = code or 1
                self._stop_all(signal.SIGTERM)
                return
            _log.error("workers.restarting", worker=worker.index, exit_status=code,
                       reason="it died; its calls went on through the dialplan")  # fmt: skip
            await trio.sleep(RESTART_BACKOFF_SECONDS)

    async def _run_once(self, worker: _Worker) -> int:
        alive_r, alive_w = os.pipe()  # the worker sees EOF on alive_r when we are gone
        ready_r, ready_w = os.pipe()
        argv = [sys.executable, "-m", "callcontrol", "serve", *self.serve_args,
                "--worker", f"{worker.index}/{self.count}",
                "--supervisor-fd", str(alive_r), "--ready-fd", str(ready_w)]  # fmt: skip
        env = {**os.environ, MULTIPROC_ENV: str(self.metrics_dir)}
        worker.ready = False
        try:
            process = await trio.lowlevel.open_process(
                argv, env=env, pass_fds=(alive_r, ready_w), stdin=subprocess.DEVNULL
            )
        finally:
            os.close(alive_r)
            os.close(ready_w)
        worker.process = process
        try:
            async with trio.open_nursery() as watch:
                watch.start_soon(self._read_ready, worker, ready_r)
                code = await process.wait()
        finally:
            os.close(alive_w)
            worker.process = None
            self._mark_dead(process.pid)
        return code

    async def _read_ready(self, worker: _Worker, fd: int) -> None:
        async with trio.lowlevel.FdStream(fd) as stream:
            if READY_LINE in await stream.receive_some(64):
                worker.ready = True
                pid = worker.process.pid if worker.process is not None else None
                _log.info("workers.ready", worker=worker.index, pid=pid)

    async def _forward_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                first = not self.stopping
                self.stopping = True
                _log.info("workers.signal", signal=signal.Signals(signum).name,
                          forwarded_to=self.count,
                          meaning="drain" if first else "hand every call back now")  # fmt: skip
                self._stop_all(signal.SIGTERM)

    def _mark_dead(self, pid: int) -> None:
        """The live gauges (active calls) stop counting a worker that has exited."""
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def _stop_all(self, signum: int) -> None:
        self.stopping = True
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signum)

