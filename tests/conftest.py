"""Shared fixtures. Each capability keeps its own fixtures in callcontrol.testing (shipped to
users, like trio.testing) and exposes them through the plugin below."""

from __future__ import annotations

import pytest
import structlog

pytest_plugins = ["callcontrol.testing.pytest_plugin"]


@pytest.fixture(scope="session", autouse=True)
def _every_ai_frame_is_valid():
    """Every frame the scripted AI servers send or receive in the whole suite is checked against
    the official openai package's models (tests/ai/wire_types.py); a frame the API would not
    send or accept fails the run at the end."""
    from callcontrol.testing import realtime
    from tests.ai.wire_types import problems

    found: dict[tuple[str, str, str, str], int] = {}

    def check(protocol, direction, frame):
        for problem in problems(protocol, direction, frame):
            key = (protocol, direction, str(frame.get("type")), problem)
            found[key] = found.get(key, 0) + 1

    realtime.frame_observers.append(check)
    yield
    realtime.frame_observers.remove(check)
    assert not found, "frames the API would reject:\n" + "\n".join(
        f"{n}x {p} {d} {t}: {what}" for (p, d, t, what), n in sorted(found.items())
    )


@pytest.fixture(scope="session", autouse=True)
def _logs_render_as_serve_renders_them():
    """The product's log pipeline (secrets masked, a traceback turned into text by
    format_exc_info) instead of structlog's unconfigured default, whose rich traceback renders
    every frame's locals: seconds on a loaded 2-core CI box, spent inside a call's error path,
    where a test's bound on the caller's wait then runs out. Printed to the stdout of the
    moment, so pytest still captures it per test."""
    from callcontrol.logs import configure_logging

    configure_logging("console")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory())


@pytest.fixture(autouse=True)
def _restore_logging_configuration():
    """CLI entry points configure structlog for the process; undo it after each test so one
    test's log level cannot hide another test's log lines."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
