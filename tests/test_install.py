"""A real install: the wheel built from this checkout (through its sdist, as ``python -m build``
and PyPI users get it) carries sql/, dialplan/ and fs-conf/, byte for byte the files of the
top-level directories the docs point admins to.

Everything here works offline: the build runs without isolation (``--no-build-isolation
--no-index``, setuptools and wheel from the test virtualenv, which ``./dev`` installs with the
``[test]`` extra). ``-m "not install"`` leaves these tests out."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIRS = ("sql", "dialplan", "fs-conf")
# What a checkout holds that a build does not read, or that a build writes.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
    ".hypothesis", ".coverage*", "recordings",
)  # fmt: skip

pytestmark = pytest.mark.install


def _run(*cmd: str | Path, cwd: Path | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(sdist, wheel) built from a copy of this checkout, so the build leaves nothing in it."""
    base = tmp_path_factory.mktemp("build")
    src = base / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_NOT_SOURCES)
    dist = base / "dist"
    dist.mkdir()
    _run(
        sys.executable, "-c",
        "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
        dist, cwd=src,
    )  # fmt: skip
    (sdist,) = dist.glob("callcontrol-*.tar.gz")
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", dist, sdist,
    )  # fmt: skip
    (wheel,) = dist.glob("callcontrol-*.whl")
    yield sdist, wheel


def _top_level_files(name: str) -> dict[str, bytes]:
    """The files of the top-level directory ``name``, as the wheel would name them."""
    return {
        f"callcontrol/{path.relative_to(ROOT).as_posix()}": path.read_bytes()
        for path in sorted((ROOT / name).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("name", DATA_DIRS)
def test_the_package_data_is_a_link_to_the_top_level_directory(name: str) -> None:
    """One copy of the files: callcontrol/<name> only points at <name>/, so they cannot drift."""
    linked = ROOT / "callcontrol" / name
    assert linked.is_symlink()
    assert linked.resolve() == (ROOT / name).resolve()


@pytest.mark.parametrize("name", DATA_DIRS)
def test_the_wheel_carries_the_top_level_files_byte_for_byte(
    built: tuple[Path, Path], name: str
) -> None:
    _, wheel = built
    expected = _top_level_files(name)
    assert len(expected) >= 2
    with zipfile.ZipFile(wheel) as whl:
        shipped = {
            n: whl.read(n) for n in whl.namelist() if n.startswith(f"callcontrol/{name}/")
        }
    assert shipped == expected


def test_the_sdist_carries_them_too(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    for name in DATA_DIRS:
        assert set(_top_level_files(name)) <= names
