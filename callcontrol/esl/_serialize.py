"""What FreeSWITCH writes: frames as bytes, exactly as mod_event_socket serialises them.

Used by the simulated FreeSWITCH (callcontrol.testing) and by the conformance tests that
re-encode the recorded traces. Header pairs are given decoded; plain events are URL-encoded
here the way ``switch_event_serialize`` does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from xml.sax.saxutils import escape

from callcontrol.esl._urlcode import url_encode

Pairs = Sequence[tuple[str, str]]

DISCONNECT_BODY = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def _head(pairs: Pairs) -> str:
    return "".join(f"{name}: {value}\n" for name, value in pairs)


def event_plain_text(pairs: Pairs, body: bytes | None = None) -> bytes:
    """The serialised event (the frame's body): encoded headers, then the inner body."""
    text = "".join(f"{name}: {url_encode(value)}\n" for name, value in pairs).encode()
    if body is None:
        return text + b"\n"
    return text + f"Content-Length: {len(body)}\n\n".encode() + body


def _with_length(content_type: str, payload: bytes) -> bytes:
    return f"Content-Length: {len(payload)}\nContent-Type: {content_type}\n\n".encode() + payload


def event_plain(pairs: Pairs, body: bytes | None = None) -> bytes:
    return _with_length("text/event-plain", event_plain_text(pairs, body))


def event_json(pairs: Pairs, body: bytes | None = None) -> bytes:
    obj: dict[str, object] = {}
    for name, value in pairs:
        if value.startswith("ARRAY::"):
            obj[name] = value[len("ARRAY::") :].split("|:")
        else:
            obj.setdefault(name, value)
    if body is not None:
        obj["Content-Length"] = str(len(body))
        obj["_body"] = body.decode("utf-8", errors="replace")
    return _with_length("text/event-json", json.dumps(obj).encode())


def event_xml(pairs: Pairs, body: bytes | None = None) -> bytes:
    parts = ["<event>\n  <headers>\n"]
    parts += [f"    <{n}>{escape(url_encode(v))}</{n}>\n" for n, v in pairs]
    parts.append("  </headers>\n")
    if body is not None:
        parts.append(f"  <body>{escape(body.decode('utf-8', errors='replace'))}</body>\n")
    parts.append("</event>")
    return _with_length("text/event-xml", "".join(parts).encode())


def command_reply(reply_text: str, extra: Pairs = ()) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {reply_text}\n{_head(extra)}\n".encode()


def bgapi_reply(job_uuid: str) -> bytes:
    return command_reply(f"+OK Job-UUID: {job_uuid}", [("Job-UUID", job_uuid)])


def api_response(output: str | bytes) -> bytes:
    payload = output.encode() if isinstance(output, str) else output
    if not payload:
        payload = b"-ERR no reply\n"
    return f"Content-Type: api/response\nContent-Length: {len(payload)}\n\n".encode() + payload


def auth_request() -> bytes:
    return b"Content-Type: auth/request\n\n"


def connect_reply(
    channel_pairs: Pairs, *, socket_mode: str = "async", control: str = "full"
) -> bytes:
    """The outbound ``connect`` reply: the CHANNEL_DATA event with no outer envelope."""
    tail = [
        ("Content-Type", "command/reply"),
        ("Reply-Text", "+OK\n"),
        ("Socket-Mode", socket_mode),
        ("Control", control),
    ]
    return event_plain_text([*channel_pairs, *tail])


def disconnect_notice(controlled_uuid: str | None = None) -> bytes:
    head = "Content-Type: text/disconnect-notice\n"
    if controlled_uuid is not None:
        head += f"Controlled-Session-UUID: {controlled_uuid}\nContent-Disposition: disconnect\n"
    return (head + f"Content-Length: {len(DISCONNECT_BODY)}\n\n").encode() + DISCONNECT_BODY


def linger_notice(controlled_uuid: str, channel_name: str, linger_time: int = -1) -> bytes:
    return (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {controlled_uuid}\n"
        "Content-Disposition: linger\n"
        f"Channel-Name: {channel_name}\n"
        f"Linger-Time: {linger_time}\n"
        "Content-Length: 0\n\n"
    ).encode()


def rude_rejection() -> bytes:
    body = b"Access Denied, go away.\n"
    return f"Content-Type: text/rude-rejection\nContent-Length: {len(body)}\n\n".encode() + body


def log_data(
    line: str,
    *,
    level: int,
    channel_uuid: str = "",
    file: str = "",
    func: str = "",
    lineno: int = 0,
) -> bytes:
    body = line.encode()
    return (
        "Content-Type: log/data\n"
        f"Content-Length: {len(body)}\n"
        f"Log-Level: {level}\n"
        "Text-Channel: 3\n"
        f"Log-File: {file}\n"
        f"Log-Func: {func}\n"
        f"Log-Line: {lineno}\n"
        f"User-Data: {channel_uuid}\n\n"
    ).encode() + body
