"""Shared fixtures. Each capability keeps its own fixtures in callcontrol.testing (shipped to
users, like trio.testing) and exposes them through the plugin below."""

from __future__ import annotations

import pytest
import structlog

pytest_plugins = ["callcontrol.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _restore_logging_configuration():
    """CLI entry points configure structlog for the process; undo it after each test so one
    test's log level cannot hide another test's log lines."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
