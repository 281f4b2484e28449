"""``callcontrol fs-conf [--out DIR]``: the FreeSWITCH files an admin installs, ready to use.

The files live in the repository's top-level ``dialplan/`` and ``fs-conf/`` directories, laid
out like FreeSWITCH's own configuration tree (``dialplan/default/*.xml``,
``fs-conf/autoload_configs/*.conf.xml``) plus the systemd unit. ``callcontrol/dialplan`` and
``callcontrol/fs-conf`` are links to them, so the wheel carries them as package data and this
module reads them through :mod:`importlib.resources` the same way from a wheel, a source
checkout or an editable install.

What changes on the way out is only what the configuration decides: the address of the
``socket`` application (``CALLCONTROL_ESL_LISTEN``) and the inbound Event Socket's listen
address (``ESL_HOST``/``ESL_PORT``). Secrets are never written: the Event Socket password stays
the placeholder, with its comment telling the admin to change it.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import attrs

from callcontrol.config import Settings, load_settings

TOP_DIRS = ("dialplan", "fs-conf")

# The values written in the shipped files, replaced by the configured ones.
DEFAULT_SOCKET_ADDRESS = "127.0.0.1:8022"
_LISTEN_IP = '<param name="listen-ip" value="127.0.0.1"/>'
_LISTEN_PORT = '<param name="listen-port" value="8021"/>'
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class FsConfError(Exception):
    """The shipped files cannot be found, or writing them would overwrite files."""


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


def render(
    settings: Settings, files: list[ConfFile] | None = None
) -> tuple[list[ConfFile], list[str]]:
    """The files with the configured addresses written in, and notes for the admin."""
    files = shipped_files() if files is None else files
    address, notes = socket_address(settings)
    esl_ip = settings.esl_host
    try:
        ipaddress.ip_address(esl_ip)
    except ValueError:
        notes.append(
            f"ESL_HOST={esl_ip} is a name, not an address: event_socket.conf.xml keeps "
            "listen-ip 127.0.0.1; set it to the address that name resolves to"
        )
        esl_ip = "127.0.0.1"
    out: list[ConfFile] = []
    for f in files:
        text = f.text.replace(DEFAULT_SOCKET_ADDRESS, address)
        if f.path.endswith("event_socket.conf.xml"):
            text = text.replace(_LISTEN_IP, f'<param name="listen-ip" value="{esl_ip}"/>')
            text = text.replace(
                _LISTEN_PORT, f'<param name="listen-port" value="{settings.esl_port}"/>'
            )
        out.append(ConfFile(f.path, text))
    return out, notes


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
    try:
        files, notes = render(settings)
        out = getattr(args, "out", None)
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
    for note in notes:
        print(f"callcontrol fs-conf: note: {note}", file=sys.stderr)
    return 0
