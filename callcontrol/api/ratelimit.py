"""Failed sign-ins counted per key (an account, a client address) over a sliding window, in
PostgreSQL (``callcontrol_sign_in_failures``, migration 015).

After ``limit`` failures within ``window_seconds`` the key is refused until its oldest failure
leaves the window; the refusal says in how many seconds. A key that is refused is not tried at
all (the password is not checked), so guessing on stops helping. The count lives in the
database, not in a process, so every process and every instance that serves the API shares
it: a guesser gets five tries at an account, not five per worker behind the load balancer.

A try is written as a failure before its password is checked (``reserve``), under a lock on
its keys, and taken back when the password was right (``succeeded``): guesses sent at once,
to one process or to several, cannot all pass the check while the first ones are still being
hashed. Each reservation deletes the rows that have left the window, so the table holds at
most the last few minutes of failures.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Literal

import attrs

from callcontrol.db.database import Connection, Database

Kind = Literal["account", "address"]


@attrs.frozen
class Limit:
    kind: Kind
    limit: int
    window_seconds: float = 300.0


@attrs.frozen
class Reserved:
    """A try counted before its password is checked: its rows, to take back on success."""

    failure_ids: tuple[int, ...]


@attrs.frozen
class Refused:
    retry_after: int  # seconds until the key that is at its limit may try again


def _lock_key(kind: str, key: str) -> int:
    """A stable 64-bit advisory lock id for one key (the same in every process)."""
    digest = hashlib.blake2b(f"callcontrol-sign-in|{kind}|{key}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def reserve(db: Database, keys: Sequence[tuple[Limit, str]],
                  now: float) -> Reserved | Refused:  # fmt: skip
    """Count one try against every key, or refuse it when one of them is at its limit (then
    nothing is written). ``now``: wall-clock seconds (every instance's clock is assumed to be
    set by NTP, as the session cookies' expiry assumes already)."""

    def work(conn: Connection) -> Reserved | Refused:
        # sorted, so two tries on the same two keys cannot each hold the lock the other waits on
        for lock in sorted({_lock_key(limit.kind, key) for limit, key in keys}):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        longest = max(limit.window_seconds for limit, _ in keys)
        conn.execute("DELETE FROM callcontrol_sign_in_failures"
                     " WHERE failed_at <= to_timestamp(%s)", (now - longest,))  # fmt: skip
        waits = []
        for limit, key in keys:
            row = conn.execute(
                "SELECT extract(epoch FROM failed_at)::float8 AS at"
                "  FROM callcontrol_sign_in_failures"
                " WHERE kind = %s AND key = %s AND failed_at > to_timestamp(%s)"
                " ORDER BY failed_at DESC OFFSET %s LIMIT 1",
                (limit.kind, key, now - limit.window_seconds, limit.limit - 1),
            ).fetchone()
            if row is not None:  # the limit-th newest failure is still inside the window
                waits.append(max(1, math.ceil(row["at"] + limit.window_seconds - now)))
        if waits:
            return Refused(max(waits))
        ids = [
            conn.execute("INSERT INTO callcontrol_sign_in_failures (kind, key, failed_at)"
                         " VALUES (%s, %s, to_timestamp(%s)) RETURNING failure_id",
                         (limit.kind, key, now)).fetchone()["failure_id"]  # type: ignore[index]
            for limit, key in keys
        ]  # fmt: skip
        return Reserved(tuple(ids))

    return await db.transaction(work)


async def succeeded(db: Database, reserved: Reserved, forget: Sequence[tuple[Limit, str]]) -> None:
    """The password was right: this try was no failure, and the keys in ``forget`` (the
    account) start again from nothing."""

    def work(conn: Connection) -> None:
        conn.execute("DELETE FROM callcontrol_sign_in_failures WHERE failure_id = ANY(%s)",
                     (list(reserved.failure_ids),))  # fmt: skip
        for limit, key in forget:
            conn.execute("DELETE FROM callcontrol_sign_in_failures WHERE kind = %s AND key = %s",
                         (limit.kind, key))  # fmt: skip

    await db.transaction(work)
