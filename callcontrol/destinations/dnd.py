"""Do Not Disturb, read where FusionPBX keeps it.

FusionPBX turns a DND extension's directory dial string into ``error/user_busy``, so ringing it
would report a plain USER_BUSY; reading the flag first lets the AI say the truth ("não
perturbe"). The flag is ``boolean`` from FusionPBX 5.5 and ``text`` before, hence ``::text``;
FusionPBX 4.x marked DND only by writing ``error/user_busy`` into ``dial_string``.
"""

from __future__ import annotations

from uuid import UUID

from callcontrol.db import Database


def dnd_sql(table: str) -> str:
    """The one definition of "this extension is in DND", as an SQL condition on the
    ``v_extensions`` row named ``table`` (never NULL, so a LEFT JOIN that found no row is
    "not in DND"): read by the handoff, the callbacks scanner, click-to-call and the API alike,
    so they cannot disagree about an agent."""
    return (f"(coalesce({table}.do_not_disturb::text = 'true', false)"
            f" OR coalesce({table}.dial_string = 'error/user_busy', false))")


_DND = f"""
SELECT bool_or({dnd_sql("v_extensions")}) AS dnd
FROM v_extensions
WHERE domain_uuid = %(domain)s AND (extension = %(number)s OR number_alias = %(number)s)
"""  # noqa: S608 - dnd_sql is fixed text


async def is_do_not_disturb(db: Database, domain_uuid: UUID, extension: str) -> bool:
    """True when the extension (or number alias) ``extension`` of the domain is in DND;
    False when it is not, or does not exist."""
    return bool(await db.fetch_value(_DND, {"domain": domain_uuid, "number": extension}))
