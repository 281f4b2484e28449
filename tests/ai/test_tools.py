"""Tool schemas and argument validation, including hostile and broken input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from callcontrol.ai import tools
from callcontrol.ai.tools import (
    EndCall,
    RequestHandoff,
    ScheduleCallback,
    TakeMessage,
    ToolArgumentError,
    parse_tool_call,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
tool_names = st.sampled_from([t.name for t in tools.TOOLS]) | st.text(max_size=30)


def test_schemas_are_strict_objects_with_required_fields() -> None:
    for tool in tools.TOOLS:
        params = tool.parameters
        assert params["type"] == "object"
        assert params["additionalProperties"] is False
        assert set(params["required"]) == set(params["properties"])
    names = {t.name for t in tools.TOOLS}
    assert names == {"request_handoff", "schedule_callback", "take_message", "end_call"}


def test_valid_calls_become_typed_requests() -> None:
    assert parse_tool_call(
        "request_handoff", '{"destination": " Suporte ", "reason": "sem\\nsinal"}'
    ) == RequestHandoff("Suporte", "sem sinal")
    assert parse_tool_call(
        "schedule_callback",
        {
            "name": "Ana",
            "phone_number": "(11) 98765-4321",
            "preferred_time": "às 14h",
            "reason": "orçamento",
        },
    ) == ScheduleCallback("Ana", "+5511987654321", "às 14h", "orçamento")
    assert parse_tool_call(
        "take_message", {"name": "Rui", "phone_number": "+55 21 3456-7890", "message": "ligar"}
    ) == TakeMessage("Rui", "+552134567890", "ligar")
    assert parse_tool_call("end_call", "{}") == EndCall("")


def test_nonsense_phone_number_asks_the_caller_again() -> None:
    result = parse_tool_call(
        "schedule_callback",
        {"name": "Ana", "phone_number": "banana", "preferred_time": "amanhã", "reason": "x"},
    )
    assert isinstance(result, ToolArgumentError)
    output = json.loads(result.output())
    assert output["ok"] is False and output["error"] == "invalid_arguments"
    assert "phone_number" in output["instruction"]
    assert any("phone_number" in p for p in output["problems"])


def test_missing_fields_are_all_reported_at_once() -> None:
    result = parse_tool_call("take_message", '{"name": 7}')
    assert isinstance(result, ToolArgumentError)
    assert set(result.ask_again) == {"name", "phone_number", "message"}


def test_unknown_tool_and_non_object_arguments() -> None:
    assert isinstance(parse_tool_call("format_disk", "{}"), ToolArgumentError)
    for raw in ("[1, 2]", "null", "not json", '"x"', "{" * 5000):
        result = parse_tool_call("request_handoff", raw)
        assert isinstance(result, ToolArgumentError), raw
        json.loads(result.output())


@given(name=tool_names, raw=st.text(max_size=300))
def test_any_text_gives_a_request_or_a_recoverable_error(name: str, raw: str) -> None:
    result = parse_tool_call(name, raw)
    assert isinstance(
        result, (RequestHandoff, ScheduleCallback, TakeMessage, EndCall, ToolArgumentError)
    )
    if isinstance(result, ToolArgumentError):
        assert json.loads(result.output())["ok"] is False


@given(
    name=tool_names,
    args=st.dictionaries(
        st.sampled_from(
            ["destination", "reason", "name", "phone_number", "preferred_time", "message", "extra"]
        ),
        json_values,
        max_size=7,
    ),
)
def test_hostile_argument_values_never_raise(name: str, args: dict[str, Any]) -> None:
    result = parse_tool_call(name, json.dumps(args))
    if isinstance(result, (ScheduleCallback, TakeMessage)):
        assert result.phone_number.startswith("+")  # only normalised, valid numbers get through
    for field in ("destination", "reason", "name", "message", "preferred_time"):
        value = getattr(result, field, "")
        assert "\n" not in value and "\x00" not in value
        assert len(value) <= tools.MAX_MESSAGE


@given(st.text(alphabet="0123456789 ()-+.", max_size=25))
def test_normalised_numbers_are_valid_e164(text: str) -> None:
    number = tools.normalise_phone(text)
    if number is not None:
        assert number.startswith("+") and number[1:].isdigit()
        assert tools.normalise_phone(number) == number
