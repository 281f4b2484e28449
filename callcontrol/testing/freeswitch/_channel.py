"""The channel model: what one FreeSWITCH channel *is* at a given moment.

Only state lives here (names, profile, variables, call/answer state, what runs on it, the
native-unicast state). What *happens* to a channel — apps, park, bridge, hangup — is in
``_callflow``, which changes these fields and fires the events in FreeSWITCH's order.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import trio

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._media import ChannelMedia

STATE_NUMBERS = {
    "CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8,
    "CS_RESET": 9, "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12,
}

Q850 = {
    "UNALLOCATED_NUMBER": 1, "NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19, "SUBSCRIBER_ABSENT": 20, "CALL_REJECTED": 21, "NUMBER_CHANGED": 22,
    "DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28, "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34, "NORMAL_TEMPORARY_FAILURE": 41, "MANDATORY_IE_MISSING": 96,
    "RECOVERY_ON_TIMER_EXPIRE": 102, "ORIGINATOR_CANCEL": 487, "USER_NOT_REGISTERED": 606,
    "ALLOTTED_TIMEOUT": 602, "LOSE_RACE": 502, "MEDIA_TIMEOUT": 604,
}


class Unicast(enum.Enum):
    """Native ``unicast`` as the real switch treats it (media.md §1, callflow.md §2)."""

    NONE = "none"
    ARMED = "armed"  # audio flows both ways
    DEAD = "dead"  # no audio: sent during a playback or a second time in one park, or torn down
    LOST = "lost"  # consumed while the channel was between parks (after uuid_transfer)


@attrs.frozen
class Message:
    """A private message queued to the channel by ``sendmsg`` (or ``uuid_broadcast``)."""

    command: str  # execute | hangup | unicast | nomedia | …
    app: str = ""
    arg: str = ""
    event_uuid: str = ""
    loops: int = 1
    cause: str = "NORMAL_CLEARING"
    headers: tuple[tuple[str, str], ...] = ()


@attrs.define(eq=False)
class RunningApp:
    """The dialplan application running on the channel right now."""

    name: str
    arg: str
    app_uuid: str
    done: trio.Event = attrs.field(factory=trio.Event)
    response: str = "_none_"
    is_playback: bool = False
    nested: bool = False  # True for socket/park, which host other apps


@attrs.define(eq=False)
class Channel:
    uuid: str
    name: str
    direction: str  # "inbound" for the caller's leg, "outbound" for an originated one
    caller_id_name: str = ""
    caller_id_number: str = ""
    destination_number: str = ""
    callee_id_name: str = ""
    callee_id_number: str = ""
    orig_caller_id_name: str | None = None
    orig_caller_id_number: str | None = None
    context: str = "default"
    source: str = "mod_sofia"
    network_addr: str = ""
    username: str = ""
    read_codec: str = "PCMU"
    read_rate: int = 8000
    variables: dict[str, str] = attrs.field(factory=dict)
    created: float = 0.0
    state: str = "CS_INIT"
    call_state: str = "DOWN"
    answer_state: str = "ringing"
    hangup_cause: str | None = None
    profile_index: int = 1
    profile_created: float = 0.0
    answered: float = 0.0
    progress: float = 0.0
    hungup_at: float = 0.0
    bridged_at: float = 0.0
    transfer_at: float = 0.0
    transfer_source: str = ""
    rdnis: str = ""
    # The profile of the leg we are or were bridged to, as it was when the bridge began;
    # FreeSWITCH keeps Other-Leg-* after the unbridge.
    other_profile: dict[str, str] | None = None
    originator: bool = False  # this leg initiated the bridge (uuid_bridge's first UUID)
    bridged_to: str | None = None
    app: RunningApp | None = None  # the app running, innermost (e.g. playback)
    host_app: RunningApp | None = None  # socket or park, which runs the private queue
    parked: bool = False  # a park loop (socket app, park app or CS_PARK) is reading messages
    in_transit: bool = False  # between uuid_transfer and the next CHANNEL_PARK
    unicast: Unicast = Unicast.NONE
    unicast_park_used: bool = False  # a unicast was taken in this park (one per park)
    unicast_log: list[tuple[float, Unicast]] = attrs.field(factory=list)
    queue: deque[Message] = attrs.field(factory=deque)
    wakeup: trio.Event = attrs.field(factory=trio.Event)
    gone: trio.Event = attrs.field(factory=trio.Event)
    controlled: bool = False  # an outbound socket controls it (park apps are refused)
    last_app: str = ""
    last_arg: str = ""
    extra: dict[str, Any] = attrs.field(factory=dict)
    media: ChannelMedia | None = None  # the media peers' side of this channel, when enabled

    @property
    def state_number(self) -> int:
        return STATE_NUMBERS.get(self.state, 0)

    @property
    def call_uuid(self) -> str:
        return self.uuid

    @property
    def alive(self) -> bool:
        return self.hangup_cause is None

    @property
    def playing(self) -> str | None:
        """What a playback is playing right now (``None`` when nothing is)."""
        return self.app.arg if self.app is not None and self.app.is_playback else None

    @property
    def unicast_armed(self) -> bool:
        return self.unicast is Unicast.ARMED

    def set_unicast(self, state: Unicast, now: float) -> None:
        self.unicast = state
        self.unicast_log.append((now, state))

    def new_profile(self, transfer_source: str, now: float) -> None:
        """A transfer (uuid_bridge, uuid_transfer) gives the channel a new caller profile."""
        self.transfer_source = transfer_source
        self.profile_index += 1
        self.profile_created = now
        self.variables["transfer_history"] = transfer_source
        self.variables["transfer_source"] = transfer_source

    def set_state(self, state: str) -> None:
        self.state = state

    def post(self, message: Message) -> None:
        self.queue.append(message)
        self.wakeup.set()

    def profile_values(self) -> dict[str, str]:
        def us(t: float) -> str:
            return str(int(t * 1_000_000)) if t else "0"

        return {
            "Direction": self.direction,
            "Logical-Direction": self.direction,
            "Username": self.username,
            "Dialplan": "XML" if self.direction == "inbound" and self.source == "mod_sofia"
            else "xml",
            "Caller-ID-Name": self.caller_id_name,
            "Caller-ID-Number": self.caller_id_number,
            "Orig-Caller-ID-Name": _first(self.orig_caller_id_name, self.caller_id_name),
            "Orig-Caller-ID-Number": _first(self.orig_caller_id_number, self.caller_id_number),
            "Network-Addr": self.network_addr,
            "Callee-ID-Name": self.callee_id_name,
            "Callee-ID-Number": self.callee_id_number,
            "ANI": self.caller_id_number,
            "Destination-Number": self.destination_number,
            "Unique-ID": self.uuid,
            "Source": self.source,
            "Transfer-Source": self.transfer_source,
            "Context": self.context,
            "RDNIS": self.rdnis,
            "Channel-Name": self.name,
            "Profile-Index": str(self.profile_index),
            "Profile-Created-Time": us(self.profile_created or self.created),
            "Channel-Created-Time": us(self.created),
            "Channel-Answered-Time": us(self.answered),
            "Channel-Progress-Time": us(self.progress),
            "Channel-Progress-Media-Time": "0",
            "Channel-Hangup-Time": us(self.hungup_at),
            "Channel-Transfer-Time": us(self.transfer_at),
            "Channel-Resurrect-Time": "0",
            "Channel-Bridged-Time": us(self.bridged_at),
            "Channel-Last-Hold": "0",
            "Channel-Hold-Accum": "0",
            "Screen-Bit": "true",
            "Privacy-Hide-Name": "false",
            "Privacy-Hide-Number": "false",
        }


def _first(value: str | None, default: str) -> str:
    return default if value is None else value
