"""Entry points: ``python -m callcontrol``, signals, the embedded PostgreSQL fallback."""

from __future__ import annotations

import importlib.metadata
import os
import runpy
import signal
import subprocess
import sys

import psycopg
import pytest
import trio
import trio.testing

from callcontrol.config import load_settings
from callcontrol.db.embedded import start_embedded
from callcontrol.server import App, _watch_signals


def test_python_dash_m_runs_the_cli(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["callcontrol", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("callcontrol", run_name="__main__")
    assert exited.value.code == 0
    assert "serve" in capsys.readouterr().out


def test_version_prints_the_installed_version():
    done = subprocess.run(
        [sys.executable, "-m", "callcontrol", "--version"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0
    assert done.stdout == f"callcontrol {importlib.metadata.version('callcontrol')}\n"


async def test_sigterm_starts_the_drain(nursery):
    app = App(settings=load_settings({}))
    nursery.start_soon(_watch_signals, app)
    await trio.testing.wait_all_tasks_blocked()
    os.kill(os.getpid(), signal.SIGTERM)
    with trio.fail_after(5):
        await app.shutting_down.wait()


def test_embedded_postgresql_starts_when_no_server_is_given(tmp_path):
    url = start_embedded(tmp_path / "pg")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("callcontrol",)
