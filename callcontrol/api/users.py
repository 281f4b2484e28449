"""FusionPBX's users as sign-in reads them: ``v_users``, ``v_user_groups``, ``v_extension_users``.

Who may sign in is FusionPBX's rule (``core/authentication/.../plugins/database.php``): the
username matched without regard to case, a ``default`` user (``user_type`` 'default' or unset;
API-only users are not people), ``user_enabled`` true or unset (a boolean in 5.5, the text
'true' in 5.4), of an enabled domain. The role comes from the user's groups: ``superadmin`` or
``admin`` is a supervisor (of their own domain only: callcontrol never shows one tenant
another's tickets, FusionPBX's superadmin included), any other group an agent. The extensions
are the user's in ``v_extension_users``, of the user's own domain.

Which domain a bare username means is FusionPBX's answer too: ``user@domain`` when the part
after the last ``@`` names a domain, else the domain given with the form, else the domain the
request's ``Host`` names, else the only user of that name across domains (two or more: the
sign-in is refused and asks for ``user@domain``).

A name with an ``@`` that no username matches that way is taken as an e-mail address
(``v_users.user_email``, in 5.4 and 5.5 alike, compared without regard to case): the one user
with that address in the domain given with the form, else in the domain ``Host`` names, else
the only one across domains. An address two users of one domain share signs neither in by it
(FusionPBX does not keep addresses unique); their usernames still work. The username goes
first, so a user's e-mail can never take the place of someone else's ``user@domain``.
"""

from __future__ import annotations

import uuid

import attrs
from psycopg import sql

from callcontrol.api.principal import Principal, Role
from callcontrol.db.database import Database

SUPERVISOR_GROUPS = frozenset({"superadmin", "admin"})

# Who may sign in (every query): FusionPBX's own rule, on 5.5 booleans and 5.4 text.
_CANDIDATES = """
SELECT u.user_uuid, u.username, u.password, u.salt, u.domain_uuid, d.domain_name
  FROM v_users u JOIN v_domains d ON d.domain_uuid = u.domain_uuid
 WHERE lower({column}) = lower(%(name)s)
   AND (u.user_type = 'default' OR u.user_type IS NULL)
   AND coalesce(u.user_enabled::text, 'true') = 'true'
   AND coalesce(d.domain_enabled::text, 'true') = 'true'
   AND (%(domain)s::text IS NULL OR lower(d.domain_name) = lower(%(domain)s))
 ORDER BY d.domain_name
 LIMIT 2
"""

_BY_USERNAME = sql.SQL(_CANDIDATES).format(column=sql.Identifier("u", "username"))
_BY_EMAIL = sql.SQL(_CANDIDATES).format(column=sql.Identifier("u", "user_email"))

_DOMAIN_EXISTS = "SELECT 1 FROM v_domains WHERE lower(domain_name) = lower(%s)"

_PRINCIPAL = """
SELECT u.user_uuid, u.username, u.domain_uuid, d.domain_name,
       EXISTS (SELECT 1 FROM v_user_groups g
                WHERE g.user_uuid = u.user_uuid AND g.group_name = ANY(%(supervisors)s))
         AS supervisor,
       ARRAY(SELECT e.extension FROM v_extension_users eu
               JOIN v_extensions e ON e.extension_uuid = eu.extension_uuid
              WHERE eu.user_uuid = u.user_uuid AND e.domain_uuid = u.domain_uuid
                AND e.extension IS NOT NULL
              ORDER BY e.extension) AS extensions
  FROM v_users u JOIN v_domains d ON d.domain_uuid = u.domain_uuid
 WHERE u.user_uuid = %(user)s AND u.domain_uuid = %(domain)s
   AND (u.user_type = 'default' OR u.user_type IS NULL)
   AND coalesce(u.user_enabled::text, 'true') = 'true'
   AND coalesce(d.domain_enabled::text, 'true') = 'true'
"""


@attrs.frozen
class Candidate:
    """A user the name given may mean, with what their password is checked against."""

    user_uuid: uuid.UUID
    domain_uuid: uuid.UUID
    username: str
    domain_name: str
    password: str | None = attrs.field(repr=False)
    salt: str | None = attrs.field(repr=False)


async def _domain_named(db: Database, name: str | None) -> str | None:
    if not name:
        return None
    return name if await db.fetch_one(_DOMAIN_EXISTS, (name,)) is not None else None


async def find_candidate(db: Database, username: str, domain_name: str | None,
                         host: str | None) -> Candidate | None:  # fmt: skip
    """The one user the sign-in names, or None (no such user, or a bare name that more than
    one domain has)."""
    given = domain_name or await _domain_named(db, (host or "").rpartition(":")[0] or host)
    name, domain = username, given
    user_part, at, after = username.rpartition("@")
    if at and user_part and await _domain_named(db, after):
        name, domain = user_part, after
    rows = await db.fetch_all(_BY_USERNAME, {"name": name, "domain": domain})
    if not rows and at:
        # the domain of an address says nothing of the FusionPBX domain: the form's or Host's
        rows = await db.fetch_all(_BY_EMAIL, {"name": username, "domain": given})
    if len(rows) != 1:
        return None
    row = rows[0]
    return Candidate(row["user_uuid"], row["domain_uuid"], row["username"], row["domain_name"],
                     row["password"], row["salt"])  # fmt: skip


async def load_principal(db: Database, user_uuid: uuid.UUID,
                         domain_uuid: uuid.UUID) -> Principal | None:  # fmt: skip
    """The person ``user_uuid`` is now (None: gone, disabled, or moved to another domain)."""
    row = await db.fetch_one(_PRINCIPAL, {"user": user_uuid, "domain": domain_uuid,
                                          "supervisors": sorted(SUPERVISOR_GROUPS)})  # fmt: skip
    if row is None:
        return None
    return Principal(
        Role.SUPERVISOR if row["supervisor"] else Role.AGENT,
        domain_uuid=row["domain_uuid"],
        domain_name=row["domain_name"],
        user_uuid=row["user_uuid"],
        username=row["username"],
        extensions=tuple(row["extensions"]),
    )
