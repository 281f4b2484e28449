"""The demo's story of a call, from recorded Event Socket traffic, a transcript and rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callcontrol.demo_timeline import (
    Beat,
    Legend,
    call_story,
    cut_off_problems,
    empty_columns,
    invented_reasons,
    phone,
    received_frames,
    render,
    stored_lines,
    transcript_beats,
)
from callcontrol.esl import serialize
from callcontrol.testing.freeswitch import ClientCommand

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
JOB = "jjjjjjjj-0000-4000-8000-000000000003"
SUPORTE = "user/1001@pbx.example.com"
LEGEND = Legend("Maria Souza", "5511988887777", {SUPORTE: "Suporte (ramal 1001)"},
                prompts={"tone_stream://goodbye": "a goodbye tone"})  # fmt: skip


def execute(app: str, arg: str = "", at: float = 0.0) -> ClientCommand:
    headers = [("call-command", "execute"), ("execute-app-name", app)]
    if arg:
        headers.append(("execute-app-arg", arg))
    return ClientCommand("sendmsg", tuple(headers), at=at)


def originate(at: float) -> ClientCommand:
    return ClientCommand(
        f"bgapi originate {{origination_uuid={B},originate_timeout=15}}{SUPORTE} &park()",
        (("Job-UUID", JOB),), at=at)  # fmt: skip


def event(name: str, uuid: str, **headers: str) -> bytes:
    pairs = [("Event-Name", name), ("Unique-ID", uuid),
             *((k.replace("_", "-"), v) for k, v in headers.items())]  # fmt: skip
    return serialize.event_plain(pairs)


def job(result: str) -> bytes:
    return serialize.event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", JOB)],
                                 result.encode())  # fmt: skip


def story(commands, sent, transcript=(), ai_audio_ms=()):
    beats = call_story(commands, received_frames(sent), list(transcript), LEGEND, A, ai_audio_ms)
    return [line.strip() for line in render(beats)]


def test_a_ring_on_hold_music_and_an_answer_read_as_beats_timed_from_the_answer():
    commands = [
        ClientCommand("connect", at=10.0),
        execute("answer", at=10.5),
        execute("playback", "local_stream://moh", at=12.0),
        ClientCommand(f"filter Unique-ID {B}", at=12.0),
        originate(12.0),
        ClientCommand(f"api uuid_bridge {A} {B}", at=14.0),
    ]
    sent = [(10.0, serialize.command_reply("+OK")), (16.0, event("CHANNEL_HANGUP", B))]
    assert story(commands, sent) == [
        "0.00  callcontrol answers the call from Maria Souza (+55 11 98888-7777)",
        "1.50  ringing Suporte (ramal 1001)… — the caller hears hold music",
        "3.50  Suporte atendeu — em conversa: they are talking, the AI has left the call",
        "5.50  Suporte hangs up",
    ]


def test_a_busy_destination_says_why_and_our_own_hangup_is_not_the_callers():
    commands = [execute("answer", at=0.0), originate(1.0),
                ClientCommand("sendmsg", (("call-command", "hangup"),
                                          ("hangup-cause", "NORMAL_CLEARING")), at=3.0),
                execute("playback", "tone_stream://goodbye", at=2.5)]  # fmt: skip
    sent = [(1.5, job("-ERR USER_BUSY\n")),
            (3.1, event("CHANNEL_HANGUP", A, Hangup_Cause="NORMAL_CLEARING"))]  # fmt: skip
    assert story(sorted(commands, key=lambda c: c.at), sent) == [
        "0.00  callcontrol answers the call from Maria Souza (+55 11 98888-7777)",
        "1.00  ringing Suporte (ramal 1001)…",
        "1.50  Suporte does not answer: USER_BUSY",
        "2.50  the caller hears a goodbye tone",
        "3.00  callcontrol hangs up (NORMAL_CLEARING)",
    ]


def test_the_caller_hanging_up_is_told_once_not_the_agent_leg_that_follows():
    commands = [execute("answer", at=0.0), originate(0.5),
                ClientCommand(f"api uuid_bridge {A} {B}", at=1.0)]  # fmt: skip
    sent = [(2.0, event("CHANNEL_HANGUP", A)), (2.0, event("CHANNEL_HANGUP", B))]
    lines = story(commands, sent)
    assert lines[-1] == "2.00  the caller hangs up"
    assert not [line for line in lines if "Suporte hangs up" in line]


def test_a_frame_split_over_two_writes_is_read_at_the_time_it_was_complete():
    data = event("CHANNEL_HANGUP", A)
    frames = received_frames([(1.0, data[:10]), (2.0, data[10:])])
    assert [(f.t, f.frame.event.name) for f in frames] == [(2.0, "CHANNEL_HANGUP")]


def test_raw_event_socket_lines_show_only_when_verbose():
    commands = [ClientCommand("connect", at=0.0), execute("answer", at=0.0), originate(1.0)]
    sent = [(0.0, serialize.command_reply("+OK")), (1.0, serialize.bgapi_reply(JOB)),
            (1.5, job("-ERR USER_BUSY\n")), (1.6, serialize.api_response("+OK\n"))]  # fmt: skip
    beats = call_story(commands, received_frames(sent), [], LEGEND, A)
    quiet, loud = render(beats), render(beats, verbose=True)
    assert not [line for line in quiet if "ESL" in line]
    assert any(line.endswith("ESL ← bgapi originate {origination_uuid=" + B
                             + f",originate_timeout=15}}{SUPORTE} &park()") for line in loud)
    assert any("ESL ← sendmsg call-command: execute execute-app-name: answer" in line
               for line in loud)  # fmt: skip
    assert any(line.endswith("ESL → reply +OK") for line in loud)
    assert any(line.endswith("ESL → event BACKGROUND_JOB → -ERR USER_BUSY") for line in loud)
    assert any(line.endswith("ESL → api/response +OK") for line in loud)
    # a time a hair before the answer still reads 0.00, not -0.00
    assert render([Beat(-0.001, "x")]) == ["    0.00  x"]


def test_the_transcript_tells_who_said_what_and_what_the_ai_asked_for():
    handoff = {"arguments": '{"destination": "suporte", "reason": "resultado do meu exame"}'}
    transcript = [
        {"t": 0.1, "role": "assistant", "text": "Clínica Exemplo, bom dia!"},
        {"t": 2.0, "role": "caller", "text": "Queria falar com o suporte."},
        {"t": 2.1, "role": "tool", "text": "request_handoff", "data": handoff},
        {"t": 3.0, "role": "tool",
         "text": '{"status": "busy", "say": "O ramal do Suporte está ocupado agora."}'},
        {"t": 3.1, "role": "assistant", "text": "Quer que liguem de volta?"},
        {"t": 3.1, "role": "assistant", "text": "Posso anotar?"},
        {"t": 5.0, "role": "tool", "text": "schedule_callback", "data": {"arguments": "{}"}},
        {"t": 5.1, "role": "tool", "text": '{"ok": true, "request_id": "r1"}'},
        {"t": 5.2, "role": "tool", "text": "take_message", "data": {"arguments": "broken"}},
        {"t": 5.3, "role": "tool", "text": '{"error": "phone_number is not a number"}'},
        {"t": 5.4, "role": "tool", "text": "end_call", "data": {"arguments": {}}},
        {"t": 5.5, "role": "tool", "text": '{"ok": true, "note": "say goodbye briefly"}'},
        {"t": 5.6, "role": "tool", "text": "lookup", "data": {}},
        {"t": 5.7, "role": "tool", "text": "not json"},
        {"t": 5.8, "role": "system", "text": "a note to the model"},
    ]  # fmt: skip
    beats = transcript_beats(transcript, ai_audio_ms=[1000, 800, 500])
    assert [(b.t, b.text) for b in beats] == [
        (0.1, "AI: “Clínica Exemplo, bom dia!”"),
        (2.0, "caller: “Queria falar com o suporte.”"),
        (2.1, "the AI asks callcontrol to transfer the caller to “suporte”"
              " because “resultado do meu exame”"),
        (3.0, "handoff result: busy — the AI is told “O ramal do Suporte está ocupado agora.”"),
        (3.1, "AI: “Quer que liguem de volta?”"),
        # sent with the one before, heard once it was played out
        (3.9, "AI: “Posso anotar?”"),
        (5.0, "the AI asks callcontrol to store a callback request"),
        (5.1, "callback request stored, before the AI confirms it"),
        (5.2, "the AI asks callcontrol to store a message"),
        (5.3, "take_message refused: phone_number is not a number — the AI is told to ask again"),
        (5.4, "the AI asks callcontrol to end the call"),
        (5.6, "the AI calls lookup"),
        (5.7, "lookup result: not json"),
    ]  # fmt: skip


def test_the_stored_row_is_shown_column_by_column_with_no_none():
    start = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    row = {"outcome": "callback_requested", "handoff_status": "busy",
           "handoff_destination": "Suporte", "hangup_cause": "NORMAL_CLEARING",
           "caller_number": "5511988887777", "caller_name": "Maria Souza",
           "secretary_uuid": None, "instance": "callcontrol", "started_at": start,
           "ended_at": start + timedelta(seconds=7.14), "transcript": [{}, {}, {}]}  # fmt: skip
    requests = [{"kind": "callback", "phone_number": "+5511988887777",
                 "preferred_time": "hoje à tarde", "reason": "resultado do meu exame",
                 "status": "pending"}]  # fmt: skip
    lines = stored_lines(row, requests)
    assert [" ".join(line.split()) for line in lines] == [
        "stored: callcontrol_calls.outcome callback_requested",
        "stored: callcontrol_calls.handoff_status busy",
        "stored: callcontrol_calls.handoff_destination Suporte",
        "stored: callcontrol_calls.hangup_cause NORMAL_CLEARING",
        "stored: callcontrol_calls.duration 7.1 s",
        "stored: callcontrol_calls.transcript 3 lines",
        "stored: callcontrol_calls.caller Maria Souza (5511988887777)",
        "stored: callcontrol_calls.secretary/instance the domain’s own secretary / callcontrol",
        "stored: callback request: number +5511988887777, preferred time “hoje à tarde”,"
        " reason “resultado do meu exame”, status pending",
    ]
    assert empty_columns(row) == []
    assert empty_columns({**row, "hangup_cause": None, "outcome": ""}) == ["outcome",
                                                                             "hangup_cause"]
    assert empty_columns(None) == []
    assert stored_lines(None, []) == ["  !! no callcontrol_calls row was stored for this call"]
    assert "message: number" in stored_lines(row, [{**requests[0], "kind": "message"}])[-1]


def test_a_cut_off_utterance_and_an_invented_reason_are_problems():
    assert cut_off_problems([], {"item_1": 1200.0}) == []
    assert cut_off_problems([{"item_id": "item_1", "audio_end_ms": 20}], {"item_1": 1200.0}) == [
        "  !! the AI was cut off: item_1 stopped after 20 of 1200 ms (the caller talked over it)"]
    assert "stopped after 5 ms" in cut_off_problems([{"item_id": "x", "audio_end_ms": 5}], {})[0]
    said = [{"role": "caller", "text": "Queria saber do Resultado do meu exame."},
            {"role": "assistant", "text": "boleto"}]  # fmt: skip
    assert invented_reasons([{"reason": "resultado do meu exame"}, {"reason": None}], said) == []
    assert invented_reasons([{"reason": "boleto"}], said) == [
        "  !! the stored reason “boleto” is not what the caller said"]


def test_phone_numbers_read_as_people_write_them():
    assert phone("5511988887777") == "+55 11 98888-7777"
    assert phone("+55 11 3333-4444") == "+55 11 3333-4444"
    assert phone("1001") == "1001"
