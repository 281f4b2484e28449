"""Hangup causes -> typed outcomes, and what the AI tells the caller."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.handoff.outcomes import (
    HANGUP_CAUSES,
    CauseOutcome,
    Outcome,
    caller_message,
    classify_cause,
    outcome_for_cause,
)

# The complete list from FreeSWITCH's switch_types.h, as protocols.md §2 quotes it.
FREESWITCH_CAUSES = (
    "0 NONE; 1 UNALLOCATED_NUMBER; 2 NO_ROUTE_TRANSIT_NET; 3 NO_ROUTE_DESTINATION; 6 "
    "CHANNEL_UNACCEPTABLE; 7 CALL_AWARDED_DELIVERED; 16 NORMAL_CLEARING; 17 USER_BUSY; 18 "
    "NO_USER_RESPONSE; 19 NO_ANSWER; 20 SUBSCRIBER_ABSENT; 21 CALL_REJECTED; 22 NUMBER_CHANGED; "
    "23 REDIRECTION_TO_NEW_DESTINATION; 25 EXCHANGE_ROUTING_ERROR; 27 DESTINATION_OUT_OF_ORDER; "
    "28 INVALID_NUMBER_FORMAT; 29 FACILITY_REJECTED; 30 RESPONSE_TO_STATUS_ENQUIRY; 31 "
    "NORMAL_UNSPECIFIED; 34 NORMAL_CIRCUIT_CONGESTION; 38 NETWORK_OUT_OF_ORDER; 41 "
    "NORMAL_TEMPORARY_FAILURE; 42 SWITCH_CONGESTION; 43 ACCESS_INFO_DISCARDED; 44 "
    "REQUESTED_CHAN_UNAVAIL; 45 PRE_EMPTED; 50 FACILITY_NOT_SUBSCRIBED; 52 "
    "OUTGOING_CALL_BARRED; 54 INCOMING_CALL_BARRED; 57 BEARERCAPABILITY_NOTAUTH; 58 "
    "BEARERCAPABILITY_NOTAVAIL; 63 SERVICE_UNAVAILABLE; 65 BEARERCAPABILITY_NOTIMPL; 66 "
    "CHAN_NOT_IMPLEMENTED; 69 FACILITY_NOT_IMPLEMENTED; 79 SERVICE_NOT_IMPLEMENTED; 81 "
    "INVALID_CALL_REFERENCE; 88 INCOMPATIBLE_DESTINATION; 95 INVALID_MSG_UNSPECIFIED; 96 "
    "MANDATORY_IE_MISSING; 97 MESSAGE_TYPE_NONEXIST; 98 WRONG_MESSAGE; 99 IE_NONEXIST; 100 "
    "INVALID_IE_CONTENTS; 101 WRONG_CALL_STATE; 102 RECOVERY_ON_TIMER_EXPIRE; 103 "
    "MANDATORY_IE_LENGTH_ERROR; 111 PROTOCOL_ERROR; 127 INTERWORKING; 142 SUCCESS; 487 "
    "ORIGINATOR_CANCEL; 700 CRASH; 701 SYSTEM_SHUTDOWN; 702 LOSE_RACE; 703 MANAGER_REQUEST; 800 "
    "BLIND_TRANSFER; 801 ATTENDED_TRANSFER; 802 ALLOTTED_TIMEOUT; 803 USER_CHALLENGE; 804 "
    "MEDIA_TIMEOUT; 805 PICKED_OFF; 806 USER_NOT_REGISTERED; 807 PROGRESS_TIMEOUT; 808 "
    "INVALID_GATEWAY; 809 GATEWAY_DOWN; 810 INVALID_URL; 811 INVALID_PROFILE; 812 NO_PICKUP; "
    "813 SRTP_READ_ERROR; 814 BOWOUT; 815 BUSY_EVERYWHERE; 816 DECLINE; 817 "
    "DOES_NOT_EXIST_ANYWHERE; 818 NOT_ACCEPTABLE; 819 UNWANTED; 820 NO_IDENTITY; 821 "
    "BAD_IDENTITY_INFO; 822 UNSUPPORTED_CERTIFICATE; 823 INVALID_IDENTITY; 824 STALE_DATE; 825 "
    "REJECT_ALL."
)


def spec() -> dict[str, int]:
    pairs = (item.strip().split(" ") for item in FREESWITCH_CAUSES.rstrip(".").split(";"))
    return {name: int(code) for code, name in pairs}


def test_every_freeswitch_cause_has_an_outcome_and_its_code() -> None:
    assert {name: code for name, (code, _) in HANGUP_CAUSES.items()} == spec()


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        ("USER_BUSY", Outcome.BUSY),
        ("NO_ANSWER", Outcome.NO_ANSWER),
        ("NO_USER_RESPONSE", Outcome.NO_ANSWER),
        ("USER_NOT_REGISTERED", Outcome.OFFLINE),
        ("SUBSCRIBER_ABSENT", Outcome.OFFLINE),
        ("CALL_REJECTED", Outcome.REJECTED),
        ("DECLINE", Outcome.REJECTED),
        ("NORMAL_TEMPORARY_FAILURE", Outcome.UNAVAILABLE),
        ("GATEWAY_DOWN", Outcome.UNAVAILABLE),
        ("ORIGINATOR_CANCEL", Outcome.CANCELLED),
        ("MANAGER_REQUEST", Outcome.CANCELLED),
        ("LOSE_RACE", Outcome.CANCELLED),
        ("UNALLOCATED_NUMBER", Outcome.FAILED),
        ("NORMAL_CLEARING", Outcome.FAILED),
        ("SUCCESS", Outcome.SUCCESS),
    ],
)
def test_causes_people_meet(cause: str, outcome: Outcome) -> None:
    assert outcome_for_cause(cause) is outcome


def test_names_codes_and_originate_replies_are_all_understood() -> None:
    expected = CauseOutcome(Outcome.BUSY, "USER_BUSY", 17, "-ERR USER_BUSY\n")
    assert classify_cause("-ERR USER_BUSY\n") == expected
    assert classify_cause("user_busy").cause == "USER_BUSY"
    assert classify_cause(17).outcome is Outcome.BUSY
    assert classify_cause("806").cause == "USER_NOT_REGISTERED"


def test_unknown_causes_fail_and_keep_the_raw_text() -> None:
    result = classify_cause("SOMETHING_NEW")
    assert result == CauseOutcome(Outcome.FAILED, "SOMETHING_NEW", None, "SOMETHING_NEW")
    assert classify_cause(9999).outcome is Outcome.FAILED


@given(st.one_of(st.text(max_size=30), st.integers()))
def test_any_input_classifies_without_error(cause: str | int) -> None:
    assert classify_cause(cause).outcome in Outcome


def test_callback_is_offered_unless_connected_or_cancelled() -> None:
    assert {o for o in Outcome if not o.callback_offerable} == {Outcome.SUCCESS, Outcome.CANCELLED}


@pytest.mark.parametrize(
    ("outcome", "kind", "name", "expected"),
    [
        (Outcome.BUSY, "extension", "Suporte", "O ramal do Suporte está ocupado agora."),
        (Outcome.BUSY, "queue", "Suporte", "Todos os atendentes do Suporte estão ocupados agora."),
        (Outcome.NO_ANSWER, "extension", "Maria", "O ramal da Maria não atendeu."),
        (Outcome.NO_ANSWER, "ring_group", "Recepção", "A Recepção não atendeu."),
        (Outcome.DND, "extension", "João", "O ramal do João está em modo não perturbe agora."),
        (
            Outcome.OFFLINE,
            "extension",
            "Financeiro",
            "O ramal do Financeiro está desconectado agora.",
        ),
        (
            Outcome.FAILED,
            "external",
            "Fornecedor",
            "Não consegui completar a transferência para o Fornecedor.",
        ),
    ],
)
def test_portuguese_sentences_name_the_destination(
    outcome: Outcome, kind: str, name: str, expected: str
) -> None:
    assert caller_message(outcome, name, destination_type=kind) == expected


def test_every_outcome_has_a_sentence_in_both_languages() -> None:
    for outcome in Outcome:
        portuguese = caller_message(outcome, "Suporte")
        english = caller_message(outcome, "Support", language="en")
        assert portuguese.endswith(".") and english.endswith(".")
        assert portuguese != english
    assert caller_message(Outcome.BUSY, "Support", language="en") == (
        "Support's extension is busy right now."
    )
