"""The record of one call: who called, what became of it, and the transcript of both sides."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs

from callcontrol import generated
from callcontrol.ai.transcript import Transcript
from callcontrol.db.database import Database, DatabaseUnavailable
from callcontrol.handoff.service import CallIdentity, HandoffReply

_UPSERT = """
INSERT INTO callcontrol_calls
    (call_uuid, domain_uuid, secretary_uuid, caller_number, caller_name, instance, started_at,
     ended_at, outcome, handoff_status, handoff_destination, hangup_cause, transcript)
VALUES (%(call_uuid)s, %(domain_uuid)s, %(secretary_uuid)s, %(caller_number)s, %(caller_name)s,
        %(instance)s, %(started_at)s, %(ended_at)s, %(outcome)s, %(handoff_status)s,
        %(handoff_destination)s, %(hangup_cause)s, %(transcript)s::jsonb)
ON CONFLICT (call_uuid) DO UPDATE SET
    ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome,
    handoff_status = EXCLUDED.handoff_status, handoff_destination = EXCLUDED.handoff_destination,
    hangup_cause = EXCLUDED.hangup_cause, transcript = EXCLUDED.transcript
"""


@attrs.define
class CallRecord:
    who: CallIdentity
    instance: str
    transcript: Transcript = attrs.field(factory=Transcript)
    started_at: datetime = attrs.field(factory=lambda: generated.now(UTC))
    outcome: str = "caller_hangup"
    handoff: HandoffReply | None = None
    hangup_cause: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "call_uuid": self.who.call_uuid,
            "domain_uuid": self.who.domain_uuid,
            "secretary_uuid": self.who.secretary_uuid,
            "caller_number": self.who.caller_number,
            "caller_name": self.who.caller_name,
            "instance": self.instance,
            "started_at": self.started_at,
            "ended_at": generated.now(UTC),
            "outcome": self.outcome,
            "handoff_status": self.handoff.status if self.handoff else None,
            "handoff_destination": self.handoff.destination if self.handoff else None,
            "hangup_cause": self.hangup_cause,
            "transcript": json.dumps(self.transcript.as_list(), ensure_ascii=False),
        }

    async def save(self, db: Database, log: Any) -> None:
        try:
            await db.execute(_UPSERT, self.row())
        except DatabaseUnavailable as exc:
            log.error("call.record_not_saved", error=str(exc), outcome=self.outcome,
                      transcript=self.transcript.as_list())  # fmt: skip
