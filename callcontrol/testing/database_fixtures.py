"""pytest fixtures for a real PostgreSQL (imported by ``callcontrol.testing.pytest_plugin``).

- ``database_url`` (session): the server; see :mod:`callcontrol.testing.database`.
- ``fusionpbx_schema``: which PBX the schema imitates, a
  :class:`~callcontrol.testing.database.StockPBX` (default: stock FusionPBX 5.5.7, no
  voice-secretary app). Override it by parametrizing, e.g.
  ``@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)``.
- ``db_url``: a URL whose connections see a fresh schema with that PBX's stock tables and
  every migration applied; dropped after the test.
- ``db``: a :class:`~callcontrol.db.Database` on ``db_url``. It runs queries inline (on the trio
  thread), so tests on ``MockClock(autojump_threshold=0)`` keep their deadlines honest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.testing.database import (
    STOCK,
    StockPBX,
    isolated_database_url,
    server_url_for_tests,
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with server_url_for_tests() as url:
        yield url


@pytest.fixture
def fusionpbx_schema() -> StockPBX:
    return STOCK


@pytest.fixture
def db_url(database_url: str, fusionpbx_schema: StockPBX) -> Iterator[str]:
    with isolated_database_url(database_url, fusionpbx=fusionpbx_schema) as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with open_database(db_url, PoolOptions(min_size=1, max_size=4, inline=True)) as database:
        yield database
