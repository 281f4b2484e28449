"""Who is asking: the one answer every endpoint and page reads, whatever the way in.

A machine client with the service token is the ``service`` principal: it names the domain it
asks about (``domain_uuid``) and may see every extension of it. A person signed in with their
FusionPBX username and password is an ``agent`` (sees only the tickets of their own extensions,
``v_extension_users``) or a ``supervisor`` (a FusionPBX ``admin`` or ``superadmin``: every
ticket of their own domain). A person never sees another domain: asking for one is answered as
if it did not exist (404), so a tenant cannot even learn that another's ticket is there.

The authentication middleware puts the principal on the request's scope
(``scope["state"]["principal"]``); handlers read it with ``Principal.of(request)``.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import attrs
from starlette.requests import Request

from callcontrol.api.errors import ApiError, not_found


class Role(StrEnum):
    SERVICE = "service"
    AGENT = "agent"
    SUPERVISOR = "supervisor"


@attrs.frozen
class Principal:
    role: Role
    # None only for the service principal, which names a domain on each request
    domain_uuid: uuid.UUID | None = None
    domain_name: str | None = None
    user_uuid: uuid.UUID | None = None
    username: str | None = None
    # a person's own extensions (v_extension_users; what an agent is kept to; a supervisor's
    # are informative only); empty for the service
    extensions: tuple[str, ...] = ()

    @property
    def is_person(self) -> bool:
        return self.role is not Role.SERVICE

    @property
    def sees_every_extension(self) -> bool:
        return self.role is not Role.AGENT

    def domain(self, asked: uuid.UUID | None) -> uuid.UUID:
        """The domain a request is about: a person's own (one that asks for another gets a
        404, as if it did not exist); the service names one (``domain_uuid`` is required)."""
        if self.domain_uuid is None:
            if asked is None:
                raise ApiError(400, "bad_request", "`domain_uuid` is required")
            return asked
        if asked is not None and asked != self.domain_uuid:
            raise not_found("no such domain")
        return self.domain_uuid

    def may_see_extension(self, extension: str | None) -> bool:
        return self.sees_every_extension or (extension is not None
                                             and extension in self.extensions)  # fmt: skip

    @staticmethod
    def of(request: Request) -> Principal:
        """The principal the middleware found; a request that reached a handler without one
        is the service (the token middleware lets only token holders through)."""
        found: Any = request.scope.get("state", {}).get("principal")
        return found if isinstance(found, Principal) else SERVICE


SERVICE = Principal(Role.SERVICE)
