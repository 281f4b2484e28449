"""Do Not Disturb, read where FusionPBX keeps it.

FusionPBX turns a DND extension's directory dial string into ``error/user_busy``, so ringing it
would report a plain USER_BUSY; reading the flag first lets the AI say the truth ("não
perturbe"). The flag is ``boolean`` from FusionPBX 5.5 and ``text`` before, hence ``::text``;
FusionPBX 4.x marked DND only by writing ``error/user_busy`` into ``dial_string``.
"""

from __future__ import annotations

from uuid import UUID

from callcontrol.db import Database

_DND = """
SELECT bool_or(do_not_disturb::text = 'true' OR dial_string = 'error/user_busy') AS dnd
FROM v_extensions
WHERE domain_uuid = %(domain)s AND (extension = %(number)s OR number_alias = %(number)s)
"""


async def is_do_not_disturb(db: Database, domain_uuid: UUID, extension: str) -> bool:
    """True when the extension (or number alias) ``extension`` of the domain is in DND;
    False when it is not, or does not exist."""
    return bool(await db.fetch_value(_DND, {"domain": domain_uuid, "number": extension}))
