"""Command writers: every command the product sends to FreeSWITCH, as bytes.

This is the one place where text becomes an ESL command. Every argument passes through a
check here: a CR or LF would end the command early and let the rest be read as a second
command, so it is refused (``CommandArgumentError``), never stripped or escaped. Names that
are syntax (header names, app names, event names, UUIDs) must match a strict pattern.
Callers validate the *meaning* of their values (dial strings, phone numbers) in their own
modules; this module guarantees the *framing*.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from callcontrol.esl._errors import CommandArgumentError

_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/\-]*")
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,63}")
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_FORMATS = ("plain", "json", "xml")


def check_text(value: str, what: str) -> str:
    """Free text that goes on one line of a command: no CR, LF or NUL."""
    if not isinstance(value, str):
        raise CommandArgumentError(f"{what} must be text, got {type(value).__name__}")
    if _FORBIDDEN.search(value):
        raise CommandArgumentError(f"{what} contains a line break or NUL: {value[:60]!r}")
    return value


def check_token(value: str, what: str) -> str:
    """A name that is syntax (app, event, header, API command)."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise CommandArgumentError(f"{what} is not a valid name: {str(value)[:60]!r}")
    return value


def check_uuid(value: str, what: str = "uuid") -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise CommandArgumentError(f"{what} is not a valid UUID: {str(value)[:60]!r}")
    return value


def _format(fmt: str) -> str:
    if fmt not in _FORMATS:
        raise CommandArgumentError(f"event format must be one of {_FORMATS}, got {fmt!r}")
    return fmt


def _frame(first_line: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [first_line]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def connect() -> bytes:
    return b"connect\n\n"


def auth(password: str) -> bytes:
    return _frame("auth " + check_text(password, "password"))


def myevents(fmt: str = "plain") -> bytes:
    return _frame("myevents " + _format(fmt))


def linger(seconds: int | None = None) -> bytes:
    if seconds is None:
        return b"linger\n\n"
    if not isinstance(seconds, int) or seconds <= 0:
        raise CommandArgumentError(f"linger seconds must be a positive int, got {seconds!r}")
    return _frame(f"linger {seconds}")


def nolinger() -> bytes:
    return b"nolinger\n\n"


def event(fmt: str, names: Sequence[str]) -> bytes:
    """``event plain CHANNEL_ANSWER ... CUSTOM sub::class``: subscribe to these events."""
    if not names:
        raise CommandArgumentError("event needs at least one event name")
    words = [check_token(n, "event name") for n in names]
    return _frame(f"event {_format(fmt)} " + " ".join(words))


def nixevent(names: Sequence[str]) -> bytes:
    return _frame("nixevent " + " ".join(check_token(n, "event name") for n in names))


def noevents() -> bytes:
    return b"noevents\n\n"


def filter_add(header: str, value: str) -> bytes:
    value = check_text(value, "filter value")
    if not value or " " in value:
        raise CommandArgumentError(f"filter value must be one word: {value[:60]!r}")
    return _frame(f"filter {check_token(header, 'filter header')} {value}")


def filter_delete(header: str, value: str | None = None) -> bytes:
    line = f"filter delete {check_token(header, 'filter header')}"
    if value is not None:
        line += " " + check_text(value, "filter value")
    return _frame(line)


def _command_line(command: str, args: Sequence[str]) -> str:
    check_token(command, "API command")
    parts = [command, *(check_text(a, f"argument of {command}") for a in args)]
    return " ".join(p for p in parts if p != "")


def api(command: str, *args: str) -> bytes:
    """``api <command> <args>``: blocks the socket until FreeSWITCH answers; keep it short."""
    return _frame("api " + _command_line(command, args))


def bgapi(command: str, *args: str, job_uuid: str | None = None) -> bytes:
    """``bgapi``: answered at once; the result arrives as a BACKGROUND_JOB with ``job_uuid``."""
    headers = [] if job_uuid is None else [("Job-UUID", check_uuid(job_uuid, "Job-UUID"))]
    return _frame("bgapi " + _command_line(command, args), headers)


def _sendmsg(uuid: str | None, headers: list[tuple[str, str]]) -> bytes:
    first = "sendmsg" if uuid is None else "sendmsg " + check_uuid(uuid)
    return _frame(first, headers)


def execute(
    app: str,
    arg: str | None = None,
    *,
    uuid: str | None = None,
    event_uuid: str | None = None,
    event_lock: bool = False,
    async_: bool = False,
    loops: int | None = None,
) -> bytes:
    """``sendmsg`` execute: run a dialplan application on the channel.

    ``event_uuid`` comes back as ``Application-UUID`` on CHANNEL_EXECUTE(_COMPLETE), which is
    how the completion of this very execution is recognised.
    """
    headers = [("call-command", "execute"), ("execute-app-name", check_token(app, "app name"))]
    if arg is not None:
        headers.append(("execute-app-arg", check_text(arg, f"argument of {app}")))
    if event_lock:
        headers.append(("event-lock", "true"))
    if async_:
        headers.append(("async", "true"))
    if loops is not None:
        if not isinstance(loops, int) or loops == 0 or loops < -1:
            raise CommandArgumentError(f"loops must be -1 or a positive int, got {loops!r}")
        headers.append(("loops", str(loops)))
    if event_uuid is not None:
        headers.append(("Event-UUID", check_uuid(event_uuid, "Event-UUID")))
    return _sendmsg(uuid, headers)


def hangup(cause: str = "NORMAL_CLEARING", *, uuid: str | None = None) -> bytes:
    """``sendmsg`` hangup with a cause name (e.g. ``USER_BUSY``) or number."""
    return _sendmsg(
        uuid, [("call-command", "hangup"), ("hangup-cause", check_token(cause, "hangup cause"))]
    )


def unicast(
    local_ip: str,
    local_port: int,
    remote_ip: str,
    remote_port: int,
    *,
    transport: str = "udp",
    native: bool = False,
    uuid: str | None = None,
) -> bytes:
    """``sendmsg`` unicast: raw audio both ways over UDP while the channel is parked."""
    if transport not in ("udp", "tcp"):
        raise CommandArgumentError(f"unicast transport must be udp or tcp, got {transport!r}")
    for port in (local_port, remote_port):
        if not isinstance(port, int) or not 0 < port < 65536:
            raise CommandArgumentError(f"invalid port {port!r}")
    headers = [
        ("call-command", "unicast"),
        ("local-ip", check_token(local_ip, "local-ip")),
        ("local-port", str(local_port)),
        ("remote-ip", check_token(remote_ip, "remote-ip")),
        ("remote-port", str(remote_port)),
        ("transport", transport),
    ]
    if native:
        headers.append(("flags", "native"))
    return _sendmsg(uuid, headers)


def exit_() -> bytes:
    return b"exit\n\n"


def resume() -> bytes:
    return b"resume\n\n"


def getvar(name: str) -> bytes:
    return _frame("getvar " + check_token(name, "variable name"))


def log(level: str) -> bytes:
    return _frame("log " + check_token(level, "log level"))


def nolog() -> bytes:
    return b"nolog\n\n"


def divert_events(on: bool) -> bytes:
    return _frame("divert_events " + ("on" if on else "off"))
