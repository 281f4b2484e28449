"""Structured logging: JSON lines in production, colour on a terminal.

Bind context once (``log.bind(call_uuid=...)``) and log decisions as events with fields
(``log.info("handoff.result", status="busy", cause="USER_BUSY")``), never as formatted sentences.
Secrets never reach the log: a processor masks any field whose name says it is one.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_WORDS = ("password", "token", "secret", "api_key", "authorization")
_SECRET_NAME = re.compile("|".join(_SECRET_WORDS), re.IGNORECASE)


# Field names are the code's own (a few dozen), and each log call passes one of a few hundred
# sets of them: the secret ones of each set are found once (every log line of every call asked
# each name again, about 1000 Python calls per call for nine lines).
@functools.lru_cache(maxsize=4096)
def _secret_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(key for key in keys if _SECRET_NAME.search(key) is not None)


def _mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in _secret_keys(tuple(event_dict)):
        event_dict[key] = "<hidden>"
    return event_dict


@functools.lru_cache(maxsize=8)
def _encoder(default: Any) -> json.JSONEncoder:
    return json.JSONEncoder(default=default)


def _dumps(obj: Any, *, default: Any = None) -> str:
    """``json.dumps(obj, default=default)``, with the encoder made once instead of per line
    (the same text: json.dumps builds this very encoder when given ``default``)."""
    return _encoder(default).encode(obj)


def configure_logging(fmt: str = "auto", level: int = logging.INFO) -> None:
    """Set up structlog; ``fmt`` is ``json``, ``console`` or ``auto`` (console on a TTY)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        # colours only for a terminal: CALLCONTROL_LOG_FORMAT=console into a file stays text
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger named ``name`` carrying ``context``.

    It stays lazy (configuration is read when it logs), so a module-level logger follows a
    later ``configure_logging`` or a test's ``structlog.testing.capture_logs``.
    """
    return structlog.get_logger(name, **context)
