"""The demo's story of one call: what a person reads, built from what was recorded.

Pure functions, no I/O. The inputs are what the demo recorded and stored:

* the commands callcontrol sent on the call's Event Socket (``ClientCommand``, with the time
  the simulated FreeSWITCH received each one) and the frames FreeSWITCH sent back, with the
  time each was written (``Received``);
* the call's transcript as ``callcontrol_calls.transcript`` stores it (``t`` is seconds since
  the call's record started, which is when callcontrol answers);
* the stored rows (``callcontrol_calls``, ``callcontrol_callback_requests``).

``call_story`` merges the first two into ``Beat``s, one per thing that happened, timed from
the moment callcontrol answers; ``render`` prints them (the raw ESL lines only when asked);
``stored_lines`` shows the rows; ``cut_off_problems`` and ``empty_columns`` say what a demo
must not show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from callcontrol.esl import Frame, FrameReader
from callcontrol.esl._frames import API_RESPONSE, COMMAND_REPLY
from callcontrol.testing.freeswitch import ClientCommand

# Socket housekeeping a person does not need to read about.
_QUIET_VERBS = frozenset({"connect", "filter", "event", "linger", "nolinger", "exit", "myevents"})


@attrs.frozen
class Beat:
    t: float  # seconds since callcontrol answered the call
    text: str
    raw: bool = False  # an Event Socket line: shown with --verbose only


@attrs.frozen
class Received:
    """One frame FreeSWITCH sent to callcontrol, with the time it was written."""

    t: float
    frame: Frame


@attrs.frozen
class Legend:
    """What the story calls things: dial strings and prompts in words."""

    caller_name: str
    caller_number: str
    # dial string of a destination -> how the story names it, e.g. "Suporte (ramal 1001)"
    destinations: Mapping[str, str] = attrs.field(factory=dict)
    # playback argument -> what the caller hears, e.g. "a goodbye tone"
    prompts: Mapping[str, str] = attrs.field(factory=dict)
    music_on_hold: str = "local_stream://moh"


def received_frames(sent: Iterable[tuple[float, bytes]]) -> list[Received]:
    """Split what the switch wrote on the socket into frames, each at the time it was complete."""
    reader = FrameReader()
    out: list[Received] = []
    for t, data in sent:
        reader.feed(data)
        out.extend(Received(t, frame) for frame in reader)
    return out


def phone(number: str) -> str:
    """A Brazilian number as people write it: ``+55 11 98888-7777``."""
    digits = re.sub(r"\D", "", number)
    if digits.startswith("55") and len(digits) in (12, 13):
        local = digits[4:]
        return f"+55 {digits[2:4]} {local[:-4]}-{local[-4:]}"
    return number


def _dial_string(line: str) -> str:
    """``bgapi originate {vars}user/1001@pbx &park()`` -> ``user/1001@pbx``."""
    rest = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
    if rest.startswith("{"):
        rest = rest[rest.find("}") + 1 :]
    return rest.split(" ", 1)[0]


def _origination_uuid(line: str) -> str | None:
    found = re.search(r"origination_uuid=([0-9a-fA-F-]+)", line)
    return found.group(1) if found else None


@attrs.define
class _Story:
    """The state a story needs while it reads the call in time order."""

    legend: Legend
    a_uuid: str
    t0: float
    beats: list[Beat] = attrs.field(factory=list)
    legs: dict[str, str] = attrs.field(factory=dict)  # B-leg uuid -> its name in the story
    jobs: dict[str, str] = attrs.field(factory=dict)  # originate Job-UUID -> B-leg uuid
    on_hold: bool = False
    audio_arms: int = 0
    we_hung_up: set[str] = attrs.field(factory=set)  # legs callcontrol hung up or killed
    bridged: set[str] = attrs.field(factory=set)

    def add(self, at: float, text: str, *, raw: bool = False) -> None:
        self.beats.append(Beat(round(at - self.t0, 3), text, raw))

    def command(self, command: ClientCommand) -> None:
        self.add(command.at, "ESL ← " + esl_command_text(command), raw=True)
        text = self._command_story(command)
        if text is not None:
            self.add(command.at, text)

    def _command_story(self, command: ClientCommand) -> str | None:
        line = command.line
        legend = self.legend
        if command.verb == "sendmsg":
            kind = command.header("call-command")
            if kind == "execute":
                return self._execute(command.header("execute-app-name") or "",
                                     command.header("execute-app-arg") or "")  # fmt: skip
            if kind == "unicast":
                self.audio_arms += 1
                if self.audio_arms == 1:
                    return "the caller is connected to the AI (audio over native unicast)"
                return "the caller is back with the AI"
            if kind == "hangup":
                self.we_hung_up.add(self.a_uuid)
                return f"callcontrol hangs up ({command.header('hangup-cause') or 'no cause'})"
            return None
        if line.startswith("bgapi originate"):
            dial = _dial_string(line)
            name = legend.destinations.get(dial, dial)
            b_uuid = _origination_uuid(line)
            if b_uuid:
                self.legs[b_uuid] = name.split(" (", 1)[0]
                job = command.header("Job-UUID")
                if job:
                    self.jobs[job] = b_uuid
            music = " — the caller hears hold music" if self.on_hold else ""
            return f"ringing {name}…{music}"
        words = line.split()
        if line.startswith("api uuid_bridge") and len(words) >= 4:
            name = self.legs.get(words[3], "the agent")
            self.bridged.add(words[3])
            self.on_hold = False
            return f"{name} atendeu — em conversa: they are talking, the AI has left the call"
        if line.startswith("api uuid_kill") and len(words) >= 3:
            self.we_hung_up.add(words[2])
            return f"callcontrol stops ringing {self.legs.get(words[2], words[2])}"
        if line.startswith("api uuid_transfer") and len(words) >= 4:
            if words[3:5] == ["park", "inline"]:
                return None  # a fresh park for the audio: not a story beat
            return f"the caller is transferred to {' '.join(words[3:])}"
        if line.startswith("api uuid_break"):
            self.on_hold = False
        return None

    def _execute(self, app: str, arg: str) -> str | None:
        legend = self.legend
        if app == "answer":
            return (f"callcontrol answers the call from {legend.caller_name} "
                    f"({phone(legend.caller_number)})")  # fmt: skip
        if app == "playback":
            if arg == legend.music_on_hold:
                self.on_hold = True
                return None  # told with the ringing it goes with
            return f"the caller hears {legend.prompts.get(arg, arg)}"
        return f"FreeSWITCH runs {app} {arg}".strip()

    def frame(self, item: Received) -> None:
        frame = item.frame
        self.add(item.t, "ESL → " + esl_frame_text(frame), raw=True)
        if not frame.is_event:
            return
        event = frame.event
        uid = event.unique_id or ""
        if event.name == "BACKGROUND_JOB":
            body = event.body_text.strip()
            b_uuid = self.jobs.get(event.job_uuid or "")
            if b_uuid is not None and body.startswith("-ERR"):
                cause = body.removeprefix("-ERR").strip()
                self.add(item.t, f"{self.legs.get(b_uuid, 'the agent')} does not answer: {cause}")
        elif event.name == "CHANNEL_HANGUP":
            if uid in self.we_hung_up or self.a_uuid in self.we_hung_up:
                return  # ours, or the other end of a call that is over already
            self.we_hung_up.add(uid)
            if uid == self.a_uuid:
                self.add(item.t, "the caller hangs up")
            elif uid in self.bridged:
                self.add(item.t, f"{self.legs.get(uid, 'the agent')} hangs up")


def call_story(commands: Sequence[ClientCommand], frames: Sequence[Received],
               transcript: Sequence[Mapping[str, Any]], legend: Legend, a_uuid: str,
               ai_audio_ms: Sequence[float] = ()) -> list[Beat]:  # fmt: skip
    """Every beat of the call, in time order, timed from the moment callcontrol answered."""
    answer = next((c.at for c in commands if c.header("execute-app-name") == "answer"), None)
    t0 = answer if answer is not None else (commands[0].at if commands else 0.0)
    story = _Story(legend, a_uuid, t0)
    wire: list[tuple[float, int, ClientCommand | Received]] = [
        *((c.at, i, c) for i, c in enumerate(commands)),
        *((f.t, len(commands) + i, f) for i, f in enumerate(frames)),
    ]
    for _, _, item in sorted(wire, key=lambda w: (w[0], w[1])):
        if isinstance(item, Received):
            story.frame(item)
        else:
            story.command(item)
    # The transcript's clock starts with the call's record, just before the answer.
    beats = story.beats + transcript_beats(transcript, ai_audio_ms)
    return sorted(beats, key=lambda b: b.t)


def transcript_beats(transcript: Sequence[Mapping[str, Any]],
                     ai_audio_ms: Sequence[float] = ()) -> list[Beat]:  # fmt: skip
    """What the AI and the caller said, and what the AI asked callcontrol to do.

    The model sends a sentence faster than it is spoken; with the length of each of its
    utterances (``ai_audio_ms``, in order) an AI line is timed when the caller starts hearing
    it: after the audio queued before it has been played out."""
    beats: list[Beat] = []
    tool = ""
    spoken = 0
    heard_until = 0.0
    for entry in transcript:
        t, role, text = float(entry["t"]), entry.get("role"), str(entry.get("text", ""))
        line: str | None = None
        if role == "assistant":
            line = f"AI: “{text}”"
            if spoken < len(ai_audio_ms):
                t = max(t, heard_until)
                heard_until = t + ai_audio_ms[spoken] / 1000
                spoken += 1
        elif role == "caller":
            line = f"caller: “{text}”"
        elif role == "tool" and entry.get("data") is not None:
            tool = text
            line = _tool_call(text, entry["data"])
        elif role == "tool":
            line = _tool_result(tool, text)
        if line is not None:
            beats.append(Beat(round(t, 3), line))
    return beats


def _arguments(data: Mapping[str, Any]) -> dict[str, Any]:
    raw = data.get("arguments")
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tool_call(name: str, data: Mapping[str, Any]) -> str:
    args = _arguments(data)
    if name == "request_handoff":
        why = f" because “{args['reason']}”" if args.get("reason") else ""
        return f"the AI asks callcontrol to transfer the caller to “{args.get('destination')}”{why}"
    if name == "schedule_callback":
        return "the AI asks callcontrol to store a callback request"
    if name == "take_message":
        return "the AI asks callcontrol to store a message"
    if name == "end_call":
        return "the AI asks callcontrol to end the call"
    return f"the AI calls {name}"


def _tool_result(tool: str, text: str) -> str | None:
    try:
        output = json.loads(text)
    except ValueError:
        output = None
    if not isinstance(output, dict):
        return f"{tool} result: {text}"
    if "error" in output:
        return f"{tool} refused: {output['error']} — the AI is told to ask again"
    if tool == "request_handoff":
        say = f" — the AI is told “{output['say']}”" if output.get("say") else ""
        return f"handoff result: {output.get('status')}{say}"
    if tool in ("schedule_callback", "take_message") and output.get("ok"):
        what = "callback request" if tool == "schedule_callback" else "message"
        return f"{what} stored, before the AI confirms it"
    return None  # end_call's "say goodbye": the goodbye itself is the beat


def esl_command_text(command: ClientCommand) -> str:
    """A command as it went on the wire, on one line (``sendmsg`` with its headers)."""
    if command.verb == "sendmsg":
        shown = ("call-command", "execute-app-name", "execute-app-arg", "hangup-cause",
                 "remote-ip", "remote-port", "local-port")  # fmt: skip
        parts = [f"{k}: {v}" for k, v in command.headers if k.lower() in shown]
        return " ".join([command.line, *parts])
    return command.line


def esl_frame_text(frame: Frame) -> str:
    """A frame from FreeSWITCH on one line: an event's name and channel, or a reply."""
    if frame.is_event:
        event = frame.event
        parts = [event.name]
        if event.subclass:
            parts.append(event.subclass)
        if event.unique_id:
            parts.append(f"Unique-ID: {event.unique_id}")
        for header in ("Application", "Hangup-Cause"):
            value = event.get(header)
            if value:
                parts.append(f"{header}: {value}")
        if event.name == "BACKGROUND_JOB":
            parts.append(f"→ {_one_line(event.body_text)}")
        return "event " + " ".join(parts)
    if frame.content_type == COMMAND_REPLY:
        return f"reply {_one_line(frame.reply_text)}"
    if frame.content_type == API_RESPONSE:
        return f"api/response {_one_line(frame.reply_text)}"
    return frame.content_type


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render(beats: Sequence[Beat], *, verbose: bool = False) -> list[str]:
    """The lines a person reads: ``  0.00  callcontrol answers …`` (ESL ones when verbose)."""
    return [f"  {b.t + 0.0 if round(b.t, 2) else 0.0:6.2f}  {'  ' if b.raw else ''}{b.text}"
            for b in beats if verbose or not b.raw]  # fmt: skip


def _duration(row: Mapping[str, Any]) -> str:
    start, end = row.get("started_at"), row.get("ended_at")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return f"{(end - start).total_seconds():.1f} s"
    return ""


def stored_lines(call: Mapping[str, Any] | None, requests: Sequence[Mapping[str, Any]]
                 ) -> list[str]:  # fmt: skip
    """The call's row and its callback requests, column by column."""
    if call is None:
        return ["  !! no callcontrol_calls row was stored for this call"]
    transcript = call.get("transcript") or []
    secretary = call.get("secretary_uuid")
    rows: list[tuple[str, Any]] = [
        ("outcome", call.get("outcome")),
        ("handoff_status", call.get("handoff_status")),
        ("handoff_destination", call.get("handoff_destination")),
        ("hangup_cause", call.get("hangup_cause")),
        ("duration", _duration(call)),
        ("transcript", f"{len(transcript)} lines"),
        ("caller", f"{call.get('caller_name')} ({call.get('caller_number')})"),
        ("secretary/instance",
         f"{secretary or 'the domain’s own secretary'} / {call.get('instance')}"),
    ]  # fmt: skip
    out = [f"  stored: callcontrol_calls.{name:<20} {value}" for name, value in rows]
    for request in requests:
        kind = request.get("kind", "callback")
        what = "callback request" if kind == "callback" else f"{kind}"
        out.append(f"  stored: {what}: number {request.get('phone_number')}, "
                   f"preferred time “{request.get('preferred_time')}”, "
                   f"reason “{request.get('reason')}”, status {request.get('status')}")  # fmt: skip
    return out


def empty_columns(call: Mapping[str, Any] | None,
                  required: Sequence[str] = ("outcome", "handoff_status", "handoff_destination",
                                             "hangup_cause", "caller_number", "caller_name",
                                             "instance", "started_at", "ended_at")
                  ) -> list[str]:  # fmt: skip
    """The columns of the call's row the demo expects filled and that are not."""
    if call is None:
        return []
    return [name for name in required if call.get(name) in (None, "")]


def invented_reasons(requests: Sequence[Mapping[str, Any]],
                     transcript: Sequence[Mapping[str, Any]]) -> list[str]:  # fmt: skip
    """``!!`` lines for every stored callback reason the caller never said."""
    said = " ".join(str(e.get("text", "")) for e in transcript if e.get("role") == "caller")
    return [f"  !! the stored reason “{r.get('reason')}” is not what the caller said"
            for r in requests
            if r.get("reason") and str(r["reason"]).lower() not in said.lower()]  # fmt: skip


def cut_off_problems(truncates: Sequence[Mapping[str, Any]],
                     sent_ms: Mapping[str, float]) -> list[str]:  # fmt: skip
    """``!!`` lines for every AI utterance the caller talked over (a truncate was sent)."""
    out = []
    for truncate in truncates:
        item = str(truncate.get("item_id"))
        sent = sent_ms.get(item)
        of = f" of {sent:.0f}" if sent is not None else ""
        heard = truncate.get("audio_end_ms")
        out.append(f"  !! the AI was cut off: {item} stopped after {heard}{of} ms"
                   " (the caller talked over it)")  # fmt: skip
    return out
