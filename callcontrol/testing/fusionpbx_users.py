"""FusionPBX users for tests, the demo and the browser tests: rows as FusionPBX writes them.

``add_user`` inserts a ``v_users`` row (the password hashed like PHP's
``password_hash(PASSWORD_DEFAULT)``: bcrypt written ``$2y$``, salt empty; or, with
``legacy_md5=True``, FusionPBX 3.x's ``md5(salt . password)`` with a salt), a ``v_user_groups``
row for its group (``superadmin``/``admin``: a supervisor; ``user``: an agent), linked to the
domain's ``v_groups`` row when there is one, and a ``v_extension_users`` row per extension it
answers (the extensions must exist: ``callcontrol.testing.database.add_extension``). Flags are
written as text literals, so the same call works on 5.5 (boolean) and 5.4 (text) schemas.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable

from callcontrol import generated
from callcontrol.api import passwords
from callcontrol.db.database import Database

# bcrypt cost for test users: PHP's default is 10 (~50 ms a check); 4 keeps suites fast and
# is the same algorithm and format.
TEST_COST = 4


async def add_user(
    db: Database,
    domain_uuid: uuid.UUID,
    username: str,
    password: str,
    *,
    group: str = "user",
    extensions: Iterable[str] = (),
    enabled: bool | None = True,
    legacy_md5: bool = False,
    user_type: str | None = "default",
    cost: int = TEST_COST,
    email: str | None = None,
) -> uuid.UUID:
    """A FusionPBX user of ``domain_uuid``; returns its ``user_uuid``. ``enabled`` None leaves
    ``user_enabled`` unset (FusionPBX takes that as enabled)."""
    user_uuid = generated.uuid4()
    if legacy_md5:
        made_salt = secrets.token_hex(16)
        salt: str | None = made_salt
        stored = passwords.hash_legacy_md5(password, made_salt)
    else:
        salt, stored = None, passwords.hash_php(password, cost=cost)
    flag = None if enabled is None else ("true" if enabled else "false")
    await db.execute(
        "INSERT INTO v_users (user_uuid, domain_uuid, username, password, salt, user_enabled,"
        " user_type, user_email, user_status, add_date, insert_date)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'Available', now()::text, now())",
        (user_uuid, domain_uuid, username, stored, salt, flag, user_type, email),
    )
    await add_user_group(db, domain_uuid, user_uuid, username, group)
    for extension in extensions:
        await link_extension(db, domain_uuid, user_uuid, extension)
    return user_uuid


async def add_user_group(db: Database, domain_uuid: uuid.UUID, user_uuid: uuid.UUID,
                         username: str, group: str) -> None:  # fmt: skip
    await db.execute(
        "INSERT INTO v_user_groups (user_group_uuid, domain_uuid, group_name, group_uuid,"
        " username, user_uuid, insert_date)"
        " VALUES (%s, %s, %s, (SELECT group_uuid FROM v_groups WHERE group_name = %s"
        "   AND (domain_uuid = %s OR domain_uuid IS NULL) LIMIT 1), %s, %s, now())",
        (generated.uuid4(), domain_uuid, group, group, domain_uuid, username, user_uuid),
    )


async def link_extension(db: Database, domain_uuid: uuid.UUID, user_uuid: uuid.UUID,
                         extension: str) -> None:  # fmt: skip
    """The user answers ``extension`` (``v_extension_users``); the extension must exist."""
    extension_uuid = await db.fetch_value(
        "SELECT extension_uuid FROM v_extensions WHERE domain_uuid = %s AND extension = %s",
        (domain_uuid, extension),
    )
    if extension_uuid is None:
        raise LookupError(f"no extension {extension} in domain {domain_uuid}; add it first")
    await db.execute(
        "INSERT INTO v_extension_users (extension_user_uuid, domain_uuid, extension_uuid,"
        " user_uuid, insert_date) VALUES (%s, %s, %s, %s, now())",
        (generated.uuid4(), domain_uuid, extension_uuid, user_uuid),
    )


async def set_user_enabled(db: Database, user_uuid: uuid.UUID, enabled: bool) -> None:
    await db.execute("UPDATE v_users SET user_enabled = %s WHERE user_uuid = %s",
                     ("true" if enabled else "false", user_uuid))  # fmt: skip
