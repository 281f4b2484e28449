"""Why ``callcontrol serve`` could not start, in an admin's words.

A start-up failure deep inside the nurseries (a port taken, the database refusing) reaches
``run_serve`` wrapped in trio's exception groups. The code that knows what failed raises a
:class:`StartupError` naming the problem and the fix; ``run_serve`` finds it in the group and
prints those two lines instead of the traceback (``serve --debug`` shows the traceback).
"""

from __future__ import annotations

import errno
import socket
from typing import TypeVar

from callcontrol.config import HostPort

E = TypeVar("E", bound=BaseException)


class StartupError(Exception):
    """``problem``: what is wrong; ``fix``: what the admin does about it."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)

    def render(self) -> str:
        return f"callcontrol serve: {self.problem}\n  fix: {self.fix}"


def find(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` in ``exc`` or, when it is an exception group, among its leaves."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find(inner, kind)
            if found is not None:
                return found
    return None


def database_failed(exc: BaseException, where: str) -> StartupError:
    """The database at ``where`` (a DSN without its password) did not let us in."""
    cause = exc.__cause__ or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = lines[0] if lines else type(cause).__name__
    # libpq: 'connection failed: connection to server at "h", port 1 failed: Connection refused'
    reason = reason.rpartition(" failed: ")[2].removeprefix("FATAL:").strip()
    return StartupError(
        f"cannot connect to the database: {reason} (DATABASE_URL: {where})",
        "start PostgreSQL there, or correct DATABASE_URL (host, port, user, password, database; "
        "pg_hba.conf must let this host in); `callcontrol doctor` tests the connection",
    )


def listen_failed(
    exc: OSError, listen: HostPort, variable: str, what: str, also: str = ""
) -> StartupError:
    """``exc`` from binding ``listen`` (set by ``variable``) for ``what``, explained; ``also``
    is added to the fix that changes the address."""
    where = f"cannot listen {what} on {listen} ({variable})"
    if isinstance(exc, socket.gaierror):
        return StartupError(
            f"{where}: the host {listen.host!r} is unknown ({exc.strerror})",
            f"set {variable} to an IP address of this machine, e.g. 127.0.0.1:{listen.port}"
            f"{also}",
        )
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"{where}: port {listen.port} is already in use by another program",
            f"stop that program (`ss -ltnp 'sport = :{listen.port}'` shows it; another "
            f"callcontrol serve?) or set {variable} to a free port{also}",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(
            f"{where}: {listen.host} is not an address of this machine",
            f"set {variable} to 127.0.0.1:{listen.port} or an address this machine has "
            f"(`ip -brief address`){also}",
        )
    if exc.errno == errno.EACCES:
        return StartupError(
            f"{where}: permission denied (ports below 1024 need root)",
            f"set {variable} to a port above 1024{also}",
        )
    return StartupError(
        f"{where}: {exc.strerror or exc}", f"check {variable} (docs/configuration.md)"
    )
