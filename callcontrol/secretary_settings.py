"""Which secretary answers a call, and its settings: callcontrol's own table first.

A stock FusionPBX has no secretary table; callcontrol keeps its settings in
``callcontrol_secretaries`` (migration 004): one row per domain (``secretary_uuid`` NULL, "the
domain's secretary") and optionally one per secretary the dialplan names with
``voice_secretary_uuid``. The separately installed voice-secretary app's ``v_voice_secretaries``
is read only when that table exists (``to_regclass``), only for a row of the call's domain that is
not disabled (its flag is ``text`` on FusionPBX ≤ 5.4 and ``boolean`` on 5.5; ``->>`` reads
both as 'true'/'false', and a release without the column as enabled).

No secretary line, the nil UUID, a UUID nobody configured, or no table at all: the call gets the
domain's secretary. Precedence, most specific first: callcontrol's row for that secretary, the
other app's row, callcontrol's row for the domain, then the server's defaults (NULL everywhere).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import attrs

from callcontrol.db.database import Database

NIL_UUID = UUID(int=0)

_OWN = """
SELECT to_regclass('v_voice_secretaries') IS NOT NULL AS app_installed,
       (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.secretary_uuid NULLS LAST), '[]')
        FROM callcontrol_secretaries AS c
        WHERE c.domain_uuid = %(domain)s
          AND (c.secretary_uuid IS NULL OR c.secretary_uuid = %(secretary)s::uuid)) AS rows
"""

# to_jsonb: the other app's columns differ between its releases; read what is there.
_APP = """
SELECT to_jsonb(s) AS row FROM v_voice_secretaries AS s
WHERE s.voice_secretary_uuid = %(secretary)s AND s.domain_uuid = %(domain)s
  AND (to_jsonb(s) ->> 'enabled') IS DISTINCT FROM 'false'
"""

_FIELDS = ("company_name", "instructions", "voice", "greeting", "default_destination_uuid",
           "transfer_enabled", "transfer_default_timeout",
           "transfer_announce_enabled")  # fmt: skip


@attrs.frozen
class SecretarySettings:
    """The settings a call's secretary runs with; None: the server's default."""

    company_name: str | None = None
    instructions: str | None = None
    voice: str | None = None
    greeting: str | None = None
    default_destination_uuid: UUID | None = None
    transfer_enabled: bool | None = None
    transfer_default_timeout: int | None = None
    transfer_announce_enabled: bool | None = None
    # Where they came from, for the log line: "own", "app", "own+app", "domain", "defaults".
    source: str = "defaults"


def secretary_uuid_of(text: str | None) -> UUID | None:
    """``voice_secretary_uuid`` as the dialplan set it; absent, malformed or nil → None."""
    try:
        value = UUID(text) if text else None
    except ValueError:
        return None
    return None if value == NIL_UUID else value


async def load_secretary(
    db: Database, domain_uuid: UUID | None, secretary_uuid: UUID | None
) -> SecretarySettings:
    if domain_uuid is None:
        return SecretarySettings()
    params = {"domain": domain_uuid, "secretary": secretary_uuid}
    found = await db.fetch_one(_OWN, params)
    own_rows: list[dict[str, Any]] = list(found["rows"]) if found else []
    own = next((r for r in own_rows if r.get("secretary_uuid") is not None), None)
    domain = next((r for r in own_rows if r.get("secretary_uuid") is None), None)
    app: dict[str, Any] | None = None
    if found and found["app_installed"] and secretary_uuid is not None:
        row = await db.fetch_one(_APP, params)
        app = _from_app(row["row"]) if row and row.get("row") else None
    layers = [layer for layer in (own, app, domain) if layer]
    merged: dict[str, Any] = {}
    for field in _FIELDS:
        merged[field] = next((layer[field] for layer in layers
                              if layer.get(field) not in (None, "")), None)  # fmt: skip
    if merged["default_destination_uuid"] is not None:
        merged["default_destination_uuid"] = UUID(str(merged["default_destination_uuid"]))
    source = "+".join(name for name, layer in (("own", own), ("app", app), ("domain", domain))
                      if layer) or "defaults"  # fmt: skip
    return SecretarySettings(**merged, source=source)


def _from_app(row: dict[str, Any]) -> dict[str, Any]:
    """The other app's row in callcontrol's terms (it names its prompt differently)."""
    return {
        "company_name": row.get("company_name"),
        "instructions": row.get("instructions") or row.get("personality_prompt"),
        "greeting": row.get("greeting") or row.get("greeting_message"),
    }
