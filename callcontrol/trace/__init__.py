"""Recorded ESL event streams: the JSON-lines trace format, ``serve --record``, ``replay``
and ``trace stats``.

A trace is what one Event Socket connection carried, byte for byte: ``recv`` lines are what
FreeSWITCH sent, ``send`` lines what we sent. Version 2 adds the AI's websocket frames and the
values the server generated (``callcontrol.trace.format``). See "Recorded event streams" in
DESIGN.md.
"""

from callcontrol.trace.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Trace,
    TraceFormatError,
    TraceHeader,
    TraceLine,
    dump_header,
    dump_line,
    read_trace,
    write_trace,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Trace",
    "TraceFormatError",
    "TraceHeader",
    "TraceLine",
    "dump_header",
    "dump_line",
    "read_trace",
    "write_trace",
]
