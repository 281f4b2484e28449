"""The sans-IO side of WhatsApp: reply words, the webhook's signature, numbers, bodies."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.callbacks import whatsapp as wa

R = wa.Reply


@pytest.mark.parametrize(("text", "reply"), [
    ("sim", R.CALL_NOW), ("S", R.CALL_NOW), ("1", R.CALL_NOW), ("Yes!", R.CALL_NOW),
    ("  Sim.  ", R.CALL_NOW), ("*sim*", R.CALL_NOW),
    ("depois", R.LATER), ("2", R.LATER), ("LATER", R.LATER), ("Depois!", R.LATER),
    ("não", R.CANCEL), ("Não!", R.CANCEL), ("nao", R.CANCEL), ("NÃO", R.CANCEL),
    ("na\u0303o", R.CANCEL), ("n", R.CANCEL), ("3", R.CANCEL), ("no", R.CANCEL),
    ("sim, mas depois", R.OTHER), ("simmm", R.OTHER), ("12", R.OTHER), ("", R.OTHER),
    (None, R.OTHER), ("ok", R.OTHER), ("pode ligar", R.OTHER), ("１", R.CALL_NOW),
])  # fmt: skip
def test_only_a_reply_word_alone_is_an_answer(text, reply):
    assert wa.reply_of(text) is reply


def test_the_signature_is_meta_s_hmac_of_the_raw_body():
    body = b'{"object":"whatsapp_business_account"}'
    mac = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert wa.signature_ok("app-secret", body, f"sha256={mac}")
    assert wa.signature_ok("app-secret", body, f"sha256={mac.upper()}")  # hex in any case
    for wrong in (None, "", mac, f"sha1={mac}", f"sha256={mac[:-1]}0", "sha256=é",
                  f"sha256={mac}x"):  # fmt: skip
        assert not wa.signature_ok("app-secret", body, wrong), wrong
    assert not wa.signature_ok("app-secret", body + b" ", f"sha256={mac}")
    assert not wa.signature_ok("", body, f"sha256={mac}")


def test_a_brazilian_mobile_is_matched_with_and_without_its_ninth_digit():
    assert wa.numbers_of("5511988887777") == ["+5511988887777", "+551188887777"]
    assert wa.numbers_of("551188887777") == ["+551188887777", "+5511988887777"]
    assert wa.numbers_of("551133334444") == ["+551133334444"]  # a landline has no ninth digit
    assert wa.numbers_of("14155550100") == ["+14155550100"]


def test_the_messages_we_send_have_meta_s_shape():
    assert wa.text_message("+55 11 98888-7777", "ok", reply_to="wamid.X") == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511988887777",
        "type": "text", "text": {"preview_url": False, "body": "ok"},
        "context": {"message_id": "wamid.X"}}  # fmt: skip


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["entry", "changes", "value", "messages", "statuses", "from", "id",
                         "type", "text", "body", "button", "payload", "interactive",
                         "button_reply", "title", "context", "errors", "code", "status"]),
        inner, max_size=5),
    max_leaves=30)  # fmt: skip


@given(_JSON)
def test_any_body_is_read_without_failing_and_gives_storable_messages(payload):
    for found in wa.inbound_messages(payload):
        assert found.message_id and "\x00" not in found.message_id
        assert found.sender.isdigit() or found.sender == ""
        assert found.text is None or "\x00" not in found.text
        json.dumps(found.text)
    for failed in wa.failed_statuses(payload):
        assert failed.message_id and failed.title
