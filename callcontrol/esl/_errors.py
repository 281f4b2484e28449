"""Errors of the Event Socket layer."""

from __future__ import annotations


class ProtocolError(Exception):
    """FreeSWITCH (or whatever is on the other end) sent bytes that are not valid ESL.

    The connection that produced it cannot be trusted any more and is closed; other
    connections are unaffected.
    """


class CommandArgumentError(ValueError):
    """An argument would change the meaning of the command it is written into.

    Raised before anything is sent: a CR or LF would end the command early and let the rest
    be read as a second command; other characters are refused where they are syntax.
    """


class CommandError(Exception):
    """FreeSWITCH answered a command with ``-ERR ...``."""

    def __init__(self, command: str, reply: str) -> None:
        self.command = command
        self.reply = reply
        super().__init__(f"{command}: {reply}")


class ConnectionClosed(Exception):
    """The Event Socket connection ended (EOF, disconnect notice, or a protocol error)."""
