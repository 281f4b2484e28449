"""``callcontrol fs-conf [--out DIR]``: the FreeSWITCH files an admin installs, ready to use.

The files live in the repository's top-level ``dialplan/`` and ``fs-conf/`` directories, laid
out like FreeSWITCH's own configuration tree (``dialplan/default/*.xml``,
``fs-conf/autoload_configs/*.conf.xml``) plus the systemd unit. ``callcontrol/dialplan`` and
``callcontrol/fs-conf`` are links to them, so the wheel carries them as package data and this
module reads them through :mod:`importlib.resources` the same way from a wheel, a source
checkout or an editable install.

The files are templates: where a value depends on the configuration, they name the setting in
double braces (``{{CALLCONTROL_ESL_LISTEN}}``, ``{{ESL_HOST}}``, ``{{ESL_PORT}}``,
``{{ESL_PASSWORD}}``) and :func:`render` writes in the value of the validated settings (escaped
for XML in ``.xml`` files); a name it does not know is an error, never left in a file.
``--out DIR`` writes the Event Socket password into ``event_socket.conf.xml``; printing to the
terminal shows ``********`` in its place, so it never lands in a scrollback or a log.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Mapping
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from xml.sax.saxutils import escape

import attrs

from callcontrol.config import Settings, load_settings

_DEFAULT_PASSWORD = Settings().esl_password  # FreeSWITCH's own, well known

TOP_DIRS = ("dialplan", "fs-conf")

PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")
HIDDEN = "********"  # the password, when the files are printed
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class FsConfError(Exception):
    """The shipped files cannot be found, a template names a setting it should not, or
    writing them would overwrite files."""


@attrs.frozen
class ConfFile:
    path: str  # relative, POSIX style: "dialplan/default/90_callcontrol_ai_secretary.xml"
    text: str


def source_root() -> Traversable:
    """The installed package, which holds ``dialplan/`` and ``fs-conf/`` as package data."""
    root = resources.files("callcontrol")
    missing = [name for name in TOP_DIRS if not (root / name).is_dir()]
    if missing:
        raise FsConfError(
            f"this copy of callcontrol ({root}) was installed without its "
            + " and ".join(f"{name}/" for name in missing)
            + " files; reinstall it from the wheel or the repository (pip install callcontrol)"
        )
    return root


def shipped_files(root: Traversable | None = None) -> list[ConfFile]:
    """Every shipped file, unmodified, sorted by path."""
    root = root or source_root()
    found: list[ConfFile] = []

    def walk(directory: Traversable, prefix: str) -> None:
        for entry in directory.iterdir():
            if entry.name.startswith(".") or entry.name.endswith("~"):
                continue
            path = f"{prefix}/{entry.name}"
            if entry.is_dir():
                walk(entry, path)
            else:
                found.append(ConfFile(path, entry.read_text(encoding="utf-8")))

    for name in TOP_DIRS:
        walk(root / name, name)
    return sorted(found, key=lambda f: f.path)


def socket_address(settings: Settings) -> tuple[str, list[str]]:
    """The ``host:port`` FreeSWITCH's ``socket`` application should dial, and notes."""
    listen = settings.esl_listen
    if listen.host in _WILDCARDS:
        return f"127.0.0.1:{listen.port}", [
            f"CALLCONTROL_ESL_LISTEN={listen} listens on every address; the dialplan dials "
            f"127.0.0.1:{listen.port} (change it if FreeSWITCH runs on another machine)"
        ]
    return f"{listen.host}:{listen.port}", []


def values(settings: Settings, *, hide_secrets: bool = False) -> tuple[dict[str, str], list[str]]:
    """What each placeholder stands for, from ``settings``, and notes for the admin."""
    address, notes = socket_address(settings)
    box, *others = settings.esl_boxes
    if others:
        notes.append(
            f"ESL_HOST lists {len(others) + 1} FreeSWITCH boxes: these files are for the first, "
            f"{box.name}; for each other box run fs-conf again with ESL_HOST set to that box "
            "alone, and copy what it writes to that box"
        )
    esl_ip = box.host
    try:
        loopback = ipaddress.ip_address(esl_ip).is_loopback
    except ValueError:
        notes.append(
            f"ESL_HOST={esl_ip} is a name, not an address: event_socket.conf.xml gets "
            "listen-ip 127.0.0.1; set it to the address that name resolves to"
        )
        esl_ip, loopback = "127.0.0.1", True
    if not loopback:
        notes.append(
            f"event_socket.conf.xml listens on {esl_ip} but admits this machine only "
            "(apply-inbound-acl loopback.auto): add callcontrol's address to an ACL in "
            "acl.conf.xml and name that ACL there"
        )
    if settings.esl_password == _DEFAULT_PASSWORD:
        notes.append(
            f"ESL_PASSWORD is FreeSWITCH's well-known default ({_DEFAULT_PASSWORD}), and so is "
            "the password in event_socket.conf.xml: set ESL_PASSWORD to one of your own and "
            "run fs-conf again"
        )
    return {
        "CALLCONTROL_ESL_LISTEN": address,
        "ESL_HOST": esl_ip,
        "ESL_PORT": str(box.port),
        "ESL_PASSWORD": HIDDEN if hide_secrets else settings.esl_password,
    }, notes


def fill(template: ConfFile, known: Mapping[str, str]) -> ConfFile:
    """``template`` with each ``{{NAME}}`` replaced by ``known[NAME]`` (XML-escaped in .xml)."""
    is_xml = template.path.endswith(".xml")

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name not in known:
            raise FsConfError(
                f"{template.path}: unknown placeholder {match[0]} "
                f"(known: {', '.join(sorted(known))})"
            )
        value = known[name]
        return escape(value, {'"': "&quot;"}) if is_xml else value

    return ConfFile(template.path, PLACEHOLDER.sub(one, template.text))


def render(
    settings: Settings, files: list[ConfFile] | None = None, *, hide_secrets: bool = False
) -> tuple[list[ConfFile], list[str]]:
    """The files with the configured values written in, and notes for the admin."""
    files = shipped_files() if files is None else files
    known, notes = values(settings, hide_secrets=hide_secrets)
    return [fill(f, known) for f in files], notes


def write_files(files: list[ConfFile], out_dir: Path, *, force: bool = False) -> list[Path]:
    """Write ``files`` under ``out_dir``; nothing is written if one exists and not ``force``."""
    targets = [(out_dir / f.path, f) for f in files]
    existing = [path for path, _ in targets if path.exists()]
    if existing and not force:
        raise FsConfError(
            "refusing to overwrite existing files (use --force): "
            + ", ".join(str(p) for p in existing)
        )
    written: list[Path] = []
    for path, f in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.text, encoding="utf-8")
        written.append(path)
    return written


def run_fs_conf(args: argparse.Namespace) -> int:
    """Print the files (``==> path <==`` before each), or write them with ``--out DIR``."""
    settings = load_settings()
    out = getattr(args, "out", None)
    try:
        files, notes = render(settings, hide_secrets=not out)
        if out:
            for path in write_files(files, Path(out), force=bool(getattr(args, "force", False))):
                print(f"wrote {path}")
        else:
            for i, f in enumerate(files):
                if i:
                    print()
                print(f"==> {f.path} <==")
                print(f.text, end="" if f.text.endswith("\n") else "\n")
    except FsConfError as exc:
        print(f"callcontrol fs-conf: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"callcontrol fs-conf: cannot write: {exc}", file=sys.stderr)
        return 1
    if not out:
        notes.append(
            f"the Event Socket password is printed as {HIDDEN}; "
            "`callcontrol fs-conf --out DIR` writes ESL_PASSWORD into event_socket.conf.xml"
        )
    for note in notes:
        print(f"callcontrol fs-conf: note: {note}", file=sys.stderr)
    return 0
