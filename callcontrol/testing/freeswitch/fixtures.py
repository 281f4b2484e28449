"""pytest fixtures for the simulated FreeSWITCH (via callcontrol.testing.pytest_plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from callcontrol.testing.freeswitch._sim import FreeSwitchSim, open_freeswitch_sim


@pytest.fixture
async def freeswitch_sim() -> AsyncIterator[FreeSwitchSim]:
    """A running simulated FreeSWITCH; combine with ``autojump_clock`` for instant timing."""
    async with open_freeswitch_sim() as sim:
        yield sim
