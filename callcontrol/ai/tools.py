"""The tools the model gets, and the validation of what it sends back.

The model is an unreliable caller of functions: arguments arrive as a JSON *string* that may be
broken, incomplete, of the wrong types, or a transcription of a caller saying nonsense. Nothing here
raises: ``parse_tool_call`` returns either a typed request or a ``ToolArgumentError`` whose
``output()`` is a function output the model can recover from ("ask the caller again for ...").
Phone numbers are checked and normalised to E.164 by :mod:`callcontrol.callbacks.phone` (Brazilian
shapes, caller IDs, dictation in words); a withheld or unusable number is a tool error naming the
problem, so the model asks the caller again.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import attrs

from callcontrol.ai.provider import ToolSpec
from callcontrol.callbacks.phone import PhoneProblem, parse_number

MAX_TEXT = 500
MAX_MESSAGE = 2000
MAX_RAW_ARGUMENTS = 20_000


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


REQUEST_HANDOFF = ToolSpec(
    name="request_handoff",
    description=(
        "Transfer the caller to a person or department from the destination list. Use it when "
        "the caller asks for someone or the matter needs a person. The result says whether the "
        "transfer happened; if not, it gives a sentence to tell the caller and whether a callback "
        "can be offered."
    ),
    parameters=_object(
        {
            "destination": _string("The destination's name exactly as in the destination list."),
            "reason": _string("Short summary of what the caller wants, for the person answering."),
        }
    ),
)

SCHEDULE_CALLBACK = ToolSpec(
    name="schedule_callback",
    description=(
        "Schedule a callback when nobody can take the call now. The result gives the number "
        "as it must be read back (readback) and the time it was scheduled for (scheduled_for): "
        "read both to the caller to confirm. If the caller corrects either, call the tool again "
        "with the correction: it replaces the same request. An error means the number cannot be "
        "used: ask the caller for it again."
    ),
    parameters=_object(
        {
            "name": _string("The caller's name."),
            "phone_number": _string(
                "Number to call back with area code (DDD), e.g. 11987654321: the caller's own "
                "number unless they give another one (digits, or their words as dictated)."
            ),
            "preferred_time": _string(
                "When the caller wants to be called, in their words, e.g. 'hoje depois das 14h', "
                "'amanhã de manhã', 'o quanto antes'."
            ),
            "reason": _string("What the callback is about."),
        }
    ),
)


def schedule_callback_tool(whatsapp: bool) -> ToolSpec:
    """The callback tool; with ``whatsapp`` (this server sends WhatsApp messages) it also
    takes the caller's wish to be told on WhatsApp when the agent is free. Optional, so a model
    that never asks still schedules the callback; absent without WhatsApp, so the model never
    offers what cannot be kept."""
    if not whatsapp:
        return SCHEDULE_CALLBACK
    properties = dict(SCHEDULE_CALLBACK.parameters["properties"])
    properties[NOTIFY_VIA_WHATSAPP] = {
        "type": "boolean",
        "description": (
            "true when the caller wants a WhatsApp message on that number when the person is "
            "free (offer it when the number is a mobile); leave out otherwise."
        ),
    }
    parameters = {**SCHEDULE_CALLBACK.parameters, "properties": properties}
    return attrs.evolve(SCHEDULE_CALLBACK, parameters=parameters)


NOTIFY_VIA_WHATSAPP = "notify_via_whatsapp"

TAKE_MESSAGE = ToolSpec(
    name="take_message",
    description="Record a message for the team. Confirm name and number with the caller first.",
    parameters=_object(
        {
            "name": _string("The caller's name."),
            "phone_number": _string("Number to reach the caller, digits only with area code."),
            "message": _string("The message, in the caller's words."),
        }
    ),
)

END_CALL = ToolSpec(
    name="end_call",
    description=(
        "End the call after saying goodbye, when the caller has nothing else or asks to hang up."
    ),
    parameters=_object({"reason": _string("Why the call ends, e.g. 'caller said goodbye'.")}),
)

TOOLS: tuple[ToolSpec, ...] = (REQUEST_HANDOFF, SCHEDULE_CALLBACK, TAKE_MESSAGE, END_CALL)


# --- validated requests ------------------------------------------------------------------------


@attrs.frozen
class RequestHandoff:
    destination: str
    reason: str


@attrs.frozen
class ScheduleCallback:
    name: str
    phone_number: str  # E.164
    preferred_time: str
    reason: str
    notify_via_whatsapp: bool = False  # the caller asked; kept only for a mobile number


@attrs.frozen
class TakeMessage:
    name: str
    phone_number: str  # E.164
    message: str


@attrs.frozen
class EndCall:
    reason: str


ToolRequest = RequestHandoff | ScheduleCallback | TakeMessage | EndCall


@attrs.frozen
class ToolArgumentError:
    """Arguments that cannot be used; ``output()`` tells the model what to ask again."""

    tool: str
    problems: tuple[str, ...]
    ask_again: tuple[str, ...] = ()

    def output(self) -> str:
        instruction = (
            "Ask the caller again for: " + ", ".join(self.ask_again) + ". Then call the tool again."
            if self.ask_again
            else "Fix the arguments and call the tool again."
        )
        return tool_output(
            ok=False,
            error="invalid_arguments",
            problems=list(self.problems),
            instruction=instruction,
        )


def tool_output(**fields: Any) -> str:
    """A function output: a compact JSON object the model reads."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


# --- parsing -----------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.ask_again: list[str] = []

    def add(self, problem: str, ask: str | None = None) -> None:
        self.problems.append(problem)
        if ask and ask not in self.ask_again:
            self.ask_again.append(ask)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean_text(value: str, limit: int) -> str:
    """Normalise, collapse control characters and whitespace, and cap the length."""
    value = unicodedata.normalize("NFC", value)
    value = _CONTROL.sub(" ", value)
    return " ".join(value.split())[:limit]


def _text(args: Mapping[str, Any], key: str, problems: _Problems, *, limit: int = MAX_TEXT) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        shown = "missing" if value is None else f"not text ({type(value).__name__})"
        problems.add(f"{key}: {shown}", key)
        return ""
    cleaned = clean_text(value, limit)
    if not cleaned:
        problems.add(f"{key}: empty", key)
    return cleaned


def normalise_phone(text: str, region: str = "BR") -> str | None:
    """E.164 for a valid number said or typed in any usual way, else ``None``."""
    number = parse_number(clean_text(text, 120), region)
    return None if isinstance(number, PhoneProblem) else number.e164


def _phone(args: Mapping[str, Any], problems: _Problems, region: str) -> str:
    raw = _text(args, "phone_number", problems, limit=120)
    if not raw:
        return ""
    number = parse_number(raw, region)
    if isinstance(number, PhoneProblem):
        problems.add(f"phone_number: {number.message}", "phone_number")
        return ""
    return number.e164


def _decode(raw: str | Mapping[str, Any]) -> Mapping[str, Any] | str:
    if isinstance(raw, Mapping):
        return raw
    if len(raw) > MAX_RAW_ARGUMENTS:
        return "arguments too long"
    try:
        value = json.loads(raw)
    except ValueError:
        return "arguments are not valid JSON"
    except RecursionError:
        return "arguments are nested too deeply"
    if not isinstance(value, dict):
        return "arguments must be a JSON object"
    return value


def parse_tool_call(
    name: str, raw_arguments: str | Mapping[str, Any], *, region: str = "BR"
) -> ToolRequest | ToolArgumentError:
    """Validate one tool call; never raises."""
    parser = _PARSERS.get(name)
    if parser is None:
        known = ", ".join(tool.name for tool in TOOLS)
        return ToolArgumentError(name, (f"unknown tool {name[:60]!r}; the tools are {known}",))
    args = _decode(raw_arguments)
    if isinstance(args, str):
        return ToolArgumentError(name, (args,))
    problems = _Problems()
    request = parser(args, problems, region)
    if problems.problems:
        return ToolArgumentError(name, tuple(problems.problems), tuple(problems.ask_again))
    return request


def _handoff(args: Mapping[str, Any], p: _Problems, _region: str) -> ToolRequest:
    return RequestHandoff(_text(args, "destination", p, limit=120), _text(args, "reason", p))


def _callback(args: Mapping[str, Any], p: _Problems, region: str) -> ToolRequest:
    return ScheduleCallback(
        name=_text(args, "name", p, limit=120),
        phone_number=_phone(args, p, region),
        preferred_time=_text(args, "preferred_time", p, limit=120),
        reason=_text(args, "reason", p),
        notify_via_whatsapp=_wish(args.get(NOTIFY_VIA_WHATSAPP)),
    )


def _wish(value: Any) -> bool:
    """A yes the model sent as a boolean or as text; anything else is no: a doubtful wish is
    never a reason to make the caller repeat their callback."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "sim", "1")
    return value is True


def _message(args: Mapping[str, Any], p: _Problems, region: str) -> ToolRequest:
    return TakeMessage(
        name=_text(args, "name", p, limit=120),
        phone_number=_phone(args, p, region),
        message=_text(args, "message", p, limit=MAX_MESSAGE),
    )


def _end(args: Mapping[str, Any], p: _Problems, _region: str) -> ToolRequest:
    reason = args.get("reason")
    # A missing goodbye reason is no reason to keep a caller on the line.
    return EndCall(clean_text(reason, MAX_TEXT) if isinstance(reason, str) else "")


_PARSERS = {
    "request_handoff": _handoff,
    "schedule_callback": _callback,
    "take_message": _message,
    "end_call": _end,
}
