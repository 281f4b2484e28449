"""``serve --record`` on the real secretary flow: the trace holds the AI's websocket frames and
the values the call generated (trace format 2), and never a secret."""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio.testing

from callcontrol.config import load_settings
from callcontrol.testing.realtime import GoSilent, ScriptedLive
from callcontrol.trace.format import is_caller_audio, read_trace
from callcontrol.trace.recorder import settings_snapshot
from callcontrol.trace.replay import replay_call
from tests.trace.flows import API_KEY, FLOWS, GREETING, Flow, build_office, record

SECRETS = (API_KEY, "service-token-never-in-a-trace", "esl-password-never-in-a-trace")


async def test_the_trace_holds_the_ai_frames_and_every_generated_value(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = await record(FLOWS["busy"], db, await build_office(db), tmp_path)
    trace = read_trace(path)
    assert trace.header.version == 2
    kinds = [line.dir for line in trace.lines]
    assert kinds.count("ai_open") == 1 and kinds.index("ai_open") < kinds.index("ai_send")
    sent = [json.loads(line.data) for line in trace.of("ai_send")]
    received = [json.loads(line.data) for line in trace.of("ai_recv")]
    assert sent[0]["type"] == "session.update"
    assert any(e["type"] == "response.function_call_arguments.done" for e in received)
    # what the model was told about the busy line, as it went out
    outputs = [json.loads(e["item"]["output"]) for e in sent
               if e["type"] == "conversation.item.create"]  # fmt: skip
    assert [o["status"] for o in outputs] == ["busy"]
    # every UUID and port the server put in its commands is a recorded generated value
    commands = trace.data("send").decode()
    uuids = set(trace.generated("uuid4"))
    for name in ("Event-UUID: ", "origination_uuid=", "Job-UUID: "):
        used = re.findall(re.escape(name) + r"([0-9a-f-]{36})", commands)
        assert used and set(used) <= uuids, name
    ports = re.findall(r"remote-port: (\d+)", commands)
    assert ports and ports == trace.generated("port")
    assert trace.generated("now")  # office hours and the call's times come from the source


async def test_gpt_live_session_start_and_started_are_recorded(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # GPT-Live's start goes around the provider's send_text/receive_text
    flow = Flow("live", [*GREETING, GoSilent()], FLOWS["sigterm"].drive)
    path = await record(flow, db, await build_office(db), tmp_path, model_class=ScriptedLive,
                        REALTIME_PROVIDER="openai-live",
                        REALTIME_URL="ws://model.test/v1/live/sessions")  # fmt: skip
    trace = read_trace(path)
    assert json.loads(trace.of("ai_send")[0].data)["type"] == "session.start"
    assert json.loads(trace.of("ai_recv")[0].data)["type"] == "session.started"


async def test_no_secret_is_ever_written_into_a_trace(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = await record(FLOWS["answered"], db, await build_office(db), tmp_path)
    raw = path.read_text()
    for secret in SECRETS:
        assert secret not in raw
    settings = read_trace(path).header.extra["settings"]
    assert settings["openai_api_key_set"] is True
    assert "openai_api_key" not in settings and "esl_password" not in settings


def test_the_settings_in_the_header_lose_keys_passwords_and_url_credentials() -> None:
    snapshot = settings_snapshot(load_settings({
        "DATABASE_URL": "postgresql://cc:db-pass@db/cc",
        "REALTIME_URL": "wss://user:url-pass@gw.example/v1/realtime?api-key=query-key",
        "OPENAI_API_KEY": "sk-key", "WHATSAPP_TOKEN": "wa-token",
        "OMNIPLAY_WEBHOOK_SECRET": "hook-secret", "WHATSAPP_APP_SECRET": "app-secret",
        "WHATSAPP_VERIFY_TOKEN": "verify-token", "VOICE_AI_SERVICE_TOKEN": "svc-token",
        "ESL_PASSWORD": "esl-pass",
    }))  # fmt: skip
    text = json.dumps(snapshot)
    for secret in ("db-pass", "url-pass", "query-key", "sk-key", "wa-token", "hook-secret",
                   "app-secret", "verify-token", "svc-token", "esl-pass"):
        assert secret not in text
    assert snapshot["realtime_url"] == "wss://gw.example/v1/realtime"
    assert snapshot["media_transport"] == "unicast" and snapshot["openai_api_key_set"] is True


async def test_the_callers_audio_is_counted_not_recorded_and_the_call_still_replays(
    db, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    domain = await build_office(db)
    path = await record(FLOWS["busy"], db, domain, tmp_path, caller_audio=440.0)
    trace = read_trace(path)
    appends = [line for line in trace.of("ai_send") if is_caller_audio(line.data)]
    assert appends, "the simulated caller spoke: its audio went to the AI"
    assert all(json.loads(line.data)["audio"] == "" for line in appends)
    assert sum(line.fields["audio_bytes"] for line in appends) > 1000
    result = await replay_call(trace, db)
    assert result.ok, result.render()
