"""Configuration: defaults, environment, TOML file, and one clear message per mistake."""

from __future__ import annotations

import pytest

from callcontrol.cli import main
from callcontrol.config import (
    ENVIRONMENT_VARIABLES,
    ConfigError,
    HostPort,
    describe_unknown,
    load_settings,
    unknown_variables,
)


def test_defaults_are_the_documented_ones():
    s = load_settings({})
    assert s.database_url is None
    assert s.esl_listen == HostPort("127.0.0.1", 8022)
    assert str(s.esl_listen) == "127.0.0.1:8022"
    assert s.media_transport == "unicast"
    assert (s.unicast_ports.first, s.unicast_ports.last, len(s.unicast_ports)) == (
        40000,
        40999,
        1000,
    )
    assert s.transfer_default_timeout == 30
    assert s.transfer_music_on_hold == "local_stream://moh"
    assert s.language == "pt-BR" and s.tz.key == "America/Sao_Paulo"
    assert s.model_silence_seconds == 2.0


def test_environment_values_are_parsed():
    s = load_settings(
        {
            "CALLCONTROL_ESL_LISTEN": "0.0.0.0:9000",
            "TRANSFER_ANNOUNCE_ENABLED": "no",
            "CALLBACK_MAX_NOTIFICATIONS": "3",
            "CALLCONTROL_MEDIA_TRANSPORT": "audio_stream",
            "CALLCONTROL_MODEL_SILENCE_SECONDS": "2.5",
            "DATABASE_URL": "postgresql://u@db/fusionpbx",
            "CALLCONTROL_LANGUAGE": "en",
        }
    )
    assert s.esl_listen == HostPort("0.0.0.0", 9000)
    assert s.transfer_announce_enabled is False
    assert s.callback_max_notifications == 3
    assert s.media_transport == "audio_stream"
    assert s.model_silence_seconds == 2.5
    assert s.language == "en"


def test_every_mistake_is_reported_at_once_without_secrets():
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {
                "CALLCONTROL_ESL_LISTEN": "nohostport",
                "ESL_PORT": "abc",
                "CALLCONTROL_UNICAST_PORTS": "127.0.0.1:5000",
                "TRANSFER_ANNOUNCE_ENABLED": "maybe",
                "CALLCONTROL_TIMEZONE": "Mars/Olympus",
                "REALTIME_URL": "http://not-a-websocket",
                "CALLCONTROL_MEDIA_TRANSPORT": "carrier-pigeon",
                "TRANSFER_DEFAULT_TIMEOUT": "-1",
                "CALLCONTROL_MODEL_SILENCE_SECONDS": "soon",
                "ESL_PASSWORD": "",
                "OPENAI_API_KEY": "sk-secret-value\u0000",
                "CALLCONTROL_MAX_CALL_SECONDS": "0",
            }
        )
    problems = raised.value.problems
    text = "\n".join(problems)
    assert len(problems) == 10
    assert "CALLCONTROL_ESL_LISTEN='nohostport': expected HOST:PORT" in text
    assert "ESL_PORT='abc': port must be a whole number" in text
    assert "HOST:FIRST-LAST" in text
    assert "expected true or false" in text
    assert "unknown time zone" in text
    assert "must start with ws:// or wss://" in text
    assert "must be one of unicast, audio_stream" in text
    assert "TRANSFER_DEFAULT_TIMEOUT='-1': must be a positive whole number" in text
    assert "must be a number of seconds" in text
    assert "must be more than 0 seconds" in text
    assert "sk-secret" not in str(raised.value)


def test_click_to_call_settings_are_checked():
    s = load_settings({})
    assert (s.callback_call_order, s.callback_ring_timeout_seconds,
            s.callback_retry_delay_seconds, s.callback_retry_attempts,
            s.callback_gateway) == ("agent-first", 30, 60, 2, None)  # fmt: skip
    s = load_settings({"CALLBACK_CALL_ORDER": "customer-first", "CALLBACK_GATEWAY": "vivo-sip",
                       "CALLBACK_RETRY_ATTEMPTS": "0", "CALLBACK_RING_TIMEOUT_SECONDS": "45",
                       "CALLBACK_RETRY_DELAY_SECONDS": "300"})  # fmt: skip
    assert (s.callback_call_order, s.callback_gateway, s.callback_retry_attempts) == (
        "customer-first", "vivo-sip", 0)
    with pytest.raises(ConfigError) as raised:
        load_settings({"CALLBACK_CALL_ORDER": "whoever", "CALLBACK_GATEWAY": "gw,x=1",
                       "CALLBACK_RING_TIMEOUT_SECONDS": "3", "CALLBACK_RETRY_ATTEMPTS": "-1",
                       "CALLBACK_RETRY_DELAY_SECONDS": "soon",
                       "CALLBACK_CALLER_ID_NUMBER": "1000,x=y", "CALLBACK_CALLER_ID_NAME": " "})
    text = "\n".join(raised.value.problems)
    assert len(raised.value.problems) == 7
    assert "CALLBACK_CALLER_ID_NUMBER='1000,x=y': must be a phone number" in text
    assert "CALLBACK_CALL_ORDER='whoever': must be one of agent-first, customer-first" in text
    assert "CALLBACK_GATEWAY='gw,x=1': must be a FreeSWITCH gateway name" in text
    assert "CALLBACK_RING_TIMEOUT_SECONDS='3': must be between 5 and 300" in text
    assert "CALLBACK_RETRY_ATTEMPTS='-1': must be between 0 and 20" in text


def test_whatsapp_settings_are_checked():
    s = load_settings({"WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
                       "WHATSAPP_TEMPLATE_NAME": "retorno_disponivel",
                       "WHATSAPP_TEMPLATE_LANGUAGE": "en_US"})  # fmt: skip
    assert (s.whatsapp_phone_number_id, s.whatsapp_template_name,
            s.whatsapp_template_language) == ("106540352242922", "retorno_disponivel", "en_US")
    with pytest.raises(ConfigError) as raised:
        load_settings({"WHATSAPP_PHONE_NUMBER_ID": "1065/../me", "WHATSAPP_TEMPLATE_NAME":
                       "Retorno Disponível", "WHATSAPP_TEMPLATE_LANGUAGE": "pt-BR",
                       "WHATSAPP_TOKEN": "EAAG-secret"})  # fmt: skip
    text = "\n".join(raised.value.problems)
    assert len(raised.value.problems) == 3
    assert "WHATSAPP_PHONE_NUMBER_ID='1065/../me': must be the number's id" in text
    assert "only a-z, 0-9 and _" in text and "such as pt_BR" in text
    assert load_settings({}).whatsapp_template_language == "pt_BR"


def test_toml_file_with_environment_overriding_it(tmp_path):
    path = tmp_path / "callcontrol.toml"
    path.write_text('esl_port = 8123\ntransfer_announce_enabled = false\nesl_host = "10.0.0.5"\n')
    s = load_settings({"CALLCONTROL_CONFIG": str(path), "ESL_HOST": "127.0.0.9"})
    assert s.esl_port == 8123
    assert s.transfer_announce_enabled is False
    assert s.esl_host == "127.0.0.9"


def test_toml_mistakes_are_reported(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("esl_port = \n")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    for path, message in (
        (bad, "is not valid TOML"),
        (unknown, "unknown key 'colour'"),
        (tmp_path / "missing.toml", "cannot read"),
    ):
        with pytest.raises(ConfigError) as raised:
            load_settings({"CALLCONTROL_CONFIG": str(path)})
        assert message in str(raised.value)


def test_every_documented_variable_is_known():
    for name in (
        "DATABASE_URL",
        "CALLCONTROL_ESL_LISTEN",
        "CALLCONTROL_MEDIA_TRANSPORT",
        "CALLCONTROL_MEDIA_LISTEN",
        "CALLCONTROL_UNICAST_PORTS",
        "CALLCONTROL_HTTP_LISTEN",
        "ESL_HOST",
        "ESL_PORT",
        "ESL_PASSWORD",
        "VOICE_AI_SERVICE_TOKEN",
        "TRANSFER_DEFAULT_TIMEOUT",
        "TRANSFER_ANNOUNCE_ENABLED",
        "TRANSFER_MUSIC_ON_HOLD",
        "OMNIPLAY_API_URL",
        "CALLBACK_ENABLED",
        "CALLBACK_EXPIRATION_HOURS",
        "CALLBACK_MAX_NOTIFICATIONS",
        "CALLBACK_MIN_INTERVAL_MINUTES",
        "CALLBACK_CHECK_INTERVAL_MS",
        "REALTIME_URL",
        "REALTIME_MODEL",
        "REALTIME_VOICE",
        "OPENAI_API_KEY",
        "WHATSAPP_API_URL",
        "WHATSAPP_TOKEN",
        "WHATSAPP_PHONE_NUMBER_ID",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_TEMPLATE_NAME",
        "WHATSAPP_TEMPLATE_LANGUAGE",
        "CALLCONTROL_LANGUAGE",
        "CALLCONTROL_TIMEZONE",
    ):
        assert name in ENVIRONMENT_VARIABLES


def test_cli_reports_configuration_mistakes_with_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("ESL_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "ESL_PORT='eighty'" in capsys.readouterr().err


def test_misspelt_variables_are_found_with_what_they_probably_meant():
    env = {
        "CALLCONTROL_HTTP_LISTN": "127.0.0.1:9000",
        "ESL_PASWORD": "secret",
        "CALLCONTROL_COLOUR": "blue",
        "esl_port": "8021",
        "DATABSE_URL": "postgresql://db/x",
        # ours, or other programs' variables without our prefixes: not reported
        "CALLCONTROL_CONFIG": "/etc/callcontrol/callcontrol.toml",
        "CALLCONTROL_HTTP_LISTEN": "127.0.0.1:8086",
        "OPENAI_BASE_URL": "https://example.com",
        "DATABASE_NAME": "x",
        "PATH": "/usr/bin",
    }
    assert unknown_variables(env) == [
        ("CALLCONTROL_COLOUR", None),
        ("CALLCONTROL_HTTP_LISTN", "CALLCONTROL_HTTP_LISTEN"),
        ("DATABSE_URL", "DATABASE_URL"),
        ("ESL_PASWORD", "ESL_PASSWORD"),
        ("esl_port", "ESL_PORT"),
    ]
    assert describe_unknown("CALLCONTROL_HTTP_LISTN", "CALLCONTROL_HTTP_LISTEN") == (
        "CALLCONTROL_HTTP_LISTN is not a callcontrol setting and is ignored; "
        "did you mean CALLCONTROL_HTTP_LISTEN?"
    )


def test_toml_tables_and_dotted_keys_name_the_same_settings(tmp_path):
    path = tmp_path / "callcontrol.toml"
    path.write_text(
        'language = "en"\n'
        "[http]\nlisten = \"127.0.0.1:9999\"\n"
        "[esl]\nport = 8123\nlisten = \"0.0.0.0:8022\"\n"
        "[transfer]\nannounce_enabled = false\n"
    )
    s = load_settings({"CALLCONTROL_CONFIG": str(path)})
    assert s.http_listen == HostPort("127.0.0.1", 9999)
    assert s.esl_port == 8123
    assert s.esl_listen == HostPort("0.0.0.0", 8022)
    assert s.transfer_announce_enabled is False
    assert s.language == "en"


def test_toml_mistakes_are_reported_under_the_key_written_in_the_file(tmp_path):
    path = tmp_path / "callcontrol.toml"
    path.write_text(
        'esl_port = "abc"\n'
        'esl_password = ""\n'
        "[http]\nlisten = \"nohostport\"\n"
        "[esl]\npasword = \"x\"\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_settings({"CALLCONTROL_CONFIG": str(path)})
    assert sorted(raised.value.problems) == sorted(
        [
            f"{path}: esl_port='abc': port must be a whole number, got 'abc'",
            f"{path}: esl_password=<hidden>: must not be empty",
            f"{path}: http.listen='nohostport': expected HOST:PORT",
            f"{path}: unknown key 'esl.pasword' (did you mean 'esl.password'?)",
        ]
    )
    # the environment wins, and its mistakes carry the variable's name
    with pytest.raises(ConfigError) as raised:
        load_settings({"CALLCONTROL_CONFIG": str(path), "ESL_PORT": "eighty"})
    assert "ESL_PORT='eighty': port must be a whole number, got 'eighty'" in raised.value.problems
