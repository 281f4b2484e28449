"""``callcontrol callback settings --domain NAME [--set KEY=VALUE ...]``: a domain's callback
settings, each shown with where it comes from (the domain, or the environment's default)."""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from callcontrol.callbacks import domain_settings
from callcontrol.config import Settings, load_settings
from callcontrol.db import DatabaseUnavailable, PoolOptions, open_database
from callcontrol.destinations.admin import AdminError, find_domain
from callcontrol.logs import configure_logging


def run_callback(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_format, level=logging.CRITICAL)
    prog = "callcontrol callback settings"
    try:
        changes = [domain_settings.parse_assignment(text) for text in args.set]
        return trio.run(_run, settings, args.domain, changes)
    except (AdminError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"{prog}: {exc.for_the_admin()}", file=sys.stderr)
        return 1


async def _run(settings: Settings, name: str, changes: list[tuple[str, int | None]]) -> int:
    async with open_database(settings.database_url, PoolOptions(min_size=1, max_size=2)) as db:
        domain = await find_domain(db, name)
        for key, value in changes:
            await domain_settings.store(db, str(domain.uuid), key, value)
        own = await domain_settings.stored(db, str(domain.uuid))
    print(f"callback settings of {domain.name}:")
    for key, (field, _column) in domain_settings.KEYS.items():
        value = own[key]
        if value is None:
            print(f"  {key}={getattr(settings, field)}  (the environment's default)")
        else:
            print(f"  {key}={value}  (this domain's own)")
    return 0
