"""mod_local_stream's streams and its ``local_stream show`` API, as FreeSWITCH 1.10 has them.

Formats from src/mod/formats/mod_local_stream/mod_local_stream.c (``local_stream_function``):
``local_stream show`` lists every stream as ``<name>,<location>\\n`` (nothing at all when
there is none, which the socket turns into ``-ERR no reply``); ``local_stream show <name>``
prints the stream's fields, or ``-ERR Cannot locate local_stream <name>!\\n`` when the name is
not a running stream (a stopped one is not located either: ``get_source``). Playback of
``local_stream://<name>`` at rate R tries ``<name>/R``, ``<name>``, then, unless the name
contains "default", ``default/R`` and ``default`` (``local_stream_file_open``).
"""

from __future__ import annotations

import attrs

# mod_local_stream.c: DEFAULT_PREBUFFER_SIZE, the prebuf of a stream that sets none
DEFAULT_PREBUF = 1024 * 64
USAGE = "-USAGE: <show|start|reload|stop|hup> <local_stream_name>\n"


@attrs.define
class LocalStream:
    """One ``<directory>`` of local_stream.conf.xml, with the fields ``show`` prints."""

    location: str
    rate: int = 8000
    channels: int = 1
    interval: int = 20
    timer: str = "soft"
    shuffle: bool = True
    stopped: bool = False
    total: int = 0  # files open on it now (channels listening)

    @property
    def samples(self) -> int:
        return self.rate * self.interval // 1000

    def show(self, name: str) -> str:
        flag = {True: "true", False: "false"}
        return (
            f"{name}\n  location: {self.location}\n  channels: {self.channels}\n"
            f"  rate:     {self.rate}\n  interval: {self.interval}\n"
            f"  samples:  {self.samples}\n  prebuf:   {DEFAULT_PREBUF}\n"
            f"  timer:    {self.timer}\n  total:    {self.total}\n"
            f"  shuffle:  {flag[self.shuffle]}\n  ready:    true\n"
            f"  stopped:  {flag[self.stopped]}\n  reloading: false\n"
        )


FUSIONPBX_MUSIC = "/usr/share/freeswitch/sounds/music/default"


def fusionpbx_streams() -> dict[str, LocalStream]:
    """A stock FusionPBX's streams: Music on Hold's category "default", one per rate. It has
    no ``moh``: ``local_stream://moh`` plays ``default/<rate>`` there."""
    return {f"default/{rate}": LocalStream(f"{FUSIONPBX_MUSIC}/{rate}", rate=rate)
            for rate in (8000, 16000, 32000, 48000)}  # fmt: skip


def local_stream_api(streams: dict[str, LocalStream], args: str) -> str:
    words = args.split()
    if not words:
        return USAGE
    if words[0].lower() != "show":
        return "-ERR local_stream: the simulator answers only 'show'\n"
    if len(words) == 1:
        return "".join(f"{name},{s.location}\n" for name, s in streams.items())
    name = words[1]
    stream = streams.get(name)
    if stream is None or stream.stopped:
        return f"-ERR Cannot locate local_stream {name}!\n"
    return stream.show(name)

