"""tox.ini runs what ./dev runs: its ``test`` environment is the README's test command (``./dev
test``, what CI runs), ``lint`` and ``type`` are ``./dev check``'s ruff and mypy. tox itself is
not needed here: the files are compared as text."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tox(env: str) -> list[str]:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini")
    command = config[f"testenv:{env}"]["commands"]
    # tox's {posargs:DEFAULT} (the arguments given, else DEFAULT) as one word
    command = re.sub(r"\{posargs:([^}]*)\}", lambda m: shlex.quote(m[0]), command)
    return shlex.split(command)


def _dev_arm(name: str) -> list[list[str]]:
    """The commands of one ``case`` arm of the dev script, as tox would spell them: ``"$@"``
    is ``{posargs}``, or ``{posargs:DEFAULT}`` after ``[ $# -gt 0 ] || set -- DEFAULT``."""
    text = (ROOT / "dev").read_text()
    match = re.search(rf"^\s*{name}\)(.*?);;", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"no {name}) in dev"
    body = match[1].replace("\\\n", " ")
    commands = []
    posargs = "{posargs}"
    for part in re.split(r"&&|\n", body):
        if part.strip().startswith("#"):
            continue
        words = shlex.split(part)
        if not words:
            continue
        if words[:8] == ["[", "$#", "-gt", "0", "]", "||", "set", "--"]:
            posargs = "{posargs:" + " ".join(words[8:]) + "}"
            continue
        if words[0] == "exec":
            words = words[1:]
        words = [w.removeprefix("$venv/bin/") for w in words]
        commands.append([posargs if w == "$@" else w for w in words])
    return commands


def test_the_test_environment_runs_the_readme_test_command() -> None:
    assert "./dev test" in (ROOT / "README.md").read_text()
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "./dev test"
    assert _dev_arm("test") == [_tox("test")]
    assert _tox("test")[:3] == ["python", "-m", "pytest"]
    # the whole suite in parallel; one file or -k alone in one process
    assert _tox("test")[-1] == "{posargs:-n 3}"


def test_lint_and_type_are_dev_check() -> None:
    ruff, mypy = _dev_arm("check")
    assert _tox("lint") == ruff == ["ruff", "check", "callcontrol", "tests", "bench"]
    assert mypy == ["mypy"]
    assert _tox("type") == ["mypy", "--strict"]  # setup.cfg's [mypy] is strict = True too
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["mypy"].getboolean("strict")


def test_every_environment_installs_the_test_extra() -> None:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini")
    assert config["tox"]["envlist"].replace(" ", "").split(",") == ["test", "lint", "type"]
    assert config["testenv"]["extras"].strip() == "test"
