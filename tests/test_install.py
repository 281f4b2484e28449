"""A real install: the wheel built from this checkout (through its sdist, as ``python -m build``
and PyPI users get it) carries sql/, dialplan/ and fs-conf/, byte for byte the files of the
top-level directories the docs point admins to.

Everything here works offline: the build runs without isolation (``--no-build-isolation
--no-index``, setuptools and wheel from the test virtualenv, which ``./dev`` installs with the
``[test]`` extra). ``-m "not install"`` leaves these tests out."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from callcontrol.db.migrations import load_migrations
from callcontrol.testing.database import STOCK, isolated_database_url
from tests.test_doctor import PASSWORD, _EslHandler, _free_port, _ThreadedEsl

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


def test_the_wheel_carries_the_pages_templates_and_static_files(built: tuple[Path, Path]) -> None:
    """``serve`` renders the console from package data: a wheel without it serves 500s."""
    _, wheel = built
    with zipfile.ZipFile(wheel) as whl:
        shipped = set(whl.namelist())
    for folder in ("callcontrol/api/static", "callcontrol/api/templates"):
        files = {f"{folder}/{p.name}" for p in (ROOT / folder).iterdir() if p.is_file()}
        assert len(files) >= 5 and files <= shipped, files - shipped


def test_the_sdist_carries_them_too(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    for name in DATA_DIRS:
        assert set(_top_level_files(name)) <= names


# -- the wheel installed in a fresh virtualenv, run as an admin runs it ---------------------


@pytest.fixture(scope="module")
def venv(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel, installed by pip with ``--no-index --no-deps``.
    callcontrol's dependencies are the test virtualenv's (a .pth line to its site-packages,
    added after the install so pip never sees the test run's own editable callcontrol)."""
    _, wheel = built
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", root)
    python = root / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--no-cache-dir", "-q", wheel,
    )  # fmt: skip
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    (Path(site) / "callcontrol_test_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    return root


def _admin_env(**settings: str) -> dict[str, str]:
    """The environment of an admin's shell: PATH and HOME, the settings, nothing of the test
    run (no PYTHONPATH pointing at the checkout, no coverage hooks)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "CALLCONTROL_LOG_FORMAT": "json",
        **settings,
    }


def _callcontrol(
    venv: Path, *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "callcontrol"), *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=cwd, check=False,
    )  # fmt: skip


def _applied(done: subprocess.CompletedProcess[str]) -> list[list[int]]:
    """The versions each ``db.migrate_done`` log line of ``callcontrol migrate`` reports."""
    found = []
    for line in (done.stdout + done.stderr).splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "db.migrate_done":
                found.append(event["applied"])
    return found


@pytest.fixture
def esl_port() -> Iterator[int]:
    """A FreeSWITCH inbound Event Socket (test_doctor's: greeting, auth, api status, version,
    module_exists, local_stream show of a stock FusionPBX's streams)."""
    server = _ThreadedEsl(("127.0.0.1", 0), _EslHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_the_installed_wheel_writes_the_fs_files_migrates_and_passes_doctor(
    venv: Path, database_url: str, esl_port: int, tmp_path: Path
) -> None:
    # The installed copy runs, not this checkout.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import callcontrol; print(callcontrol.__file__)"],
        capture_output=True, text=True, env=_admin_env(), cwd=tmp_path, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(venv) and "site-packages" in where

    with isolated_database_url(database_url, fusionpbx=STOCK, migrated=False) as url:
        listen = f"127.0.0.1:{_free_port()}"
        env = _admin_env(
            DATABASE_URL=url,
            CALLCONTROL_ESL_LISTEN=listen,
            ESL_PORT=str(esl_port),
            ESL_PASSWORD=PASSWORD,
            # above the kernel's ephemeral range: a free port found now stays free
            CALLCONTROL_UNICAST_PORTS="127.0.0.1:61000-61999",
            OPENAI_API_KEY="sk-not-used",
            TRANSFER_MUSIC_ON_HOLD="local_stream://default",  # as install.md's env file says
        )

        # callcontrol fs-conf --out DIR: every file, the settings written in.
        out = tmp_path / "fs"
        done = _callcontrol(venv, "fs-conf", "--out", str(out), env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        templates = {
            f"{name}/{p.relative_to(ROOT / name).as_posix()}"
            for name in ("dialplan", "fs-conf")
            for p in (ROOT / name).rglob("*")
            if p.is_file()
        }
        assert done.stdout.splitlines() == [f"wrote {out / path}" for path in sorted(templates)]
        dialplan = (out / "dialplan/default/90_callcontrol_ai_secretary.xml").read_text()
        assert f'<action application="socket" data="{listen} async full"/>' in dialplan
        event_socket = (out / "fs-conf/autoload_configs/event_socket.conf.xml").read_text()
        assert f'<param name="listen-port" value="{esl_port}"/>' in event_socket
        assert f'<param name="password" value="{PASSWORD}"/>' in event_socket
        assert not any("{{" in (out / path).read_text() for path in templates)

        # callcontrol migrate: the packaged sql/ applied to the fresh schema, then nothing.
        done = _callcontrol(venv, "migrate", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        versions = [m.version for m in load_migrations()]
        assert _applied(done) == [versions]
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT version FROM callcontrol_schema_migrations ORDER BY 1")
            assert [v for (v,) in rows] == versions
        done = _callcontrol(venv, "migrate", env=env, cwd=tmp_path)
        assert done.returncode == 0
        assert _applied(done) == [[]]

        # The admin's PBX: a domain with a ring group, and the Dialplan Manager entry of
        # fs-conf's dialplan/fusionpbx file with the socket line as written there.
        manager = (out / "dialplan/fusionpbx/ai_secretary.dialplan-manager.xml").read_text()
        socket_data = re.search(r'application="socket" data="([^"]+)"', manager)
        assert socket_data is not None and socket_data[1] == f"{listen} async full"
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled)"
                " VALUES (gen_random_uuid(), 'empresa.com.br', true)")  # fmt: skip
            conn.execute(
                "INSERT INTO v_ring_groups (ring_group_uuid, domain_uuid, ring_group_name,"
                " ring_group_extension, ring_group_enabled) SELECT gen_random_uuid(),"
                " domain_uuid, 'Recepção', '9000', 'true' FROM v_domains")  # fmt: skip
            conn.execute(
                "INSERT INTO v_dialplans (dialplan_uuid, domain_uuid, dialplan_context,"
                " dialplan_name, dialplan_number, dialplan_enabled, dialplan_xml)"
                " SELECT gen_random_uuid(), domain_uuid, domain_name,"
                " 'callcontrol_ai_secretary', '8000', 'true', %s FROM v_domains",
                (manager,),
            )

        # callcontrol destinations import --domain X --yes: the ring group, the default.
        done = _callcontrol(venv, "destinations", "import", "--domain", "empresa.com.br",
                            "--yes", env=env, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "added 1 destination(s) to empresa.com.br" in done.stdout

        # callcontrol doctor: every check passes against this database and Event Socket.
        done = _callcontrol(venv, "doctor", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert lines[-1] == "all checks passed", done.stdout
        assert ("OK    domain empresa.com.br: 1 enabled destination(s), default Recepção "
                "(ring_group 9000)") in lines  # fmt: skip
        assert any(line.startswith("OK    dialplan: dialplan 'callcontrol_ai_secretary'")
                   for line in lines)  # fmt: skip
        assert f"OK    migrations: all {len(versions)} applied" in lines
        assert any(line.startswith("OK    freeswitch event socket:") for line in lines)
        assert ("OK    hold music: local_stream://default plays default/8000 at 8 kHz, "
                "default/16000 at 16 kHz, default/48000 at 48 kHz") in lines  # fmt: skip
        assert PASSWORD not in done.stdout
