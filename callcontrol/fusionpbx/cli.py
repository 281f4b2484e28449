"""The ``callcontrol fusionpbx`` arguments (only argparse here: ``callcontrol --help`` stays
fast); :func:`callcontrol.fusionpbx.dialplan.run_fusionpbx` runs them."""

from __future__ import annotations

from typing import Any

COMMAND = "callcontrol.fusionpbx.dialplan:run_fusionpbx"


def add_fusionpbx_parser(sub: Any) -> None:
    """``fusionpbx install-dialplan | uninstall-dialplan``."""
    pbx = sub.add_parser("fusionpbx", help="add or remove callcontrol's entry in FusionPBX's "
                         "dialplan (Dialplan Manager)")  # fmt: skip
    pbx_sub = pbx.add_subparsers(dest="fusionpbx_command", required=True)

    install = pbx_sub.add_parser(
        "install-dialplan",
        help="add the entry that hands calls to NUMBER to callcontrol (idempotent)",
    )
    install.add_argument("--domain", required=True, help="the FusionPBX domain name")
    install.add_argument("--number", default="8000",
                         help="the number that reaches the secretary (default 8000)")  # fmt: skip
    install.add_argument("--fallback", metavar="NUMBER",
                         help="where calls go when callcontrol is not there (default: the "
                         "domain's first ring group, else its first extension)")  # fmt: skip
    install.add_argument("--secretary", metavar="UUID",
                         help="which secretary answers (voice_secretary_uuid; default: the "
                         "domain's own)")  # fmt: skip
    install.add_argument("--dry-run", action="store_true",
                         help="print what would be written, write nothing")  # fmt: skip

    uninstall = pbx_sub.add_parser("uninstall-dialplan",
                                   help="remove exactly what install-dialplan added")  # fmt: skip
    uninstall.add_argument("--domain", required=True, help="the FusionPBX domain name")
    uninstall.add_argument("--dry-run", action="store_true",
                           help="print what would be removed, remove nothing")  # fmt: skip
