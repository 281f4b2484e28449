"""The callback scanner on 10k and 100k open tickets: one scan against one request per ticket.

Run: PYTHONPATH=. .venv/bin/python bench/scanner.py [--quick] [--tickets 10000 100000]

Real PostgreSQL (127.0.0.1:5432 db ``test``, else an embedded server), the stock FusionPBX
schema and every migration, in a throw-away schema. Tickets spread over 10 domains of 100
extensions; a simulated snapshot where 60 % of the extensions are registered and a third of
those are on a call. About 5 % of the tickets are past their expiry and 5 % over the
notification limit, so one scan does all its work: expire, send to review, notify.

* ours: one ``scan_once`` (the table is restored between runs, untimed; best of ``--runs``);
* per ticket, the original plan's way: for each due ticket, a query for its agent's extension
  and DND, then ``api show registrations as json`` over a real inbound Event Socket connection
  to the simulated FreeSWITCH (``callcontrol.testing``), read for that one extension. Timed on
  ``--sample`` tickets and scaled to all of them (it is linear: one round trip per ticket).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it

from callcontrol.callbacks.availability import Snapshot  # noqa: E402
from callcontrol.callbacks.scanner import scan_once  # noqa: E402
from callcontrol.config import load_settings  # noqa: E402
from callcontrol.db import open_database  # noqa: E402
from callcontrol.db.database import Connection, Database  # noqa: E402
from callcontrol.esl.inbound import InboundClient  # noqa: E402
from callcontrol.logs import configure_logging  # noqa: E402
from callcontrol.testing.database import (  # noqa: E402
    add_domain,
    add_extension,
    isolated_database_url,
    server_url_for_tests,
)
from callcontrol.testing.freeswitch import open_freeswitch_sim  # noqa: E402

DOMAINS = 10
EXTENSIONS = 100  # per domain
NOW = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
SETTINGS = load_settings({})

# Tickets made by the database itself: generate_series is what makes 100k rows in a second.
_INSERT = """
INSERT INTO callcontrol_callback_requests
       (kind, domain_uuid, phone_number, caller_name, reason, extension, status,
        created_at, scheduled_at, expires_at, notification_count, last_notified_at)
SELECT 'callback', d.domain_uuid, '+55119' || lpad(i::text, 8, '0'), 'Cliente ' || i,
       'retorno ' || i, (1000 + i %% %(extensions)s)::text, 'pending',
       %(now)s - interval '2 hours', %(now)s - interval '1 hour',
       CASE WHEN i %% 20 = 0 THEN %(now)s - interval '1 minute'
            ELSE %(now)s + interval '20 hours' END,
       CASE WHEN i %% 20 = 1 THEN %(max)s WHEN i %% 3 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i %% 3 = 0 THEN %(now)s - interval '30 minutes' END
  FROM generate_series(0, %(n)s - 1) AS i
  JOIN (SELECT domain_uuid, row_number() OVER (ORDER BY domain_name) - 1 AS k
          FROM v_domains) d ON d.k = (i / %(extensions)s) %% %(domains)s
"""

_PER_TICKET_DUE = """
SELECT request_uuid::text FROM callcontrol_callback_requests
 WHERE kind = 'callback' AND status IN ('pending', 'notified')
   AND (scheduled_at IS NULL OR scheduled_at <= %(now)s)
   AND expires_at > %(now)s AND notification_count < %(max)s
   AND (last_notified_at IS NULL
        OR last_notified_at <= %(now)s - make_interval(mins => min_interval_minutes))
 ORDER BY coalesce(scheduled_at, created_at) LIMIT %(limit)s
"""

_PER_TICKET_ONE = """
SELECT r.extension, d.domain_name, coalesce(e.do_not_disturb::text = 'true', false) AS dnd
  FROM callcontrol_callback_requests r
  LEFT JOIN v_domains d ON d.domain_uuid = r.domain_uuid
  LEFT JOIN v_extensions e ON e.domain_uuid = r.domain_uuid AND e.extension = r.extension
 WHERE r.request_uuid = %s
"""


def domain_name(k: int) -> str:
    return f"pbx{k:02d}.example.com"


def phones() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(registered, on a call) as (extension, domain): 60 % registered, a third of them busy."""
    registered, busy = [], []
    for k in range(DOMAINS):
        for x in range(EXTENSIONS):
            if x % 5 < 3:
                registered.append((str(1000 + x), domain_name(k)))
                if x % 3 == 0:
                    busy.append((str(1000 + x), domain_name(k)))
    return registered, busy


async def fill(db: Database, tickets: int) -> None:
    for k in range(DOMAINS):
        domain = await add_domain(db, domain_name(k))
        for x in range(EXTENSIONS):
            await add_extension(db, domain, str(1000 + x), do_not_disturb=x % 25 == 7)
    await db.execute(_INSERT, {"n": tickets, "now": NOW, "max": SETTINGS.callback_max_notifications,
                               "extensions": EXTENSIONS, "domains": DOMAINS})  # fmt: skip
    await db.execute("ANALYZE")
    # the pristine tickets, restored before each timed scan (a scan changes what it scans)
    await db.execute("CREATE TABLE bench_tickets AS SELECT * FROM callcontrol_callback_requests")


async def restore(db: Database) -> None:
    def work(conn: Connection) -> None:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("TRUNCATE callcontrol_callback_history, callcontrol_callback_requests CASCADE")
        conn.execute("INSERT INTO callcontrol_callback_requests SELECT * FROM bench_tickets")

    await db.transaction(work)
    await db.execute("ANALYZE callcontrol_callback_requests")


async def ours(db: Database, snapshot: Snapshot, runs: int) -> tuple[float, str]:
    async def snapshot_of() -> Snapshot:
        return snapshot

    best, counts = float("inf"), ""
    for _ in range(runs):
        await restore(db)
        started = time.perf_counter()
        result = await scan_once(db, snapshot_of, SETTINGS, NOW, limit=10**9)
        best = min(best, time.perf_counter() - started)
        counts = (f"due {result.due}, notified {len(result.notified)}, expired "
                  f"{len(result.expired)}, needs_review {len(result.to_review)}")  # fmt: skip
    return best, counts


async def per_ticket(db: Database, port: int, sample: int) -> tuple[float, int]:
    """Seconds per ticket, the original plan's way, and how many due tickets there are."""
    await restore(db)
    due = await db.fetch_all(
        _PER_TICKET_DUE, {"now": NOW, "limit": 10**9, "max": SETTINGS.callback_max_notifications}
    )
    client = InboundClient("127.0.0.1", port, "ClueCon")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        await client.connection()
        started = time.perf_counter()
        for row in due[:sample]:
            one = await db.fetch_one(_PER_TICKET_ONE, (row["request_uuid"],))
            assert one is not None
            listing = json.loads(await client.api("show", "registrations", "as", "json"))
            _free = not one["dnd"] and any(
                r.get("reg_user") == one["extension"] and r.get("realm") == one["domain_name"]
                for r in listing.get("rows", []))  # fmt: skip
        took = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return took / min(sample, len(due)), len(due)


async def run(server_url: str, tickets: int, runs: int, sample: int) -> None:
    registered, busy = phones()
    snapshot = Snapshot.from_rows(
        [{"reg_user": u, "realm": d} for u, d in registered],
        [{"presence_id": f"{u}@{d}", "callstate": "ACTIVE"} for u, d in busy],
    )
    with isolated_database_url(server_url) as url:
        async with open_database(url) as db, open_freeswitch_sim() as sim:
            started = time.perf_counter()
            await fill(db, tickets)
            filled = time.perf_counter() - started
            for user, domain in registered:
                sim.register(user, domain)
            port = (await sim.serve_inbound())[0].socket.getsockname()[1]
            scan, counts = await ours(db, snapshot, runs)
            each, due = await per_ticket(db, port, sample)
    slow = each * due
    print(f"== {tickets:,} open tickets ({DOMAINS} domains x {EXTENSIONS} extensions,"
          f" made in {filled:.1f} s) ==")  # fmt: skip
    print(f"  scan_once, best of {runs}:  {scan:8.3f} s   ({counts})")
    print(f"  one request per ticket: {slow:8.3f} s   ({each * 1e3:.2f} ms/ticket x {due:,} due,"
          f" measured on {min(sample, due):,})")  # fmt: skip
    print(f"  ratio: per-ticket / scan_once = {slow / scan:,.0f}x")


async def main(args: argparse.Namespace) -> None:
    with server_url_for_tests() as server_url:
        for tickets in args.tickets:
            await run(server_url, tickets, args.runs, args.sample)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tickets", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=5, help="scan_once best of (default 5)")
    parser.add_argument("--sample", type=int, default=2000,
                        help="tickets the per-ticket way is timed on (default 2000)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="500 tickets, to check it works")
    args = parser.parse_args()
    if args.quick:
        args.tickets, args.runs, args.sample = [500], 2, 50
    configure_logging("json")  # as serve logs: each notification's line is part of a scan's cost
    devnull = open(Path("/dev/null"), "w")  # noqa: SIM115 - for the life of the process
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=devnull))
    trio.run(main, args)


if __name__ == "__main__":
    cli()
