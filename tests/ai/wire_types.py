"""The official ``openai`` package's models of the Realtime and Live wire protocols, strict.

Strict means: every required field present, no type coercion, and no field the model does not
know (the package's models accept extra keys; a key the API does not define is a mistake in our
client or in our simulator). Test-only: ``openai`` is in the ``test`` extra.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import pydantic
from openai.types.live.client_event import ClientEvent as LiveClientEvent
from openai.types.live.server_event import ServerEvent as LiveServerEvent
from openai.types.realtime.realtime_client_event import RealtimeClientEvent
from openai.types.realtime.realtime_server_event import RealtimeServerEvent


def _by_type(union: Any) -> dict[str, type[pydantic.BaseModel]]:
    """``type`` literal -> model, for the members of one of the package's event unions."""
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    found: dict[str, type[pydantic.BaseModel]] = {}
    for member in typing.get_args(union):
        for literal in typing.get_args(member.model_fields["type"].annotation):
            found[literal] = member
    return found


MODELS: dict[tuple[str, str], dict[str, type[pydantic.BaseModel]]] = {
    ("realtime", "client"): _by_type(RealtimeClientEvent),
    ("realtime", "server"): _by_type(RealtimeServerEvent),
    ("live", "client"): _by_type(LiveClientEvent),
    ("live", "server"): _by_type(LiveServerEvent),
}


def problems(protocol: str, direction: str, frame: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``frame`` for the API (empty when it validates strictly)."""
    model_class = MODELS[(protocol, direction)].get(str(frame.get("type")))
    if model_class is None:
        return [f"{frame.get('type')!r} is not a {protocol} {direction} event"]
    try:
        model = model_class.model_validate(dict(frame), strict=True)
    except pydantic.ValidationError as exc:
        return [f"{e['loc']}: {e['msg']}" for e in exc.errors(include_url=False)]
    return [f"unknown field {path}" for path in _extras(model, ())]


def _extras(value: Any, path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    if isinstance(value, pydantic.BaseModel):
        found += [(*path, key) for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += _extras(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _extras(item, (*path, key))
    return found
