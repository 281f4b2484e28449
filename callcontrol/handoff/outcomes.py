"""What became of a transfer attempt, from FreeSWITCH's hangup cause to the caller's sentence.

Every cause FreeSWITCH defines (``switch_types.h``; protocols.md §2) maps to one typed outcome,
and the raw cause is kept beside it for logs and metrics. DND has no cause of its own -- a DND
FusionPBX extension answers USER_BUSY -- so it comes from the directory's DND lookup before
ringing (:func:`callcontrol.destinations.is_do_not_disturb`), never from this table.

Choices worth knowing:
- NORMAL_CLEARING before an answer means the far end ended the attempt without a person taking
  it (a dialplan that ran out, a loopback that bowed out): FAILED, not SUCCESS.
- NO_USER_RESPONSE (SIP 480 from a phone) and RECOVERY_ON_TIMER_EXPIRE (408/504) are "rang or
  was tried, nobody came": NO_ANSWER and UNAVAILABLE respectively.
- ORIGINATOR_CANCEL, LOSE_RACE, MANAGER_REQUEST (our own uuid_kill) and PICKED_OFF are CANCELLED:
  the attempt was stopped on purpose, there is nothing to tell the caller.
- Unknown names and numbers are FAILED, with the raw text kept.
"""

from __future__ import annotations

import enum

import attrs

from callcontrol.destinations.wording import of, with_article


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DND = "dnd"
    OFFLINE = "offline"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def callback_offerable(self) -> bool:
        """Whether the AI may offer a callback after this outcome (the caller is still there
        and nobody took the call)."""
        return self not in (Outcome.SUCCESS, Outcome.CANCELLED)


# The complete list, in switch_types.h order: name -> (Q.850/FreeSWITCH code, outcome).
_O = Outcome
HANGUP_CAUSES: dict[str, tuple[int, Outcome]] = {
    "NONE": (0, _O.FAILED),
    "UNALLOCATED_NUMBER": (1, _O.FAILED),
    "NO_ROUTE_TRANSIT_NET": (2, _O.UNAVAILABLE),
    "NO_ROUTE_DESTINATION": (3, _O.FAILED),
    "CHANNEL_UNACCEPTABLE": (6, _O.UNAVAILABLE),
    "CALL_AWARDED_DELIVERED": (7, _O.FAILED),
    "NORMAL_CLEARING": (16, _O.FAILED),
    "USER_BUSY": (17, _O.BUSY),
    "NO_USER_RESPONSE": (18, _O.NO_ANSWER),
    "NO_ANSWER": (19, _O.NO_ANSWER),
    "SUBSCRIBER_ABSENT": (20, _O.OFFLINE),
    "CALL_REJECTED": (21, _O.REJECTED),
    "NUMBER_CHANGED": (22, _O.FAILED),
    "REDIRECTION_TO_NEW_DESTINATION": (23, _O.FAILED),
    "EXCHANGE_ROUTING_ERROR": (25, _O.UNAVAILABLE),
    "DESTINATION_OUT_OF_ORDER": (27, _O.OFFLINE),
    "INVALID_NUMBER_FORMAT": (28, _O.FAILED),
    "FACILITY_REJECTED": (29, _O.UNAVAILABLE),
    "RESPONSE_TO_STATUS_ENQUIRY": (30, _O.FAILED),
    "NORMAL_UNSPECIFIED": (31, _O.FAILED),
    "NORMAL_CIRCUIT_CONGESTION": (34, _O.UNAVAILABLE),
    "NETWORK_OUT_OF_ORDER": (38, _O.UNAVAILABLE),
    "NORMAL_TEMPORARY_FAILURE": (41, _O.UNAVAILABLE),
    "SWITCH_CONGESTION": (42, _O.UNAVAILABLE),
    "ACCESS_INFO_DISCARDED": (43, _O.UNAVAILABLE),
    "REQUESTED_CHAN_UNAVAIL": (44, _O.UNAVAILABLE),
    "PRE_EMPTED": (45, _O.UNAVAILABLE),
    "FACILITY_NOT_SUBSCRIBED": (50, _O.FAILED),
    "OUTGOING_CALL_BARRED": (52, _O.FAILED),
    "INCOMING_CALL_BARRED": (54, _O.FAILED),
    "BEARERCAPABILITY_NOTAUTH": (57, _O.FAILED),
    "BEARERCAPABILITY_NOTAVAIL": (58, _O.FAILED),
    "SERVICE_UNAVAILABLE": (63, _O.UNAVAILABLE),
    "BEARERCAPABILITY_NOTIMPL": (65, _O.FAILED),
    "CHAN_NOT_IMPLEMENTED": (66, _O.FAILED),
    "FACILITY_NOT_IMPLEMENTED": (69, _O.FAILED),
    "SERVICE_NOT_IMPLEMENTED": (79, _O.FAILED),
    "INVALID_CALL_REFERENCE": (81, _O.FAILED),
    "INCOMPATIBLE_DESTINATION": (88, _O.FAILED),
    "INVALID_MSG_UNSPECIFIED": (95, _O.FAILED),
    "MANDATORY_IE_MISSING": (96, _O.FAILED),
    "MESSAGE_TYPE_NONEXIST": (97, _O.FAILED),
    "WRONG_MESSAGE": (98, _O.FAILED),
    "IE_NONEXIST": (99, _O.FAILED),
    "INVALID_IE_CONTENTS": (100, _O.FAILED),
    "WRONG_CALL_STATE": (101, _O.FAILED),
    "RECOVERY_ON_TIMER_EXPIRE": (102, _O.UNAVAILABLE),
    "MANDATORY_IE_LENGTH_ERROR": (103, _O.FAILED),
    "PROTOCOL_ERROR": (111, _O.FAILED),
    "INTERWORKING": (127, _O.FAILED),
    "SUCCESS": (142, _O.SUCCESS),
    "ORIGINATOR_CANCEL": (487, _O.CANCELLED),
    "CRASH": (700, _O.FAILED),
    "SYSTEM_SHUTDOWN": (701, _O.UNAVAILABLE),
    "LOSE_RACE": (702, _O.CANCELLED),
    "MANAGER_REQUEST": (703, _O.CANCELLED),
    "BLIND_TRANSFER": (800, _O.FAILED),
    "ATTENDED_TRANSFER": (801, _O.FAILED),
    "ALLOTTED_TIMEOUT": (802, _O.NO_ANSWER),
    "USER_CHALLENGE": (803, _O.FAILED),
    "MEDIA_TIMEOUT": (804, _O.UNAVAILABLE),
    "PICKED_OFF": (805, _O.CANCELLED),
    "USER_NOT_REGISTERED": (806, _O.OFFLINE),
    "PROGRESS_TIMEOUT": (807, _O.UNAVAILABLE),
    "INVALID_GATEWAY": (808, _O.FAILED),
    "GATEWAY_DOWN": (809, _O.UNAVAILABLE),
    "INVALID_URL": (810, _O.FAILED),
    "INVALID_PROFILE": (811, _O.FAILED),
    "NO_PICKUP": (812, _O.NO_ANSWER),
    "SRTP_READ_ERROR": (813, _O.FAILED),
    "BOWOUT": (814, _O.FAILED),
    "BUSY_EVERYWHERE": (815, _O.BUSY),
    "DECLINE": (816, _O.REJECTED),
    "DOES_NOT_EXIST_ANYWHERE": (817, _O.FAILED),
    "NOT_ACCEPTABLE": (818, _O.FAILED),
    "UNWANTED": (819, _O.REJECTED),
    "NO_IDENTITY": (820, _O.FAILED),
    "BAD_IDENTITY_INFO": (821, _O.FAILED),
    "UNSUPPORTED_CERTIFICATE": (822, _O.FAILED),
    "INVALID_IDENTITY": (823, _O.FAILED),
    "STALE_DATE": (824, _O.FAILED),
    "REJECT_ALL": (825, _O.REJECTED),
}
_BY_CODE = {code: name for name, (code, _) in HANGUP_CAUSES.items()}


@attrs.frozen
class CauseOutcome:
    """A classified cause: ``cause`` is the canonical name when known, else the raw text."""

    outcome: Outcome
    cause: str
    code: int | None
    raw: str


def classify_cause(cause: str | int) -> CauseOutcome:
    """Classify a hangup cause given as a name (any case), a number, or an ``-ERR NAME`` reply
    from ``originate``."""
    raw = str(cause)
    text = raw.strip().removeprefix("-ERR").strip().upper()
    if text.isascii() and text.isdigit() and int(text) in _BY_CODE:
        text = _BY_CODE[int(text)]
    if text in HANGUP_CAUSES:
        code, outcome = HANGUP_CAUSES[text]
        return CauseOutcome(outcome, text, code, raw)
    return CauseOutcome(Outcome.FAILED, raw.strip(), None, raw)


def outcome_for_cause(cause: str | int) -> Outcome:
    return classify_cause(cause).outcome


# --- what the AI says --------------------------------------------------------------------------

_GROUP_TYPES = frozenset({"ring_group", "queue"})


def caller_message(
    outcome: Outcome, destination_name: str, *, destination_type: str = "extension",
    language: str = "pt-BR",
) -> str:  # fmt: skip
    """The sentence the AI says after ``outcome`` for a transfer to ``destination_name``:
    "O ramal do Suporte está ocupado agora." (English when ``language`` starts with "en")."""
    group = destination_type in _GROUP_TYPES
    if language.startswith("en"):
        return _english(outcome, destination_name, group)
    return _portuguese(outcome, destination_name, group)


def _portuguese(outcome: Outcome, name: str, group: bool) -> str:
    target = with_article(name, capital=True) if group else f"O ramal {of(name)}"
    people = f"Todos os atendentes {of(name)}"
    sentences = {
        Outcome.SUCCESS: f"Transferindo você para {with_article(name)}.",
        Outcome.BUSY: f"{people} estão ocupados agora."
        if group
        else f"{target} está ocupado agora.",
        Outcome.NO_ANSWER: f"{target} não atendeu.",
        # Group sentences avoid adjectives: a group's grammatical gender is only guessed.
        Outcome.DND: f"{target} não está recebendo ligações agora."
        if group
        else f"{target} está em modo não perturbe agora.",
        Outcome.OFFLINE: f"Nenhum atendente {of(name)} está conectado agora."
        if group
        else f"{target} está desconectado agora.",
        Outcome.REJECTED: f"{target} não pôde atender a ligação agora.",
        Outcome.UNAVAILABLE: f"{target} está indisponível no momento.",
        Outcome.FAILED: f"Não consegui completar a transferência para {with_article(name)}.",
        Outcome.CANCELLED: "A transferência foi cancelada.",
    }
    return sentences[outcome]


def _english(outcome: Outcome, name: str, group: bool) -> str:
    target = name if group else f"{name}'s extension"
    sentences = {
        Outcome.SUCCESS: f"Transferring you to {name}.",
        Outcome.BUSY: f"Everyone at {name} is busy right now."
        if group
        else f"{target} is busy right now.",
        Outcome.NO_ANSWER: f"{target} did not answer.",
        Outcome.DND: f"{target} is set to do not disturb right now.",
        Outcome.OFFLINE: f"{target} is offline right now.",
        Outcome.REJECTED: f"{target} could not take the call right now.",
        Outcome.UNAVAILABLE: f"{target} is unavailable at the moment.",
        Outcome.FAILED: f"I could not complete the transfer to {name}.",
        Outcome.CANCELLED: "The transfer was cancelled.",
    }
    return sentences[outcome]
