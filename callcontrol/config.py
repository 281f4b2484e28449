"""Configuration: one place, validated at start.

Every setting comes from an environment variable (the names in DESIGN.md and the README) or,
when ``CALLCONTROL_CONFIG`` names a TOML file, from that file's key of the same name in lower
case; the environment wins over the file. ``load_settings`` checks everything at once and raises
``ConfigError`` listing one clear message per mistake, so an admin fixes them in one go.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

T = TypeVar("T")


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
class PortRange:
    host: str
    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1


@attrs.frozen
class Settings:
    database_url: str | None = None
    esl_listen: HostPort = HostPort("127.0.0.1", 8022)
    media_transport: str = "unicast"
    media_listen: HostPort = HostPort("127.0.0.1", 8085)
    unicast_ports: PortRange = PortRange("127.0.0.1", 40000, 40999)
    http_listen: HostPort = HostPort("127.0.0.1", 8086)
    esl_host: str = "127.0.0.1"
    esl_port: int = 8021
    esl_password: str = attrs.field(default="ClueCon", repr=False)
    service_token: str | None = attrs.field(default=None, repr=False)
    transfer_default_timeout: int = 30
    transfer_announce_enabled: bool = True
    transfer_music_on_hold: str = "local_stream://moh"
    omniplay_api_url: str | None = None
    callback_enabled: bool = True
    callback_expiration_hours: int = 24
    callback_max_notifications: int = 5
    callback_min_interval_minutes: int = 10
    callback_check_interval_ms: int = 30000
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


def _host_port(text: str) -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    return HostPort(host.strip("[]"), _port(port))


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"port must be a whole number, got {text!r}") from None
    if not 0 < value < 65536:
        raise ValueError("port must be between 1 and 65535")
    return value


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


# environment variable -> (Settings field, parser)
_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "DATABASE_URL": ("database_url", _url("postgresql", "postgres")),
    "CALLCONTROL_ESL_LISTEN": ("esl_listen", _host_port),
    "CALLCONTROL_MEDIA_TRANSPORT": ("media_transport", _choice("unicast", "audio_stream")),
    "CALLCONTROL_MEDIA_LISTEN": ("media_listen", _host_port),
    "CALLCONTROL_UNICAST_PORTS": ("unicast_ports", _port_range),
    "CALLCONTROL_HTTP_LISTEN": ("http_listen", _host_port),
    "ESL_HOST": ("esl_host", _text),
    "ESL_PORT": ("esl_port", _port),
    "ESL_PASSWORD": ("esl_password", _text),
    "VOICE_AI_SERVICE_TOKEN": ("service_token", _text),
    "TRANSFER_DEFAULT_TIMEOUT": ("transfer_default_timeout", _positive_int),
    "TRANSFER_ANNOUNCE_ENABLED": ("transfer_announce_enabled", _bool),
    "TRANSFER_MUSIC_ON_HOLD": ("transfer_music_on_hold", _text),
    "OMNIPLAY_API_URL": ("omniplay_api_url", _url("http", "https")),
    "CALLBACK_ENABLED": ("callback_enabled", _bool),
    "CALLBACK_EXPIRATION_HOURS": ("callback_expiration_hours", _positive_int),
    "CALLBACK_MAX_NOTIFICATIONS": ("callback_max_notifications", _positive_int),
    "CALLBACK_MIN_INTERVAL_MINUTES": ("callback_min_interval_minutes", _positive_int),
    "CALLBACK_CHECK_INTERVAL_MS": ("callback_check_interval_ms", _positive_int),
    "REALTIME_URL": ("realtime_url", _url("ws", "wss")),
    "REALTIME_MODEL": ("realtime_model", _text),
    "REALTIME_VOICE": ("realtime_voice", _text),
    "REALTIME_TRANSCRIPTION_MODEL": ("realtime_transcription_model", _text),
    "REALTIME_PROVIDER": ("realtime_provider", _choice("openai-realtime", "openai-live")),
    "OPENAI_API_KEY": ("openai_api_key", _text),
    "WHATSAPP_API_URL": ("whatsapp_api_url", _url("http", "https")),
    "WHATSAPP_TOKEN": ("whatsapp_token", _text),
    "WHATSAPP_PHONE_NUMBER_ID": ("whatsapp_phone_number_id", _text),
    "WHATSAPP_APP_SECRET": ("whatsapp_app_secret", _text),
    "WHATSAPP_VERIFY_TOKEN": ("whatsapp_verify_token", _text),
    "WHATSAPP_TEMPLATE_NAME": ("whatsapp_template_name", _text),
    "WHATSAPP_TEMPLATE_LANGUAGE": ("whatsapp_template_language", _text),
    "CALLCONTROL_LANGUAGE": ("language", _choice("pt-BR", "en")),
    "CALLCONTROL_TIMEZONE": ("timezone", _timezone),
    "CALLCONTROL_INSTANCE_ID": ("instance_id", _text),
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


def _read_toml(path: Path, problems: list[str]) -> dict[str, str]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"CALLCONTROL_CONFIG: cannot read {path}: {exc.strerror}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"CALLCONTROL_CONFIG: {path} is not valid TOML: {exc}")
        return {}
    known = {name.lower(): name for name in _FIELDS}
    values: dict[str, str] = {}
    for key, value in raw.items():
        if key not in known:
            problems.append(f"{path}: unknown key {key!r}")
            continue
        values[known[key]] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration; ``overrides`` (field names) win over everything."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, str] = {}
    config_file = env.get("CALLCONTROL_CONFIG")
    if config_file:
        values.update(_read_toml(Path(config_file), problems))
    values.update({k: v for k, v in env.items() if k in _FIELDS and v != ""})
    kwargs: dict[str, Any] = {}
    for name, text in values.items():
        field, parse = _FIELDS[name]
        try:
            kwargs[field] = parse(text.strip())
        except ValueError as exc:
            shown = "<hidden>" if _is_secret(field) else repr(text)
            problems.append(f"{name}={shown}: {exc}")
    if problems:
        raise ConfigError(problems)
    kwargs.update(overrides)
    return Settings(**kwargs)


def _is_secret(field: str) -> bool:
    return any(word in field for word in ("password", "token", "key", "secret"))
