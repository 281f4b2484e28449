"""Browser tests: Debian's chromium, driven by Playwright's sync API, against the pages of a
real ``callcontrol serve`` (``run_secretary_server``: hypercorn, the scanner, click-to-call) on
the test PostgreSQL and the simulated FreeSWITCH.

The tests are plain sync tests (pytest-trio leaves them alone): the server and the simulated
switch run in ``trio.run`` on a thread of their own, and the test reaches them through
``Served.run`` (``trio.from_thread``). One browser per session, a fresh context per test.
Screenshots go to ``artifacts/screenshots/<test>-<step>.png`` (CI keeps ``artifacts/``), and
``<test>-failed.png`` when a test fails.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from callcontrol.config import HostPort, load_settings
from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.server import App, run_secretary_server, watched_boxes
from callcontrol.testing.freeswitch import FreeSwitchSim, open_freeswitch_sim
from tests.ports import unicast_ports
from tests.test_http_and_serve import _free_port

CHROMIUM = Path("/usr/bin/chromium")
# This machine's network is closed: without the background-networking flags chromium keeps
# dialling Google's hosts; as root it needs --no-sandbox.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--lang=pt-BR"]  # fmt: skip
# with Debian's chromium-l10n, what a Brazilian's browser shows (date fields as dd/mm/aaaa)
CHROMIUM_ENV = {"LANG": "pt_BR.UTF-8", "LANGUAGE": "pt_BR"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TOKEN = "browser-s3cret"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# a bound for a page that never shows what the test waits for, not a timing assertion
WAIT_MS = 10_000


def unavailable(reason: str) -> None:
    """A missing install step skips on a developer's machine but fails CI, where `.ci/run`
    (``./dev test``) must have installed it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the install step is missing)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the Python package playwright is missing: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        unavailable("Debian's package chromium is not installed (/usr/bin/chromium): "
                    "apt-get install chromium as root; ./dev test does it")  # fmt: skip
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                              env={**os.environ, **CHROMIUM_ENV})  # fmt: skip
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def expect(browser: Any) -> Any:
    """Playwright's ``expect`` (retrying assertions), bounded by ``WAIT_MS``."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the item, so the page fixture knows the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


class Shots:
    """Screenshots of one test's pages, named ``<test>-<step>.png``."""

    def __init__(self, test: str) -> None:
        self.test = re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_")
        self.pages: list[Any] = []

    def __call__(self, page: Any, step: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
def new_page(
    browser: Any, shot: Shots, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """``new_page(phone=False)``: a page in a context of its own (its own cookies), pt-BR, São
    Paulo's time zone; every page is screenshotted if the test fails."""
    contexts: list[Any] = []

    def make(*, phone: bool = False) -> Any:
        context = browser.new_context(viewport=PHONE if phone else DESKTOP, locale="pt-BR",
                                      timezone_id="America/Sao_Paulo")  # fmt: skip
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        shot.pages.append(page)
        return page

    yield make
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for n, page in enumerate(shot.pages):
            if not page.is_closed():
                shot(page, "failed" if n == 0 else f"failed{n}")
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()


@attrs.define
class Served:
    """The running server, as a test on another thread reaches it."""

    url: str
    sim: FreeSwitchSim
    db: Database
    app: App
    token: trio.lowlevel.TrioToken
    stop: trio.Event

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await fn(*args)`` on the server's trio thread (e.g. seeding with ``self.db``)."""
        return trio.from_thread.run(fn, *args, trio_token=self.token)

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)

    def originates(self) -> list[str]:
        """The ``bgapi originate`` lines the simulated FreeSWITCH received, oldest first."""
        def read() -> list[str]:
            return [c.line for listener in self.sim.inbound for c in listener.commands
                    if c.verb == "bgapi" and c.line.startswith("bgapi originate ")]  # fmt: skip

        return self.run_sync(read)  # type: ignore[no-any-return]


async def _serve(db_url: str, env: dict[str, str], ready: queue.Queue[Any]) -> None:
    async with open_freeswitch_sim() as sim, \
            open_database(db_url, PoolOptions(min_size=1, max_size=4)) as db:  # fmt: skip
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        http_port = _free_port()
        settings = load_settings({
            "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN,
            "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(47300, 47399),
            "ESL_HOST": "127.0.0.1", "ESL_PORT": str(esl_port), **env,
        })  # fmt: skip
        app = App(settings=settings)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
            # ready as /readyz means it: the switch's inbound connection is up too
            with trio.fail_after(30):
                while not (boxes := watched_boxes(app)).clients[boxes.names[0]].connected:
                    await boxes.clients[boxes.names[0]].wait_changed()
            stop = trio.Event()
            ready.put(Served(f"http://127.0.0.1:{http_port}", sim, db, app,
                             trio.lowlevel.current_trio_token(), stop))  # fmt: skip
            await stop.wait()
            app.shutting_down.set()


@pytest.fixture
def server_env() -> dict[str, str]:
    """Settings the server starts with on top of the test database and switch; override it."""
    return {}


@pytest.fixture
def served(db_url: str, server_env: dict[str, str]) -> Iterator[Served]:
    """``callcontrol serve`` on a fresh database (stock FusionPBX + migrations)."""
    ready: queue.Queue[Any] = queue.Queue()
    failure: list[BaseException] = []

    def thread_main() -> None:
        try:
            trio.run(_serve, db_url, server_env, ready)
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)
            ready.put(exc)

    thread = threading.Thread(target=thread_main, name="callcontrol-serve", daemon=True)
    thread.start()
    started = ready.get(timeout=120)
    if isinstance(started, BaseException):
        thread.join()
        raise started
    yield started
    started.run_sync(started.stop.set)
    thread.join()
    if failure:
        raise failure[0]


def sign_in(page: Any, served: Served, who: tuple[str, str]) -> None:
    """Through the sign-in form, as a person does; lands on the console."""
    page.goto(f"{served.url}/login")
    page.locator("input[name=username]").fill(who[0])
    page.locator("input[name=password]").fill(who[1])
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(f"{served.url}/console")
