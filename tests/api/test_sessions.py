"""The session cookie: what the server signed reads back; any change to it, another secret, its
expiry or signing out makes it nobody's."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from callcontrol.api.sessions import SessionCodec, csrf_ok, session_secret
from tests.api.people import Clock

SECRET = b"s" * 32
USER, DOMAIN = uuid.uuid4(), uuid.uuid4()


def test_what_was_signed_reads_back_until_it_expires():
    clock = Clock()
    codec = SessionCodec(SECRET, clock, max_age_seconds=3600)
    session, cookie = codec.new(USER, DOMAIN)
    assert codec.decode(cookie) == session
    assert (session.user_uuid, session.domain_uuid) == (USER, DOMAIN)
    clock.now += 3599
    assert codec.decode(cookie) == session
    clock.now += 1
    assert codec.decode(cookie) is None


@given(at=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_byte_changed_is_refused(at, bit):
    codec = SessionCodec(SECRET, Clock())
    _, cookie = codec.new(USER, DOMAIN)
    raw = bytearray(cookie.encode())
    raw[at % len(raw)] ^= 1 << bit
    changed = raw.decode("latin-1")
    assert changed == cookie or codec.decode(changed) is None


@given(text=st.text(max_size=300))
def test_anything_else_is_nobodys(text):
    assert SessionCodec(SECRET, Clock()).decode(text) is None


def test_another_secret_a_signed_out_session_and_a_wrong_csrf_token_are_refused():
    clock = Clock()
    codec = SessionCodec(SECRET, clock)
    session, cookie = codec.new(USER, DOMAIN)
    assert SessionCodec(b"t" * 32, clock).decode(cookie) is None
    assert csrf_ok(session, session.csrf_token)
    assert not csrf_ok(session, None) and not csrf_ok(session, session.csrf_token + "x")
    codec.revoke(session)
    assert codec.decode(cookie) is None
    assert codec.decode(codec.new(USER, DOMAIN)[1]) is not None  # a new sign-in is fine


def test_the_secret_is_the_configured_one_else_one_derived_from_the_token():
    assert session_secret("x" * 32, "token") == b"x" * 32
    derived = session_secret(None, "token")
    assert derived == session_secret(None, "token") != session_secret(None, "other")
    assert derived is not None and b"token" not in derived
    assert session_secret(None, None) is None and session_secret("", "") is None
