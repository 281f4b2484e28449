"""The served OpenAPI document as tests read it: its operations, and a small checker of an answer
against the JSON Schema (2020-12 subset the document uses) it documents for that answer."""

from __future__ import annotations

from typing import Any

from callcontrol.api.openapi import document

DOC = document()


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation in the document."""
    return [(method.upper(), path, op) for path, ops in DOC["paths"].items()
            for method, op in ops.items()]  # fmt: skip


def answered_at_once(op: dict[str, Any]) -> bool:
    """Not a stream: its whole answer comes back (httpx's ASGI transport waits for all of it,
    so /api/events is checked over real HTTP instead, tests/api/test_events.py)."""
    return "events" not in op.get("tags", ())


def params(op: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in op.get("parameters", []) if p["in"] == where]


def body_fields(op: dict[str, Any]) -> set[str]:
    body = op.get("requestBody")
    if not body:
        return set()
    return set(body["content"]["application/json"]["schema"]["properties"])


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool,
                          "null": type(None), "integer": int, "number": (int, float)}  # fmt: skip


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[kind])


def problems(value: Any, schema: dict[str, Any], at: str = "$") -> list[str]:
    """What in ``value`` the schema does not allow (empty: it conforms)."""
    schema = _resolve(schema)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{at}: {value!r} is not {kinds}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{at}: {value} > {schema['maximum']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += problems(item, schema["items"], f"{at}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        found += [f"{at}: {name} missing" for name in schema.get("required", [])
                  if name not in value]  # fmt: skip
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                found += problems(item, properties[name], f"{at}.{name}")
            elif extra is False:
                found.append(f"{at}: {name} is not documented")
            elif isinstance(extra, dict):
                found += problems(item, extra, f"{at}.{name}")
    return found


def answer_problems(op: dict[str, Any], status: int, content_type: str, body: bytes) -> list[str]:
    """What is wrong with this answer to ``op``, by its documented responses."""
    import json

    documented = op["responses"].get(str(status))
    if documented is None:
        return [f"status {status} is not documented for {op['operationId']}"]
    media = content_type.split(";")[0].strip()
    if media not in documented["content"]:
        return [f"{media} is not documented for {status} of {op['operationId']}"]
    if media != "application/json":
        return []
    return problems(json.loads(body), documented["content"][media]["schema"])
