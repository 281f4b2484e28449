"""The whisper line: what the agent hears, and that caller text cannot break the command."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callcontrol.handoff.whisper import MAX_CHARS, whisper_text


def test_whisper_in_portuguese_and_english():
    text = whisper_text("Maria Souza", "11988887777", "resultado de exame")
    assert text.startswith("Ligação de Maria Souza, número ")
    assert text.endswith(", sobre resultado de exame.")
    assert whisper_text(None, None, "", "en") == "Call from a customer."


@given(st.text(), st.text(), st.text())
def test_hostile_caller_text_cannot_leave_its_argument(name, number, reason):
    text = whisper_text(name, number, reason)
    assert len(text) <= MAX_CHARS
    assert not any(ch in text for ch in "|{}[]'\"\r\n\x00\\")
