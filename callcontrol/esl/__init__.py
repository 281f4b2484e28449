"""The FreeSWITCH Event Socket protocol, sans-IO, and its trio connections.

The sans-IO part (``FrameReader``, ``Frame``, ``Event``, ``commands``, ``serialize``) does no
I/O and has no clock: bytes in, frames out; commands in, bytes out. The trio part
(``EslConnection`` and the outbound/inbound helpers) owns sockets, tasks and timeouts.
"""

from callcontrol.esl import _commands as commands
from callcontrol.esl import _serialize as serialize
from callcontrol.esl._errors import (
    CommandArgumentError,
    CommandError,
    ConnectionClosed,
    ProtocolError,
)
from callcontrol.esl._frames import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EVENT_JSON,
    EVENT_PLAIN,
    EVENT_XML,
    LOG_DATA,
    RUDE_REJECTION,
    Event,
    Frame,
)
from callcontrol.esl._headers import Headers
from callcontrol.esl._reader import FrameReader
from callcontrol.esl._urlcode import url_decode, url_encode

__all__ = [
    "API_RESPONSE",
    "AUTH_REQUEST",
    "COMMAND_REPLY",
    "DISCONNECT_NOTICE",
    "EVENT_JSON",
    "EVENT_PLAIN",
    "EVENT_XML",
    "LOG_DATA",
    "RUDE_REJECTION",
    "CommandArgumentError",
    "CommandError",
    "ConnectionClosed",
    "Event",
    "Frame",
    "FrameReader",
    "Headers",
    "ProtocolError",
    "commands",
    "serialize",
    "url_decode",
    "url_encode",
]
