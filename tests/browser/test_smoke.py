"""The browser machinery itself: Debian's chromium reaches the server the other browser tests
drive, and a screenshot lands where CI keeps it."""

from __future__ import annotations

import pytest

from tests.browser.conftest import SCREENSHOTS, unavailable


def test_chromium_reaches_the_running_server(served, page, shot):
    answer = page.goto(f"{served.url}/healthz")
    assert answer is not None and answer.status == 200
    assert '"status":"ok"' in page.content().replace(" ", "")
    path = shot(page, "healthz")
    assert path == SCREENSHOTS / "test_chromium_reaches_the_running_server-healthz.png"
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])  # fmt: skip
def test_a_missing_browser_skips_here_but_fails_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="chromium"):
        unavailable("Debian's package chromium is not installed")
