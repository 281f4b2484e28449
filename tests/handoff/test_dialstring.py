"""Dial strings: the exact text per destination type, and hostile text never splits them."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.destinations import Destination, DestinationType
from callcontrol.handoff.dialstring import (
    UnsafeDialStringValue,
    callback_dial_string,
    dial_string_for,
    endpoint,
    format_variables,
    originate_argument,
    originate_dial_string,
    safe_caller_id_name,
)

B = "6f1c2a0e-3b1d-4c5e-9f00-0123456789ab"
A = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f00112233"


def fs_split_args(line: str) -> list[str]:
    """FreeSWITCH's ``switch_separate_string(cmd, ' ')`` as ``originate`` uses it: single quotes
    group (and are removed), a backslash escapes a quote or a backslash, ``\\,`` is kept."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] in "'\"\\ ":
            current.append(line[i + 1])
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        elif ch == " " and not quoted:
            if current:
                args.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if current:
        args.append("".join(current))
    return args


def fs_parse_dial_string(text: str) -> tuple[dict[str, str], str]:
    """The ``{...}`` block split on unescaped commas (``\\,`` -> ``,``), and the endpoint."""
    assert text.startswith("{")
    close = text.index("}")
    block, rest = text[1:close], text[close + 1 :]
    variables: dict[str, str] = {}
    current: list[str] = []
    i = 0
    pairs: list[str] = []
    while i < len(block):
        if block[i] == "\\" and i + 1 < len(block) and block[i + 1] == ",":
            current.append(",")
            i += 2
            continue
        if block[i] == ",":
            pairs.append("".join(current))
            current = []
        else:
            current.append(block[i])
        i += 1
    pairs.append("".join(current))
    for pair in pairs:
        name, sep, value = pair.partition("=")
        assert sep, pair
        assert name not in variables
        variables[name] = value
    return variables, rest


def build(**overrides: object) -> str:
    args: dict[str, object] = {
        "destination_type": "extension",
        "number": "1001",
        "domain_name": "empresa.com.br",
        "origination_uuid": B,
        "timeout_seconds": 25,
        "call_uuid": A,
        "instance": "cc1",
    }
    args.update(overrides)
    return originate_dial_string(**args)  # type: ignore[arg-type]


def test_extension_dial_string_is_exact() -> None:
    assert build(caller_id_number="11999990000", caller_id_name="João da Silva") == (
        "{origination_uuid=6f1c2a0e-3b1d-4c5e-9f00-0123456789ab,originate_timeout=25,"
        "ignore_early_media=true,origination_caller_id_number=11999990000,"
        "callcontrol_call_uuid=0a1b2c3d-4e5f-4a6b-8c7d-8e9f00112233,callcontrol_instance=cc1,"
        "origination_caller_id_name='João da Silva'}user/1001@empresa.com.br"
    )


@pytest.mark.parametrize(
    ("kind", "number", "kwargs", "expected"),
    [
        ("extension", "1001", {}, "user/1001@empresa.com.br"),
        ("ring_group", "9000", {}, "loopback/9000/empresa.com.br"),
        ("queue", "5001", {}, "loopback/5001/empresa.com.br"),
        ("queue", "5001", {"context": "default"}, "loopback/5001/default"),
        ("external", "+5511999990000", {}, "loopback/+5511999990000/empresa.com.br"),
        (
            "external",
            "5511999990000",
            {"gateway": "vivo-sip"},
            "sofia/gateway/vivo-sip/5511999990000",
        ),
    ],
)
def test_endpoint_per_destination_type(
    kind: str, number: str, kwargs: dict[str, str], expected: str
) -> None:
    assert endpoint(kind, number, "empresa.com.br", **kwargs) == expected


def test_directory_destination_uses_its_ring_timeout_context_and_gateway() -> None:
    destination = Destination(
        uuid=uuid.uuid4(),
        domain_uuid=uuid.uuid4(),
        name="Fornecedor",
        destination_type=DestinationType.EXTERNAL,
        number="1133334444",
        gateway="gw1",
        ring_timeout_seconds=40,
    )
    text = dial_string_for(
        destination, "empresa.com.br", origination_uuid=B, call_uuid=A, instance="cc1"
    )
    variables, target = fs_parse_dial_string(text)
    assert variables["originate_timeout"] == "40"
    assert target == "sofia/gateway/gw1/1133334444"
    assert originate_argument(text) == text + " &park()"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", "1001\r\nbgapi uuid_kill all"),
        ("number", "1001,user/1002"),
        ("number", "1001|user/1002"),
        ("number", "1001 &park()"),
        ("number", "${system(id)}"),
        ("number", "[x=1]1001"),
        ("number", ""),
        ("domain_name", "empresa.com.br}{x=1"),
        ("domain_name", "a b"),
        ("context", "default,x"),
        ("gateway", "gw/1"),
        ("instance", "cc 1"),
        ("instance", "cc,origination_uuid=x"),
        ("caller_id_number", "1199'9"),
        ("caller_id_number", "119 99"),
        ("origination_uuid", "not-a-uuid"),
        ("origination_uuid", B.upper()),
        ("timeout_seconds", 0),
        ("timeout_seconds", 99999),
        ("destination_type", "voicemail"),
    ],
)
def test_hostile_values_are_refused_with_a_clear_error(field: str, value: object) -> None:
    overrides: dict[str, object] = {field: value}
    if field in ("context", "gateway"):
        overrides["destination_type"] = "external"
        overrides["number"] = "5511999990000"
    with pytest.raises(UnsafeDialStringValue, match="refusing"):
        build(**overrides)


def test_extra_variables_cannot_override_ours() -> None:
    with pytest.raises(UnsafeDialStringValue, match="override"):
        build(extra_variables={"origination_uuid": A})
    assert "{x=1" not in format_variables({"a": "b"})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Maria", "Maria"),
        ("João da Silva", "'João da Silva'"),
        ("Silva, João", "'Silva\\, João'"),
        ("Ana\r\nX-Header: 1", "'Ana X-Header 1'"),
        ("{evil}|&'$", "evil"),
        ("$$$", None),
        ("", None),
    ],
)
def test_caller_id_names_are_cleaned_not_refused(name: str, expected: str | None) -> None:
    assert safe_caller_id_name(name) == expected


FORBIDDEN = set("\r\n\x00{}[]<>|^$&\"'")


@given(name=st.text(max_size=80), number=st.from_regex(r"\+?[0-9]{4,13}", fullmatch=True))
def test_any_caller_name_keeps_one_argument_and_its_variables(name: str, number: str) -> None:
    text = build(caller_id_name=name, caller_id_number=number)
    assert "\r" not in text and "\n" not in text
    assert text.count("{") == 1 and text.count("}") == 1 and text.startswith("{")
    assert "$" not in text
    # originate sees exactly one dial-string argument before &park()
    args = fs_split_args(originate_argument(text))
    assert args[1:] == ["&park()"]
    variables, target = fs_parse_dial_string(args[0])
    assert target == "user/1001@empresa.com.br"
    assert variables["origination_uuid"] == B
    assert variables["origination_caller_id_number"] == number
    shown = variables.get("origination_caller_id_name", "")
    assert not FORBIDDEN & set(shown)
    expected = safe_caller_id_name(name)
    assert shown == ("" if expected is None else expected.strip("'").replace("\\,", ","))


@given(
    field=st.sampled_from(["number", "domain_name", "instance", "caller_id_number"]),
    value=st.text(min_size=1, max_size=40),
)
def test_hostile_text_anywhere_is_refused_or_passed_verbatim(field: str, value: str) -> None:
    try:
        text = build(**{field: value})
    except UnsafeDialStringValue as exc:
        assert exc.field
        return
    assert value in text  # accepted values are never altered
    args = fs_split_args(originate_argument(text))
    assert args[1:] == ["&park()"]
    variables, _ = fs_parse_dial_string(args[0])
    assert variables["origination_uuid"] == B
    assert len(variables) == 5 + (field == "caller_id_number")


# -- click-to-call's two legs (callbacks/clicktocall.py) ---------------------------------------

TICKET = "7a7a7a7a-1b1b-4c4c-8d8d-9e9e9e9e9e9e"


def callback_leg(**overrides: object) -> str:
    values: dict[str, object] = {
        "destination_type": "extension", "number": "1001", "domain_name": "empresa.com.br",
        "leg": "agent", "origination_uuid": B, "timeout_seconds": 30, "ticket_uuid": TICKET,
        "instance": "cc1", "caller_id_number": "+5511988887777",
        "caller_id_name": "Retorno - resultado do exame",
    }  # fmt: skip
    values.update(overrides)
    kind, number, domain = values.pop("destination_type"), values.pop("number"), values.pop(
        "domain_name")
    return callback_dial_string(kind, number, domain, **values)  # type: ignore[arg-type]


def test_the_agent_and_customer_legs_exactly() -> None:
    assert callback_leg() == (
        f"{{origination_uuid={B},originate_timeout=30,ignore_early_media=true,"
        f"origination_caller_id_number=+5511988887777,callcontrol_ticket={TICKET},"
        "callcontrol_leg=agent,callcontrol_instance=cc1,"
        "origination_caller_id_name='Retorno - resultado do exame'}user/1001@empresa.com.br"
    )
    customer = {"destination_type": "external", "number": "+5511988887777", "leg": "customer",
                "caller_id_number": None, "caller_id_name": None}  # fmt: skip
    assert callback_leg(**customer).endswith("callcontrol_leg=customer,callcontrol_instance=cc1}"
                                             "loopback/+5511988887777/empresa.com.br")
    assert callback_leg(**customer, gateway="vivo-sip").endswith(
        "}sofia/gateway/vivo-sip/+5511988887777")


@given(
    field=st.sampled_from(["number", "domain_name", "caller_id_number", "gateway", "leg"]),
    value=st.text(min_size=1, max_size=40),
    reason=st.text(max_size=80),
)
def test_a_callback_leg_with_hostile_text_is_refused_or_stays_one_leg(
    field: str, value: str, reason: str
) -> None:
    extra = {"destination_type": "external", "leg": "customer"} if field == "gateway" else {}
    try:
        text = callback_leg(**{**extra, field: value}, caller_id_name=f"Retorno - {reason}")
    except UnsafeDialStringValue as exc:
        assert exc.field
        return
    assert value in text  # accepted values are never altered
    args = fs_split_args(originate_argument(text))
    assert args[1:] == ["&park()"]
    variables, target = fs_parse_dial_string(args[0])
    assert variables["origination_uuid"] == B
    assert variables["callcontrol_ticket"] == TICKET
    assert set(variables) <= {"origination_uuid", "originate_timeout", "ignore_early_media",
                              "origination_caller_id_number", "callcontrol_ticket",
                              "callcontrol_leg", "callcontrol_instance",
                              "origination_caller_id_name"}  # fmt: skip
    assert target.count("/") >= 1 and " " not in target
