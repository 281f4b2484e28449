"""FusionPBX's password hashes: PHP's bcrypt ``$2y$`` (checked against a hash PHP itself made)
and the legacy ``md5(salt . password)``; anything else is refused."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from callcontrol.api import passwords

# php.net's password_verify example: made by PHP's password_hash, PASSWORD_DEFAULT, cost 10
PHP_HASH = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"
PASSWORDS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                    max_size=40)  # fmt: skip


def test_a_hash_php_made_is_checked():
    assert passwords.check("rasmuslerdorf", PHP_HASH)
    assert not passwords.check("rasmuslerdorF", PHP_HASH)
    assert not passwords.check("", PHP_HASH)
    # the same hash under the other spellings of bcrypt's prefix
    assert passwords.check("rasmuslerdorf", "$2b$" + PHP_HASH[4:])
    assert passwords.check("rasmuslerdorf", "$2a$" + PHP_HASH[4:])


@settings(max_examples=25, deadline=None)
@given(password=PASSWORDS, other=PASSWORDS)
def test_bcrypt_made_like_php_checks_its_password_and_no_other(password, other):
    stored = passwords.hash_php(password, cost=4)
    assert stored.startswith("$2y$04$") and len(stored) == 60
    assert passwords.check(password, stored)
    if other.encode()[:72] != password.encode()[:72]:
        assert not passwords.check(other, stored)


def test_bcrypt_reads_72_bytes_like_php():
    long = "x" * 72
    stored = passwords.hash_php(long + "tail", cost=4)
    assert passwords.check(long + "another tail", stored)
    assert not passwords.check("x" * 71, stored)


@settings(max_examples=100, deadline=None)
@given(password=PASSWORDS, other=PASSWORDS, salt=st.text(max_size=40))
def test_legacy_md5_with_its_salt(password, other, salt):
    stored = hashlib.md5((salt + password).encode()).hexdigest()  # as PHP's md5($salt.$pass)
    assert passwords.hash_legacy_md5(password, salt) == stored
    assert passwords.check(password, stored, salt)
    if other != password:
        assert not passwords.check(other, stored, salt)
    if salt:
        assert not passwords.check(password, stored, None)
    assert not passwords.check(password, stored.upper(), salt)


@given(password=PASSWORDS)
def test_anything_else_is_refused(password):
    for stored in (None, "", password, "$argon2id$v=19$m=65536,t=4,p=1$c2FsdA$aGFzaA",
                   "$1$salt$abcdefghijklmnopqrstuv", "$2y$10$short", "$2x$10$" + "a" * 53,
                   "$2y$99$" + "a" * 53, "$5$rounds=5000$salt$hash"):  # fmt: skip
        assert not passwords.check(password, stored, "salt")


def test_an_empty_password_or_one_with_nul_is_refused_even_when_it_would_match():
    assert not passwords.check("", hashlib.md5(b"salt").hexdigest(), "salt")
    stored = passwords.hash_php("a", cost=4)
    assert not passwords.check("a\x00b", stored)
