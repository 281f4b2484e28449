"""A FusionPBX user's password, checked against ``v_users.password`` as FusionPBX wrote it.

FusionPBX (``core/authentication/resources/classes/plugins/database.php``) knows two shapes:

- a hash starting with ``$``: PHP's ``password_hash(..., PASSWORD_DEFAULT)``, which is bcrypt
  written ``$2y$<cost>$<salt+hash>``, checked with ``password_verify``. The ``bcrypt`` library
  checks it; ``$2y$`` is the same algorithm as ``$2b$`` (PHP's name for the fixed variant), so
  the prefix is translated. Any other ``$`` scheme (argon2, md5-crypt...) is refused: FusionPBX
  never writes one, and refusing is the safe answer to what we cannot check.
- anything else: the deprecated ``md5(salt . password)`` of FusionPBX before 4.x, lower-case hex,
  with ``v_users.salt``. FusionPBX rehashes it to bcrypt at the user's next sign-in there.

An empty password is refused whatever is stored (PHP's branch refuses it for bcrypt; an md5 of
the salt alone would otherwise let anyone in whose password was never set). bcrypt reads only
the first 72 bytes of a password, like PHP, so a longer one is cut there before checking, and a
password holding NUL (which C's bcrypt would end at) is refused. Sans-IO: no database here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

BCRYPT_MAX_BYTES = 72
# PHP's bcrypt prefixes: 2y (PHP), 2b (OpenBSD, what the library writes), 2a (older, same here)
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_MD5_HEX = re.compile(r"[0-9a-f]{32}")
# PHP's default cost (FusionPBX's users.password_hash_cost when unset)
DEFAULT_COST = 10


def _bcrypt() -> Any:
    # Imported when first needed: a server whose environment lacks the package still serves
    # calls and the token API; only sign-in says what is missing.
    try:
        import bcrypt  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - setup.cfg installs it
        raise RuntimeError("the `bcrypt` package is not installed (pip install bcrypt); "
                           "FusionPBX passwords cannot be checked without it") from exc
    return bcrypt


def check(password: str, stored: str | None, salt: str | None = None) -> bool:
    """Whether ``password`` is the one ``stored`` (``v_users.password``) was made from."""
    if not password or not stored or "\x00" in password:
        return False
    if stored.startswith("$"):
        return _check_bcrypt(password, stored)
    if not _MD5_HEX.fullmatch(stored):
        return False
    made = hashlib.md5((salt or "").encode() + password.encode()).hexdigest()  # noqa: S324
    return hmac.compare_digest(made, stored)


def _check_bcrypt(password: str, stored: str) -> bool:
    if not _BCRYPT.fullmatch(stored):
        return False
    wanted = ("$2b$" + stored[4:]).encode("ascii")
    try:
        return bool(_bcrypt().checkpw(password.encode()[:BCRYPT_MAX_BYTES], wanted))
    except ValueError:  # a salt the library will not read: not a hash we can check
        return False


def hash_php(password: str, *, cost: int = DEFAULT_COST) -> str:
    """``password_hash($password, PASSWORD_DEFAULT)`` as PHP writes it: ``$2y$...`` (for the
    test helpers and the demo, which write users the way FusionPBX does)."""
    lib = _bcrypt()
    made: bytes = lib.hashpw(password.encode()[:BCRYPT_MAX_BYTES], lib.gensalt(rounds=cost))
    return "$2y$" + made.decode("ascii")[4:]


def hash_legacy_md5(password: str, salt: str) -> str:
    """The pre-4.x ``md5(salt . password)`` FusionPBX stored with ``v_users.salt``."""
    return hashlib.md5(salt.encode() + password.encode()).hexdigest()  # noqa: S324
