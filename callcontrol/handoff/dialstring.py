"""Originate dial strings, built in one place from validated values.

    {origination_uuid=<b>,originate_timeout=25,ignore_early_media=true,
     origination_caller_id_number=11999990000,origination_caller_id_name='João da Silva',
     callcontrol_call_uuid=<a>,callcontrol_instance=cc1}user/1001@empresa.com.br

FreeSWITCH reads this text twice: ``originate`` splits its arguments on spaces (single quotes
group, backslash escapes), then the ``{...}`` block is split on commas (``\\,`` escapes one).
A value that carried a space, comma, brace, bracket, pipe, quote, ``$`` (variable and API
expansion: ``${system(...)}``), ``&``, ``^`` (separator change) or a line break could add
variables, legs or whole commands. So:

- numbers, domains, contexts, gateways and tag values must match a strict pattern, or
  ``UnsafeDialStringValue`` is raised -- a number is never altered;
- a caller ID *name* is text from the outside world: characters outside letters, digits and
  ``. - _ ( ) ,`` are dropped, commas are escaped as ``\\,`` and a name with spaces is
  single-quoted.

Endpoints (DESIGN.md, the FusionPBX contract): an extension rings through the directory,
``user/<number>@<domain>``; ring groups and queues are dialplan entries in the domain's context,
``loopback/<number>/<context>``; an external number goes out through the domain's outbound routes
the same way, or through ``sofia/gateway/<gateway>/<number>`` when the destination names one.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
from collections.abc import Mapping

from callcontrol.destinations.model import Destination, DestinationType

MAX_NAME_LENGTH = 64
APPLICATION_PARK = "&park()"

_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PATTERNS = {
    "extension": re.compile(r"[0-9A-Za-z*#+_.-]{1,64}"),
    "external": re.compile(r"\+?[0-9*#]{1,32}"),
    "domain_name": re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*"),
    "context": re.compile(r"[A-Za-z0-9_.-]{1,128}"),
    "gateway": re.compile(r"[A-Za-z0-9_.-]{1,128}"),
    "variable name": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}"),
    "variable value": re.compile(r"[A-Za-z0-9_.:@+*#/-]{1,256}"),
    "caller ID number": re.compile(r"\+?[0-9A-Za-z*#._-]{1,32}"),
}
_NAME_PUNCTUATION = frozenset(".-_(),")


class UnsafeDialStringValue(ValueError):
    """A value that cannot go into a dial string as it is; nothing was sent."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"refusing {field} {value!r} for a dial string: {reason}")


def _checked(kind: str, value: object, field: str | None = None) -> str:
    text = str(value)
    if not _PATTERNS[kind].fullmatch(text):
        raise UnsafeDialStringValue(field or kind, value, f"must match {_PATTERNS[kind].pattern}")
    return text


def endpoint(
    destination_type: DestinationType | str,
    number: str,
    domain_name: str,
    *,
    context: str | None = None,
    gateway: str | None = None,
) -> str:
    """The endpoint part of the dial string for one destination."""
    try:
        kind = DestinationType(destination_type)
    except ValueError:
        raise UnsafeDialStringValue(
            "destination_type", destination_type, "unknown destination type"
        ) from None
    domain = _checked("domain_name", domain_name)
    if kind is DestinationType.EXTENSION:
        return f"user/{_checked('extension', number, 'destination number')}@{domain}"
    if kind is DestinationType.EXTERNAL:
        digits = _checked("external", number, "external number")
        if gateway:
            return f"sofia/gateway/{_checked('gateway', gateway)}/{digits}"
        return f"loopback/{digits}/{_checked('context', context or domain)}"
    group_number = _checked("extension", number, "destination number")
    return f"loopback/{group_number}/{_checked('context', context or domain)}"


# A pure function, asked twice per handoff (the check before ringing, then the originate) with
# the caller's name, one Unicode category lookup per character each time.
@functools.lru_cache(maxsize=1024)
def safe_caller_id_name(name: str | None) -> str | None:
    """``name`` made safe for a ``{...}`` value (dropping what is unsafe), or None if nothing
    is left. Accents stay: FreeSWITCH passes UTF-8 through."""
    if not name:
        return None
    kept = []
    for ch in unicodedata.normalize("NFC", name):
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch)[0] in "LNM" or ch in _NAME_PUNCTUATION:
            kept.append(ch)
    text = " ".join("".join(kept).split())[:MAX_NAME_LENGTH].strip()
    if not text:
        return None
    text = text.replace(",", "\\,")
    return f"'{text}'" if " " in text else text


def format_variables(variables: Mapping[str, str | int | bool]) -> str:
    """``{a=1,b=x}`` from plain values (patterns above); raises on anything else."""
    parts = []
    for name, value in variables.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{_checked('variable name', name)}={_checked('variable value', text, name)}")
    return "{" + ",".join(parts) + "}"


def originate_dial_string(
    destination_type: DestinationType | str,
    number: str,
    domain_name: str,
    *,
    origination_uuid: str,
    timeout_seconds: int,
    call_uuid: str,
    instance: str,
    caller_id_number: str | None = None,
    caller_id_name: str | None = None,
    context: str | None = None,
    gateway: str | None = None,
    extra_variables: Mapping[str, str | int | bool] | None = None,
) -> str:
    """The full dial string of one B-leg attempt (see the module docstring)."""
    target = endpoint(destination_type, number, domain_name, context=context, gateway=gateway)
    variables = _leg_variables(origination_uuid, timeout_seconds, caller_id_number)
    variables["callcontrol_call_uuid"] = _uuid("call_uuid", call_uuid)
    variables["callcontrol_instance"] = instance
    for name, value in (extra_variables or {}).items():
        if name in variables or name == "origination_caller_id_name":
            raise UnsafeDialStringValue(name, value, "would override a variable set here")
        variables[name] = value
    return _with_caller_id_name(format_variables(variables), caller_id_name) + target


def _leg_variables(
    origination_uuid: str, timeout_seconds: int, caller_id_number: str | None
) -> dict[str, str | int | bool]:
    """What every leg we originate starts with: our UUID, the ring timeout, no early media,
    and the caller ID number when there is one."""
    variables: dict[str, str | int | bool] = {
        "origination_uuid": _uuid("origination_uuid", origination_uuid),
        "originate_timeout": _timeout(timeout_seconds),
        "ignore_early_media": True,
    }
    if caller_id_number:
        variables["origination_caller_id_number"] = _checked("caller ID number", caller_id_number)
    return variables


def usable_caller_id_number(value: str | None) -> str | None:
    """``value`` when it can be shown as a caller ID number, else None: for numbers read from
    FusionPBX's tables, which nothing there validates and which must not stop a call."""
    if value is None or not _PATTERNS["caller ID number"].fullmatch(value.strip()):
        return None
    return value.strip()


def _with_caller_id_name(block: str, caller_id_name: str | None) -> str:
    # the name goes in last and by hand: it is the one value format_variables would refuse
    shown_name = safe_caller_id_name(caller_id_name)
    if shown_name is None:
        return block
    return f"{block[:-1]},origination_caller_id_name={shown_name}}}"


CALLBACK_LEGS = ("agent", "customer")


def callback_dial_string(
    destination_type: DestinationType | str,
    number: str,
    domain_name: str,
    *,
    leg: str,
    origination_uuid: str,
    timeout_seconds: int,
    ticket_uuid: str,
    instance: str,
    caller_id_number: str | None = None,
    caller_id_name: str | None = None,
    gateway: str | None = None,
) -> str:
    """One leg of a click-to-call (callbacks/clicktocall.py): the agent's extension, or the
    customer's number (``EXTERNAL``: the domain's outbound routes, or ``gateway``). Tagged
    with the ticket and the leg, so a leg seen in ``show channels`` says what it is for; no
    ``callcontrol_call_uuid``: no caller waits on a socket for it."""
    if leg not in CALLBACK_LEGS:
        raise UnsafeDialStringValue("leg", leg, f"must be one of {CALLBACK_LEGS}")
    target = endpoint(destination_type, number, domain_name, gateway=gateway)
    variables = _leg_variables(origination_uuid, timeout_seconds, caller_id_number)
    variables["callcontrol_ticket"] = _uuid("ticket_uuid", ticket_uuid)
    variables["callcontrol_leg"] = leg
    variables["callcontrol_instance"] = instance
    return _with_caller_id_name(format_variables(variables), caller_id_name) + target


def dial_string_for(
    destination: Destination,
    domain_name: str,
    *,
    origination_uuid: str,
    call_uuid: str,
    instance: str,
    caller_id_number: str | None = None,
    caller_id_name: str | None = None,
    timeout_seconds: int | None = None,
    extra_variables: Mapping[str, str | int | bool] | None = None,
) -> str:
    """The dial string of a directory destination (its ring timeout unless overridden)."""
    return originate_dial_string(
        destination.destination_type,
        destination.number,
        domain_name,
        origination_uuid=origination_uuid,
        timeout_seconds=timeout_seconds or destination.ring_timeout_seconds,
        call_uuid=call_uuid,
        instance=instance,
        caller_id_number=caller_id_number,
        caller_id_name=caller_id_name,
        context=destination.context,
        gateway=destination.gateway,
        extra_variables=extra_variables,
    )


def originate_argument(dial_string: str, application: str = APPLICATION_PARK) -> str:
    """``<dial string> &park()``: the argument of ``bgapi originate``."""
    return f"{dial_string} {application}"


def _uuid(field: str, value: str) -> str:
    try:
        canonical = str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise UnsafeDialStringValue(field, value, "not a UUID") from None
    if canonical != value:
        raise UnsafeDialStringValue(field, value, "UUIDs must be in lower-case canonical form")
    return value


def _timeout(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 3600:
        raise UnsafeDialStringValue("originate_timeout", seconds, "must be 1..3600 seconds")
    return seconds
