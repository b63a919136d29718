"""Secrets (prefixed, shown once, stored as hashes) and password hashing."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DEPLOYMENT_KEY_PREFIX = "sosd_"
CASE_TOKEN_PREFIX = "sosc_"
USER_TOKEN_PREFIX = "sosu_"
WEBHOOK_SECRET_PREFIX = "sosw_"

_hasher = PasswordHasher()
# Tests create many users; the default Argon2 cost would dominate their run time.
_fast_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def new_secret(prefix: str) -> str:
    """A fresh random secret whose prefix lets people and scanners recognise it."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Secrets carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_hint(secret: str) -> str:
    """The start of a secret, safe to show so a person can tell their tokens apart."""
    return secret[: len(DEPLOYMENT_KEY_PREFIX) + 4]


def hash_password(password: str, *, fast: bool = False) -> str:
    return (_fast_hasher if fast else _hasher).hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Same work as a real check, so timing does not reveal unknown accounts.
        _fast_hasher.hash(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
