"""``./dev bench``: every benchmark in bench/ runs (in its ``--quick`` mode here), and the dev
script runs the benchmarks only, never their ``bench/_*.py`` helper modules.

Nothing here looks at the figures: a benchmark reports, it does not assert."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import bench_first_port

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls"
"""


def _dev_with_fake_venv(tmp_path: Path) -> Path:
    """A copy of the dev script, bench/ and the setup files, whose .venv is already "installed"
    and whose python only records how it was called."""
    for name in ("dev", "setup.cfg", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "bench", tmp_path / "bench")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    digest = hashlib.sha1(  # what dev computes: sha1sum of setup.cfg + pyproject.toml
        (ROOT / "setup.cfg").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()
    (tmp_path / ".venv" / ".installed").write_text(digest[:16] + "\n")
    return tmp_path


def _dev(root: Path, *args: str) -> list[str]:
    done = subprocess.run(
        ["bash", str(root / "dev"), *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "installing" not in done.stderr  # the fake venv counted as installed
    return (root / ".venv" / "calls").read_text().splitlines()


def test_dev_bench_runs_every_benchmark_and_no_helper(tmp_path: Path) -> None:
    root = _dev_with_fake_venv(tmp_path)
    assert (root / "bench" / "_handoff_switch.py").is_file()
    calls = _dev(root, "bench", "--quick")
    assert calls[0] == "-m pip install -q -e .[bench]"
    assert calls[1:] == [f"bench/{name}.py --quick" for name in BENCHMARKS]
    assert BENCHMARKS == ["codecs", "esl_parse", "handoff", "media", "scanner"]


def test_dev_bench_name_runs_that_benchmark_alone(tmp_path: Path) -> None:
    root = _dev_with_fake_venv(tmp_path)
    calls = _dev(root, "bench", "handoff", "--calls", "50", "--latency", "0")
    assert calls[1:] == ["bench/handoff.py --calls 50 --latency 0"]


def _run_quick(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_codecs_benchmark_runs() -> None:
    out = _run_quick("codecs")
    assert "calls/core, resampling only" in out
    assert "mu-law encode (8k frame)" in out


def test_esl_parse_benchmark_runs() -> None:
    for peer in ("genesis", "greenswitch"):  # the peers `./dev bench` installs ([bench] extra)
        if importlib.util.find_spec(peer) is None:
            pytest.skip(f"{peer} is not installed (pip install -e '.[bench]')")
    out = _run_quick("esl_parse")
    assert "callcontrol routed" in out and "greenswitch" in out


def test_media_benchmark_runs() -> None:
    # Its own UDP ports (per xdist worker), clear of the other tests' ranges.
    out = _run_quick("media", "--first-port", str(bench_first_port(0)))
    lines = out.splitlines()
    assert any(line.split()[:1] == ["20"] for line in lines)  # the 20-call load
    # both codecs, both engines of the same run, and their ratio
    start = next(i for i, x in enumerate(lines) if x.startswith("largest passing load per"))
    summary = lines[start + 1 : start + 3]
    assert [x.split(":")[0].strip() for x in summary] == ["L16", "PCMU"]
    assert all("batched:" in x and "percall:" in x and "ratio" in x for x in summary)
    assert lines[start + 3].startswith("CPU per frame moved")  # then its two rows
    assert [x.split(":")[0].strip() for x in lines[start + 4 :]] == ["L16", "PCMU"]


def test_handoff_benchmark_runs() -> None:
    out = _run_quick("handoff")
    assert "== N = 20 calls, simulator latency 20 ms ==" in out
    assert "calls served 20," in out


def test_scanner_benchmark_runs() -> None:
    out = _run_quick("scanner")
    assert "== 500 open tickets" in out
    assert "scan_once, best of 2:" in out and "one request per ticket:" in out
    assert "ratio: per-ticket / scan_once" in out


def test_media_benchmark_runs_with_workers() -> None:
    out = _run_quick("media", "--workers", "2", "--first-port", str(bench_first_port(1)))
    rows = [line.split()[:2] for line in out.splitlines()]
    assert ["20", "1"] in rows and ["20", "2"] in rows  # the same load, 1 worker then 2
    assert out.splitlines()[-1].startswith("largest passing load per box: 1 worker ")
    assert "workers" in out.splitlines()[-1] and "ratio" in out.splitlines()[-1]


def test_handoff_benchmark_runs_with_workers() -> None:
    out = _run_quick("handoff", "--workers", "2")
    assert out.count("calls served 20,") == 2
    assert "server: 1 worker process(es), calls each 20;" in out
    assert "server: 2 worker process(es), calls each " in out
    assert "calls per box (20 ms switch" in out and "ratio" in out
