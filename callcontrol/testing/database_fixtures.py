"""pytest fixtures for a real PostgreSQL (imported by ``callcontrol.testing.pytest_plugin``).

- ``database_url`` (session): the server; see :mod:`callcontrol.testing.database`.
- ``db_url``: a URL whose connections see a fresh schema with the FusionPBX fixture tables and
  every migration applied; dropped after the test.
- ``db``: a :class:`~callcontrol.db.Database` on ``db_url``. It runs queries inline (on the trio
  thread), so tests on ``MockClock(autojump_threshold=0)`` keep their deadlines honest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.testing.database import isolated_database_url, server_url_for_tests


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with server_url_for_tests() as url:
        yield url


@pytest.fixture
def db_url(database_url: str) -> Iterator[str]:
    with isolated_database_url(database_url) as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with open_database(db_url, PoolOptions(min_size=1, max_size=4, inline=True)) as database:
        yield database
