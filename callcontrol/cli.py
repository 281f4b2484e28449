"""The ``callcontrol`` command: serve | demo | migrate | destinations | replay | trace stats |
doctor | fs-conf | fusionpbx.

Each subcommand lives in the module that owns the concept; this file only parses arguments
and imports that module when the subcommand runs, so ``callcontrol --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import Any

from callcontrol.config import ConfigError
from callcontrol.fusionpbx.cli import COMMAND as FUSIONPBX_COMMAND
from callcontrol.fusionpbx.cli import add_fusionpbx_parser

# subcommand -> "module:function"; each function takes the parsed namespace, returns an exit code
_COMMANDS = {
    "serve": "callcontrol.server:run_serve",
    "demo": "callcontrol.demo:run_demo",
    "migrate": "callcontrol.db.migrations:run_migrate",
    "destinations": "callcontrol.destinations.admin:run_destinations",
    "replay": "callcontrol.trace.replay:run_replay",
    "trace-stats": "callcontrol.trace.stats:run_stats",
    "doctor": "callcontrol.doctor:run_doctor",
    "callback": "callcontrol.callbacks.settings_admin:run_callback",
    "callback-call": "callcontrol.callbacks.call_admin:run_call",
    "fs-conf": "callcontrol.fsconf:run_fs_conf",
    "fusionpbx": FUSIONPBX_COMMAND,
}


def _version() -> str:
    try:
        return importlib.metadata.version("callcontrol")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree, not installed
        from callcontrol import __version__  # noqa: PLC0415

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callcontrol",
        description="The AI voice secretary's call-control server for FreeSWITCH / FusionPBX. "
        "Start with `callcontrol doctor`; docs/install.md walks through a first install.",
    )
    parser.add_argument("--version", action="version", version=f"callcontrol {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the call-control server")
    serve.add_argument("--record", metavar="DIR", help="write one ESL trace per call into DIR")
    serve.add_argument("--listen", metavar="HOST:PORT", help="override CALLCONTROL_ESL_LISTEN")
    serve.add_argument("--debug", action="store_true",
                       help="when the start fails, show the Python traceback too")
    serve.add_argument("--workers", metavar="N",
                       help="worker processes sharing the ports: a number, or auto (one per "
                            "core); overrides CALLCONTROL_WORKERS (default 1)")  # fmt: skip
    # set by the supervisor for the processes it starts: not for people
    serve.add_argument("--worker", help=argparse.SUPPRESS)
    serve.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)

    demo = sub.add_parser("demo", help="a whole call against the simulated FreeSWITCH")
    demo.add_argument("--scenario", default="all",
                      help="callback, busy, answered, ai-down, or several separated by commas "
                           "(default: all)")
    demo.add_argument("--once", action="store_true",
                      help="end after the scenarios (by default serve stays up with the "
                           "agents' console on what they stored, until Ctrl-C)")  # fmt: skip
    demo.add_argument("--verbose", action="store_true",
                      help="also print every Event Socket command and event (ESL ← / ESL →) "
                           "and the server's logs")  # fmt: skip

    sub.add_parser("migrate", help="apply the SQL migrations in sql/ (idempotent)")
    _destination_arguments(sub)

    replay = sub.add_parser("replay", help="play a recorded trace's FreeSWITCH side against us")
    replay.add_argument("trace", help="a .jsonl trace written by serve --record")
    replay.add_argument("--database", metavar="URL",
                        help="where a recorded call's flow reads its rows (default: "
                             "DATABASE_URL); everything it writes is rolled back")  # fmt: skip

    trace = sub.add_parser("trace", help="inspect recorded traces")
    trace_sub = trace.add_subparsers(dest="trace_command", required=True)
    stats = trace_sub.add_parser("stats", help="one JSON object of frame counts for a trace")
    stats.add_argument("trace")

    sub.add_parser("doctor", help="check configuration, database and FreeSWITCH reachability")
    callback = sub.add_parser("callback", help="callbacks: call one back, a domain's settings")
    callback_sub = callback.add_subparsers(dest="callback_command", required=True)
    cb_settings = callback_sub.add_parser(
        "settings", help="show a domain's callback settings, or set them with --set"
    )
    cb_settings.add_argument("--domain", required=True, help="the FusionPBX domain name")
    cb_settings.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="CALLBACK_EXPIRATION_HOURS, CALLBACK_MAX_NOTIFICATIONS or "
                             "CALLBACK_MIN_INTERVAL_MINUTES; VALUE 'default' goes back to the "
                             "environment's (repeat for several)")  # fmt: skip
    cb_call = callback_sub.add_parser(
        "call", help="call a callback ticket back now: the agent's phone, then the customer, "
        "bridged (CALLBACK_CALL_ORDER, CALLBACK_GATEWAY...)")  # fmt: skip
    cb_call.add_argument("ticket", help="the ticket's id (callcontrol_callback_requests."
                         "request_uuid)")  # fmt: skip
    cb_call.add_argument("--once", action="store_true",
                         help="one attempt only: a retry is left to serve's scanner")  # fmt: skip

    fs_conf = sub.add_parser("fs-conf", help="print the FreeSWITCH config/dialplan snippets")
    fs_conf.add_argument("--out", metavar="DIR", help="write the files into DIR instead")
    fs_conf.add_argument("--force", action="store_true", help="overwrite files in --out DIR")
    add_fusionpbx_parser(sub)
    return parser


def _destination_arguments(sub: Any) -> None:
    """``destinations list | add | import`` (callcontrol/destinations/admin.py runs them). The
    choices spell DestinationType (the domain's own numbers only: an external one needs a
    gateway or the outbound routes, set in SQL) and FallbackAction, without importing them."""
    dest = sub.add_parser("destinations", help="list, add or import the transfer destinations")
    dest_sub = dest.add_subparsers(dest="destinations_command", required=True)

    listing = dest_sub.add_parser("list", help="the domain's destinations, one per line")
    listing.add_argument("--domain", required=True, help="the FusionPBX domain name")

    add = dest_sub.add_parser("add", help="add one extension, ring group or queue of the domain")
    add.add_argument("--domain", required=True, help="the FusionPBX domain name")
    add.add_argument("--name", required=True, help='what callers ask for: "Suporte", "João"')
    add.add_argument("--type", required=True, choices=["extension", "ring_group", "queue"])
    add.add_argument("--number", required=True,
                     help="the extension, ring-group or queue number in FusionPBX")  # fmt: skip
    add.add_argument("--default", action="store_true",
                     help="make it the domain's default (where 'anyone' goes)")  # fmt: skip
    add.add_argument("--department", help='matched like the name ("financeiro")')
    add.add_argument("--alias", action="append", default=[], metavar="WORD",
                     help="another word callers use for it (repeat for several)")  # fmt: skip
    add.add_argument("--description", help="free text for the admin and the AI's prompt")
    add.add_argument("--ring-timeout", type=int, default=30, metavar="SECONDS",
                     help="how long to ring, 1-600 (default 30)")  # fmt: skip
    add.add_argument("--fallback", default="offer_callback",
                     choices=["offer_callback", "voicemail", "transfer_default", "hangup"],
                     help="what happens when nobody answers (default offer_callback)")  # fmt: skip

    imp = dest_sub.add_parser("import", help="propose the domain's ring groups, queues and "
                              "extensions as destinations; write them with --yes")  # fmt: skip
    imp.add_argument("--domain", required=True, help="the FusionPBX domain name")
    imp.add_argument("--yes", action="store_true", help="write them without asking")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = {"trace": "trace-stats"}.get(args.command, args.command)
    if name == "callback" and args.callback_command == "call":
        name = "callback-call"
    module_name, _, func_name = _COMMANDS[name].partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(args))
    except ConfigError as exc:
        print(_configuration_message(f"callcontrol {args.command}", exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _configuration_message(prog: str, exc: ConfigError) -> str:
    if len(exc.problems) == 1:
        lines = [f"{prog}: invalid configuration: {exc.problems[0]}"]
    else:
        lines = [f"{prog}: invalid configuration:", *(f"  - {p}" for p in exc.problems)]
    them = "it" if len(exc.problems) == 1 else "them"
    lines.append(
        f"  fix: correct {them} in the environment (the service's environment file) or the "
        "CALLCONTROL_CONFIG file; docs/configuration.md lists every setting"
    )
    return "\n".join(lines)
