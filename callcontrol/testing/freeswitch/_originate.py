"""``originate``: parse the command, ring the B-leg by its scripted outcome, report the result.

What the recordings show and this reproduces (callflow.md §1, §4; protocols.md §7):

* an outcome that creates no channel answers ``-ERR <CAUSE>`` at once, with no event;
* a ringing leg fires CHANNEL_CREATE, CHANNEL_PROGRESS, and ends with NO_ANSWER at
  ``originate_timeout`` (default 60 s) unless its outcome ends it sooner;
* an answered leg fires CHANNEL_ANSWER; the result (``+OK <uuid>``) follows, then the leg runs
  its app (``&park()``: CHANNEL_EXECUTE park, CHANNEL_PARK);
* when a ringing leg is killed (``uuid_kill <b> ORIGINATOR_CANCEL``) the result is
  ``-ERR ORIGINATOR_CANCEL``, reported between its CHANNEL_HANGUP and HANGUP_COMPLETE, as
  for NO_ANSWER;
* nothing ties B to the channel that asked for it: the caller hanging up does not cancel it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from callcontrol.testing.freeswitch._apps import run_app, run_queue
from callcontrol.testing.freeswitch._channel import Channel

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim

_APP = re.compile(r"&?([A-Za-z0-9_]+)\((.*)\)$", re.S)


@attrs.frozen
class OriginateRequest:
    dial: str
    variables: tuple[tuple[str, str], ...]
    app: str = "park"
    app_arg: str = ""
    exten: str = ""
    cid_name: str = ""
    cid_num: str = ""
    timeout: float = 60.0

    def var(self, name: str, default: str = "") -> str:
        return dict(self.variables).get(name, default)


def parse_vars(text: str) -> list[tuple[str, str]]:
    """``a=1,b='x,y',c=a\\,b`` → pairs; FreeSWITCH's quoting of commas in a ``{}`` block."""
    pairs: list[tuple[str, str]] = []
    buf: list[str] = []
    quote = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if ch == "'":
            quote = not quote
        elif ch == "," and not quote:
            pairs.append(_pair("".join(buf)))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if buf:
        pairs.append(_pair("".join(buf)))
    return [p for p in pairs if p[0]]


def _pair(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    return name.strip(), value.strip()


def _split_block(text: str, open_: str, close: str) -> tuple[str, str]:
    depth = 0
    for i, ch in enumerate(text):
        if ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return text[1:i], text[i + 1 :]
    return text[1:], ""


def parse_originate(args: str) -> OriginateRequest:
    text = args.strip()
    variables: list[tuple[str, str]] = []
    while text[:1] in ("{", "<", "["):
        opener = text[0]
        closer = {"{": "}", "<": ">", "[": "]"}[opener]
        block, text = _split_block(text, opener, closer)
        variables += parse_vars(block)
    dial, _, rest = text.partition(" ")
    words = rest.split()
    target = words[0] if words else "park"
    app, app_arg, exten = "", "", ""
    match = _APP.match(target) if target.startswith("&") else None
    if match:
        app, app_arg = match.group(1), match.group(2)
    else:
        exten = target
    positional = [w if w != "undef" else "" for w in words[1:]]
    positional += [""] * (5 - len(positional))
    timeout_text = dict(variables).get("originate_timeout") or positional[4] or "60"
    return OriginateRequest(
        dial=dial, variables=tuple(variables), app=app, app_arg=app_arg, exten=exten,
        cid_name=positional[2], cid_num=positional[3],
        timeout=float(timeout_text) if _is_number(timeout_text) else 60.0,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def leg_identity(dial: str, domain_default: str) -> dict[str, str]:
    """Channel name, codec and the directory variables a real leg to ``dial`` carries."""
    parts = dial.split("/")
    if parts[0] == "user" and len(parts) > 1:
        user, _, domain = parts[1].partition("@")
        domain = domain or domain_default
        return {"name": f"sofia/internal/{user}@{domain}", "codec": "PCMU",
                "dest": user, "source": "mod_sofia", "dialed_user": user,
                "dialed_domain": domain, "presence_id": f"{user}@{domain}"}
    if parts[0] == "loopback" and len(parts) > 1:
        return {"name": f"loopback/{parts[1]}-a", "codec": "L16", "dest": parts[1],
                "source": "mod_loopback"}
    if parts[0] == "sofia" and len(parts) > 2:
        return {"name": dial, "codec": "PCMU", "dest": parts[-1].split("@")[0],
                "source": "mod_sofia"}
    return {"name": dial, "codec": "PCMU", "dest": parts[-1], "source": "mod_sofia"}


@attrs.define(eq=False)
class Ringing:
    """The undecided state of a ringing leg; set once by the first of timer, test or kill."""

    decided: trio.Event = attrs.field(factory=trio.Event)
    result: str = ""

    def decide(self, result: str) -> None:
        if not self.decided.is_set():
            self.result = result
            self.decided.set()


async def originate(
    sim: FreeSwitchSim, args: str, report: Callable[[str], None] | None = None
) -> str:
    """Run one originate to its result; ``report`` is called with it as soon as it is known
    (for bgapi, which publishes the BACKGROUND_JOB at that moment)."""
    done: list[str] = []

    def finish(output: str) -> None:
        if not done:
            done.append(output)
            if report is not None:
                report(output)

    req = parse_originate(args)
    outcome = sim.endpoints.lookup(req.dial)
    if not outcome.creates_channel:
        await trio.sleep(0.001)
        finish(f"-ERR {outcome.result}\n")
        return done[0]
    b = _create_leg(sim, req, outcome.variables)
    ringing = Ringing()
    b.extra["ringing"] = ringing

    def on_hangup(cause: str) -> None:
        ringing.decide(cause)
        finish(f"-ERR {cause}\n")

    b.extra["on_hangup"] = on_hangup
    sim.flow.fire("CHANNEL_CREATE", b)
    b.set_state("CS_CONSUME_MEDIA")
    ring = outcome.ring
    if ring is None or ring > 0:
        sim.flow.mark_ring(b)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_timer, ringing, req.timeout, "NO_ANSWER")
        if outcome.result != "manual":
            nursery.start_soon(_timer, ringing, math.inf if ring is None else ring,
                               outcome.result)
        await ringing.decided.wait()
        nursery.cancel_scope.cancel()
    b.extra.pop("ringing", None)
    if ringing.result != "answer":
        sim.flow.hangup(b, ringing.result)  # fires the hook, which reports -ERR <cause>
        finish(f"-ERR {ringing.result}\n")
        return done[0]
    b.extra.pop("on_hangup", None)
    sim.flow.mark_answered(b)
    await trio.sleep(sim.latency)
    finish(f"+OK {b.uuid}\n")
    sim.nursery.start_soon(_run_leg_app, sim, b, req)
    return done[0]


async def _timer(ringing: Ringing, seconds: float, result: str) -> None:
    await trio.sleep(seconds)
    ringing.decide(result)


def _create_leg(sim: FreeSwitchSim, req: OriginateRequest,
                extra_vars: tuple[tuple[str, str], ...]) -> Channel:
    ident = leg_identity(req.dial, sim.domain)
    uuid = req.var("origination_uuid") or sim.new_uuid()
    now = sim.now()
    b = Channel(
        uuid=uuid, name=ident["name"], direction="outbound",
        caller_id_name=req.var("origination_caller_id_name", req.cid_name),
        caller_id_number=req.var("origination_caller_id_number", req.cid_num or "0000000000"),
        callee_id_name="Outbound Call", callee_id_number=ident["dest"],
        destination_number=ident["dest"], source=ident["source"],
        read_codec=ident["codec"], read_rate=8000, created=now, call_state="DOWN",
    )
    b.variables.update({
        "direction": "outbound", "is_outbound": "true", "uuid": uuid,
        "session_id": str(sim.next_session_id()), "channel_name": b.name,
        "read_codec": b.read_codec, "read_rate": "8000",
        "write_codec": b.read_codec, "write_rate": "8000", "call_uuid": uuid,
    })
    for key in ("dialed_user", "dialed_domain", "presence_id"):
        if key in ident:
            b.variables[key] = ident[key]
    b.variables.update(dict(req.variables))
    b.variables.update(dict(extra_vars))
    b.variables["originate_endpoint"] = req.dial.split("/")[0]
    sim.add_channel(b)
    return b


async def _run_leg_app(sim: FreeSwitchSim, b: Channel, req: OriginateRequest) -> None:
    if not b.alive:
        return
    if req.app in ("park", "") or req.exten:
        sim.flow.start_app(b, "park", req.app_arg, "", host=True)
        sim.flow.park(b)
        await run_queue(sim, b)
        return
    await run_app(sim, b, req.app, req.app_arg, "")
    sim.flow.hangup(b, "NORMAL_CLEARING")
