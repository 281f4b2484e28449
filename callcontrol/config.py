"""Configuration: one place, validated at start.

Every setting comes from an environment variable (the names in DESIGN.md and the README) or,
when ``CALLCONTROL_CONFIG`` names a TOML file, from that file's key of the same name in lower
case (``[esl] port`` / ``esl.port`` is ``esl_port``; a leading ``callcontrol_`` may be left out);
the environment wins over the file. ``load_settings`` checks everything at once and raises
``ConfigError`` listing one clear message per mistake, each under the name the admin wrote (the
variable or the TOML key), so an admin fixes them in one go. ``unknown_variables`` finds the
misspelt variables, which would otherwise be silently ignored.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

T = TypeVar("T")
DEFAULT_ESL_PORT = 8021  # FreeSWITCH's mod_event_socket


class ConfigError(Exception):
    """The configuration has mistakes; ``problems`` holds one message per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


@attrs.frozen
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@attrs.frozen
class EslBox:
    """One FreeSWITCH's inbound Event Socket: an entry of ``ESL_HOST``."""

    host: str
    port: int

    @property
    def name(self) -> str:
        """How logs, ``doctor`` and the metrics name the box: ``host:port`` as written."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class PortRange:
    host: str
    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.host}:{self.first}-{self.last}"


@attrs.frozen
class Settings:
    database_url: str | None = None
    esl_listen: HostPort = HostPort("127.0.0.1", 8022)
    media_transport: str = "unicast"
    media_listen: HostPort = HostPort("127.0.0.1", 8085)
    unicast_ports: PortRange = PortRange("127.0.0.1", 40000, 40999)
    media_engine: str = "batched"
    http_listen: HostPort = HostPort("127.0.0.1", 8086)
    esl_host: str = "127.0.0.1"
    esl_port: int = DEFAULT_ESL_PORT
    esl_password: str = attrs.field(default="ClueCon", repr=False)
    service_token: str | None = attrs.field(default=None, repr=False)
    # people's sign-in (api/sessions.py): None derives the secret from service_token
    session_secret: str | None = attrs.field(default=None, repr=False)
    session_hours: int = 12
    session_cookie_secure: bool = False  # Secure even when the request came over http
    transfer_default_timeout: int = 30
    transfer_announce_enabled: bool = True
    transfer_music_on_hold: str = "local_stream://moh"
    omniplay_api_url: str | None = None
    omniplay_webhook_secret: str | None = attrs.field(default=None, repr=False)
    callback_enabled: bool = True
    callback_expiration_hours: int = 24
    callback_max_notifications: int = 5
    callback_min_interval_minutes: int = 10
    callback_check_interval_ms: int = 30000
    # click-to-call (callbacks/clicktocall.py)
    callback_call_order: str = "agent-first"
    callback_ring_timeout_seconds: int = 30
    callback_retry_delay_seconds: int = 60
    callback_retry_attempts: int = 2
    callback_gateway: str | None = None
    # what the customer's phone shows when called back (unset: the agent's outbound caller ID)
    callback_caller_id_number: str | None = None
    callback_caller_id_name: str | None = None
    # FreeSWITCH's recordings_dir: the call recordings the console may play from this host
    recordings_dir: Path | None = Path("/var/lib/freeswitch/recordings")
    realtime_url: str = "wss://api.openai.com/v1/realtime"
    realtime_model: str = "gpt-realtime"
    realtime_voice: str = "marin"
    # gpt-4o-mini-transcribe is deprecated (shutdown announced for 2027-02-26)
    realtime_transcription_model: str = "gpt-transcribe"
    realtime_provider: str = "openai-realtime"
    openai_api_key: str | None = attrs.field(default=None, repr=False)
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_token: str | None = attrs.field(default=None, repr=False)
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: str | None = attrs.field(default=None, repr=False)
    whatsapp_verify_token: str | None = attrs.field(default=None, repr=False)
    whatsapp_template_name: str = "callback_request"
    whatsapp_template_language: str = "pt_BR"
    language: str = "pt-BR"
    timezone: str = "America/Sao_Paulo"
    instance_id: str = "callcontrol"
    workers: int = 1  # serve's worker processes; "auto" is one per core
    log_format: str = "auto"
    model_silence_seconds: float = 2.0
    caller_silence_seconds: float = 20.0
    max_call_seconds: float = 1200.0
    after_agent_hangup: str = "goodbye"
    goodbye_prompt: str = "tone_stream://%(400,100,480,620)"
    fallback_prompt: str = "tone_stream://%(300,200,440);loops=2"
    whisper_tts: str | None = None
    callback_dtmf_prompt: str | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def esl_boxes(self) -> tuple[EslBox, ...]:
        """Every FreeSWITCH of ``ESL_HOST``, in its order (one ``ESL_PASSWORD`` for all)."""
        return parse_esl_hosts(self.esl_host, self.esl_port)


def _host_port(text: str) -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    return HostPort(host.strip("[]"), _port(port))


def parse_host_port(text: str) -> HostPort:
    """``HOST:PORT`` as the variables take it (for command-line options); ``ValueError``."""
    return _host_port(text)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"port must be a whole number, got {text!r}") from None
    if not 0 < value < 65536:
        raise ValueError("port must be between 1 and 65535")
    return value


# A host name or an IPv4 address in ESL_HOST, as lenient as a resolver (IPv6: ipaddress).
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,253}")


def parse_esl_hosts(text: str, default_port: int) -> tuple[EslBox, ...]:
    """``ESL_HOST``: one FreeSWITCH or several, comma-separated, each ``HOST``, ``HOST:PORT``,
    ``IPV6`` or ``[IPV6]:PORT`` (no port: ``default_port``, ESL_PORT's); ``ValueError`` with
    what is wrong with which entry."""
    entries = text.split(",")
    boxes: list[EslBox] = []
    for number, raw in enumerate(entries, start=1):
        entry = raw.strip()
        many = len(entries) > 1
        if not entry:
            raise ValueError(f"entry {number} of {len(entries)} is empty (a comma too many?)"
                             if many else "must not be empty")  # fmt: skip
        box = _esl_box(entry, default_port, f"entry {number} ({entry!r}): " if many else "")
        same = [b.name.lower() for b in boxes]
        if box.name.lower() in same:
            raise ValueError(f"{box.name} is listed twice (entries "
                             f"{same.index(box.name.lower()) + 1} and {number})")  # fmt: skip
        boxes.append(box)
    return tuple(boxes)


def _esl_box(entry: str, default_port: int, where: str) -> EslBox:
    if "://" in entry or "/" in entry:
        raise ValueError(f"{where}write HOST or HOST:PORT, without a scheme or a path")  # fmt: skip
    if entry.startswith("["):
        address, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{where}write an IPv6 address with a port as [ADDRESS]:PORT")
        return EslBox(_ipv6(address, entry, where), _entry_port(rest[1:], default_port,
                                                               entry, where))  # fmt: skip
    if entry.count(":") > 1:  # a bare IPv6 address: no port can follow it unambiguously
        return EslBox(_ipv6(entry, entry, where), default_port)
    host, colon, port = entry.partition(":")
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"{where}{host!r} is not a host name or an address")
    return EslBox(host, _entry_port(port, default_port, entry, where) if colon
                  else default_port)  # fmt: skip


def _entry_port(text: str, default_port: int, entry: str, where: str) -> int:
    if not text:
        if entry.endswith(":"):
            raise ValueError(f"{where}the port after ':' is missing")
        return default_port
    try:
        return _port(text)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def _ipv6(text: str, entry: str, where: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(f"{where}{entry!r} is not an IPv6 address (with a port: "
                         "[ADDRESS]:PORT)") from None


def _esl_hosts(text: str) -> str:
    # the entries' own syntax; the default port (ESL_PORT) is another variable, so the
    # duplicates it could make are checked once both are read (load_settings)
    parse_esl_hosts(text, DEFAULT_ESL_PORT)
    return text


def _port_range(text: str) -> PortRange:
    host, sep, ports = text.rpartition(":")
    first, dash, last = ports.partition("-")
    if not sep or not host or not dash:
        raise ValueError("expected HOST:FIRST-LAST, e.g. 127.0.0.1:40000-40999")
    rng = PortRange(host, _port(first), _port(last))
    if rng.last < rng.first + 1:
        raise ValueError("the range needs at least two ports (one RTP pair per call)")
    return rng


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _whole_number_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


# FreeSWITCH's gateway names as dial strings take them (handoff/dialstring.py checks it again)
_GATEWAY = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _gateway(text: str) -> str:
    if not _GATEWAY.fullmatch(text):
        raise ValueError("must be a FreeSWITCH gateway name: letters, digits, '_', '.', '-'")
    return text


_CALLER_ID_NUMBER = re.compile(r"\+?[0-9]{3,20}")


def _folder_or_none(text: str) -> Path | None:
    """An absolute folder, or ``none`` (recordings are not served from this host)."""
    if text.strip().lower() in ("", "none", "off"):
        return None
    if not text.startswith("/"):
        raise ValueError("must be an absolute folder such as /var/lib/freeswitch/recordings, "
                         "or none")
    return Path(text)


def _caller_id_number(text: str) -> str:
    if not _CALLER_ID_NUMBER.fullmatch(text):
        raise ValueError("must be a phone number: digits, optionally after a +, e.g. 551130001234")
    return text


def _caller_id_name(text: str) -> str:
    if not text.strip() or len(text) > 64:
        raise ValueError("must be a name of 1 to 64 characters, e.g. Clinica Exemplo")
    return text.strip()


def parse_workers(text: str) -> int:
    """``auto`` (one per core) or a positive whole number."""
    if text.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    value = _positive_int(text)
    if value > 64:
        raise ValueError("must be at most 64 (or auto: one per core)")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError("must be one of " + ", ".join(allowed))
        return text

    return parse


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone (use an IANA name such as America/Sao_Paulo)") from None
    return text


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.startswith(tuple(s + "://" for s in schemes)):
            raise ValueError("must start with " + " or ".join(s + "://" for s in schemes))
        return text

    return parse


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of seconds, e.g. 2 or 2.5") from None
    if not value > 0:
        raise ValueError("must be more than 0 seconds")
    return value


def _engine_voice(text: str) -> str:
    engine, bar, voice = text.partition("|")
    ok = all(part and all(c.isalnum() or c in "_-." for c in part) for part in (engine, voice))
    if not bar or not ok:
        raise ValueError("expected ENGINE|VOICE of a FreeSWITCH TTS module, e.g. flite|kal")
    return text


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _session_secret(text: str) -> str:
    if len(text) < 32:
        raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    return text


def _digits(text: str) -> str:
    if not (text.isascii() and text.isdigit() and len(text) <= 30):
        raise ValueError("must be the number's id from Meta's app dashboard (digits only)")
    return text


def _template_name(text: str) -> str:
    # Meta's rule for template names: lower-case letters, digits and underscores
    if not re.fullmatch(r"[a-z0-9_]{1,512}", text):
        raise ValueError("a WhatsApp template name has only a-z, 0-9 and _")
    return text


def _language_code(text: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", text):
        raise ValueError("expected a WhatsApp language code such as pt_BR, en_US or es")
    return text


# environment variable -> (Settings field, parser)
_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "DATABASE_URL": ("database_url", _url("postgresql", "postgres")),
    "CALLCONTROL_ESL_LISTEN": ("esl_listen", _host_port),
    "CALLCONTROL_MEDIA_TRANSPORT": ("media_transport", _choice("unicast", "audio_stream")),
    "CALLCONTROL_MEDIA_LISTEN": ("media_listen", _host_port),
    "CALLCONTROL_UNICAST_PORTS": ("unicast_ports", _port_range),
    "CALLCONTROL_MEDIA_ENGINE": ("media_engine", _choice("batched", "percall")),
    "CALLCONTROL_HTTP_LISTEN": ("http_listen", _host_port),
    "ESL_HOST": ("esl_host", _esl_hosts),
    "ESL_PORT": ("esl_port", _port),
    "ESL_PASSWORD": ("esl_password", _text),
    "VOICE_AI_SERVICE_TOKEN": ("service_token", _text),
    "CALLCONTROL_SESSION_SECRET": ("session_secret", _session_secret),
    "CALLCONTROL_SESSION_HOURS": ("session_hours", _whole_number_between(1, 24 * 30)),
    "CALLCONTROL_SESSION_COOKIE_SECURE": ("session_cookie_secure", _bool),
    "TRANSFER_DEFAULT_TIMEOUT": ("transfer_default_timeout", _positive_int),
    "TRANSFER_ANNOUNCE_ENABLED": ("transfer_announce_enabled", _bool),
    "TRANSFER_MUSIC_ON_HOLD": ("transfer_music_on_hold", _text),
    "OMNIPLAY_API_URL": ("omniplay_api_url", _url("http", "https")),
    "OMNIPLAY_WEBHOOK_SECRET": ("omniplay_webhook_secret", _text),
    "CALLBACK_ENABLED": ("callback_enabled", _bool),
    "CALLBACK_EXPIRATION_HOURS": ("callback_expiration_hours", _positive_int),
    "CALLBACK_MAX_NOTIFICATIONS": ("callback_max_notifications", _positive_int),
    "CALLBACK_MIN_INTERVAL_MINUTES": ("callback_min_interval_minutes", _positive_int),
    "CALLBACK_CHECK_INTERVAL_MS": ("callback_check_interval_ms", _positive_int),
    "CALLBACK_CALL_ORDER": ("callback_call_order", _choice("agent-first", "customer-first")),
    "CALLBACK_RING_TIMEOUT_SECONDS": ("callback_ring_timeout_seconds",
                                      _whole_number_between(5, 300)),
    "CALLBACK_RETRY_DELAY_SECONDS": ("callback_retry_delay_seconds",
                                     _whole_number_between(1, 86_400)),
    "CALLBACK_RETRY_ATTEMPTS": ("callback_retry_attempts", _whole_number_between(0, 20)),
    "CALLBACK_GATEWAY": ("callback_gateway", _gateway),
    "CALLBACK_CALLER_ID_NUMBER": ("callback_caller_id_number", _caller_id_number),
    "CALLBACK_CALLER_ID_NAME": ("callback_caller_id_name", _caller_id_name),
    "CALLCONTROL_RECORDINGS_DIR": ("recordings_dir", _folder_or_none),
    "REALTIME_URL": ("realtime_url", _url("ws", "wss")),
    "REALTIME_MODEL": ("realtime_model", _text),
    "REALTIME_VOICE": ("realtime_voice", _text),
    "REALTIME_TRANSCRIPTION_MODEL": ("realtime_transcription_model", _text),
    "REALTIME_PROVIDER": ("realtime_provider", _choice("openai-realtime", "openai-live")),
    "OPENAI_API_KEY": ("openai_api_key", _text),
    "WHATSAPP_API_URL": ("whatsapp_api_url", _url("http", "https")),
    "WHATSAPP_TOKEN": ("whatsapp_token", _text),
    "WHATSAPP_PHONE_NUMBER_ID": ("whatsapp_phone_number_id", _digits),
    "WHATSAPP_APP_SECRET": ("whatsapp_app_secret", _text),
    "WHATSAPP_VERIFY_TOKEN": ("whatsapp_verify_token", _text),
    "WHATSAPP_TEMPLATE_NAME": ("whatsapp_template_name", _template_name),
    "WHATSAPP_TEMPLATE_LANGUAGE": ("whatsapp_template_language", _language_code),
    "CALLCONTROL_LANGUAGE": ("language", _choice("pt-BR", "en")),
    "CALLCONTROL_TIMEZONE": ("timezone", _timezone),
    "CALLCONTROL_INSTANCE_ID": ("instance_id", _text),
    "CALLCONTROL_WORKERS": ("workers", parse_workers),
    "CALLCONTROL_LOG_FORMAT": ("log_format", _choice("auto", "json", "console")),
    "CALLCONTROL_MODEL_SILENCE_SECONDS": ("model_silence_seconds", _positive_seconds),
    "CALLCONTROL_CALLER_SILENCE_SECONDS": ("caller_silence_seconds", _positive_seconds),
    "CALLCONTROL_MAX_CALL_SECONDS": ("max_call_seconds", _positive_seconds),
    "TRANSFER_AFTER_AGENT_HANGUP": ("after_agent_hangup", _choice("goodbye", "ai")),
    "CALLCONTROL_GOODBYE_PROMPT": ("goodbye_prompt", _text),
    "CALLCONTROL_FALLBACK_PROMPT": ("fallback_prompt", _text),
    "TRANSFER_WHISPER_TTS": ("whisper_tts", _engine_voice),
    "CALLCONTROL_CALLBACK_DTMF_PROMPT": ("callback_dtmf_prompt", _text),
}

ENVIRONMENT_VARIABLES = tuple(_FIELDS)


# Variables that look like ours (these prefixes) but are not a setting are warned about.
_PREFIXES = (
    "CALLCONTROL_", "ESL_", "TRANSFER_", "CALLBACK_", "REALTIME_", "WHATSAPP_", "OMNIPLAY_",
    "VOICE_AI_",
)  # fmt: skip
# Read outside load_settings: the file's name, and the test suite's server.
_OTHER_VARIABLES = frozenset({"CALLCONTROL_CONFIG", "CALLCONTROL_TEST_DATABASE_URL"})
# Without our prefix (DATABASE_URL, OPENAI_API_KEY): only a near-exact spelling is suspicious,
# other programs' OPENAI_* and DATABASE_* variables are none of our business.
_NEAR_MISS = 0.9


def unknown_variables(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Environment variables that look like a misspelt setting (they are ignored), each with
    the setting it probably meant (``difflib``), if any."""
    known = [*_FIELDS, *_OTHER_VARIABLES]
    found: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if name in _FIELDS or name in _OTHER_VARIABLES:
            continue
        upper = name.upper()
        ours = upper.startswith(_PREFIXES)
        cutoff = 0.6 if ours else _NEAR_MISS
        # The shared prefix makes any two of our names look alike (CALLCONTROL_COLOUR and
        # CALLCONTROL_CONFIG): what follows it must be alike too.
        rest = _without_prefix(upper)
        match = [
            candidate
            for candidate in difflib.get_close_matches(upper, known, n=5, cutoff=cutoff)
            if difflib.SequenceMatcher(None, rest, _without_prefix(candidate)).ratio() >= cutoff
        ]
        if ours or match:
            found.append((name, match[0] if match else None))
    return found


def _without_prefix(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def describe_unknown(name: str, meant: str | None) -> str:
    text = f"{name} is not a callcontrol setting and is ignored"
    return text + (f"; did you mean {meant}?" if meant else "")


# TOML key as written -> variable: the lower-case name, or that name without "callcontrol_"
_TOML_KEYS = {
    **{name.lower().removeprefix("callcontrol_"): name for name in _FIELDS},
    **{name.lower(): name for name in _FIELDS},
}


def _toml_items(table: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """``[esl] port = 8021`` and ``esl.port = 8021`` are ``esl_port``: (dotted key, value)."""
    items: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            items += _toml_items(value, (*path, key))
        else:
            items.append((".".join((*path, key)), value))
    return items


def _read_toml(path: Path, problems: list[str]) -> dict[str, tuple[str, str]]:
    """variable -> (text, the key's name in the file, for messages)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"CALLCONTROL_CONFIG: cannot read {path}: {exc.strerror}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"CALLCONTROL_CONFIG: {path} is not valid TOML: {exc}")
        return {}
    values: dict[str, tuple[str, str]] = {}
    for dotted, value in _toml_items(raw):
        flat = dotted.replace(".", "_")
        name = _TOML_KEYS.get(flat)
        if name is None:
            problems.append(f"{path}: unknown key {dotted!r}{_toml_suggestion(dotted)}")
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if name == "ESL_HOST" and isinstance(value, list):  # host = ["fs1", "fs2:8021"]
            text = ",".join(str(item) for item in value)
        values[name] = (text, f"{path}: {dotted}")
    return values


def _toml_suggestion(dotted: str) -> str:
    match = difflib.get_close_matches(dotted.replace(".", "_").lower(), _TOML_KEYS, n=1)
    if not match:
        return ""
    table, dot, _ = dotted.partition(".")
    suggestion = match[0]
    if dot and suggestion.startswith(table.lower() + "_"):  # keep the table the file used
        suggestion = f"{table}.{suggestion[len(table) + 1 :]}"
    return f" (did you mean {suggestion!r}?)"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration; ``overrides`` (field names) win over everything.

    A mistake is reported under the name the admin wrote: the variable, or the TOML key."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, tuple[str, str]] = {}
    config_file = env.get("CALLCONTROL_CONFIG")
    if config_file:
        values.update(_read_toml(Path(config_file), problems))
    values.update({k: (v, k) for k, v in env.items() if k in _FIELDS and v != ""})
    kwargs: dict[str, Any] = {}
    for name, (text, label) in values.items():
        field, parse = _FIELDS[name]
        try:
            kwargs[field] = parse(text.strip())
        except ValueError as exc:
            shown = "<hidden>" if _is_secret(field) else repr(text)
            problems.append(f"{label}={shown}: {exc}")
    if "esl_host" in kwargs and "esl_port" in kwargs:
        try:  # "fs1,fs1:8021" is one box twice only once ESL_PORT says 8021
            parse_esl_hosts(kwargs["esl_host"], kwargs["esl_port"])
        except ValueError as exc:
            problems.append(f"{values['ESL_HOST'][1]}={values['ESL_HOST'][0]!r} with "
                            f"ESL_PORT={kwargs['esl_port']}: {exc}")  # fmt: skip
    if problems:
        raise ConfigError(problems)
    kwargs.update(overrides)
    return Settings(**kwargs)


def parse_field(field: str, text: str) -> Any:
    """A setting's value from its variable's spelling, by field name (a trace's header holds
    ``HostPort`` and ``PortRange`` fields that way); ``KeyError`` for an unknown field."""
    for known, parse in _FIELDS.values():
        if known == field:
            return parse(text)
    raise KeyError(field)


def _is_secret(field: str) -> bool:
    return any(word in field for word in ("password", "token", "key", "secret"))
