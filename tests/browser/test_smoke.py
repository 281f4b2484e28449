"""The browser machinery itself: Debian's chromium reaches the server the other browser tests
drive, and a screenshot lands where CI keeps it."""

from __future__ import annotations

from tests.browser.conftest import SCREENSHOTS


def test_chromium_reaches_the_running_server(served, page, shot):
    answer = page.goto(f"{served.url}/healthz")
    assert answer is not None and answer.status == 200
    assert '"status":"ok"' in page.content().replace(" ", "")
    path = shot(page, "healthz")
    assert path == SCREENSHOTS / "test_chromium_reaches_the_running_server-healthz.png"
    assert path.read_bytes().startswith(b"\x89PNG")
