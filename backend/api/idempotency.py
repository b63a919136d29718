"""The ``Idempotency-Key`` header: a retried request with the same key changes nothing twice."""

from __future__ import annotations

import re

from flask import request

from backend.errors import ValidationFailed

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x20-\x7e]{1,100}$"  # printable ASCII; a UUID is best
_KEY = re.compile(KEY_PATTERN)


def idempotency_key() -> str | None:
    """The request's key, or None when it sent none; 422 for a malformed one."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise ValidationFailed(
            f"{IDEMPOTENCY_HEADER} must be 1 to 100 printable ASCII characters (a UUID is best)",
            details=[{"field": IDEMPOTENCY_HEADER, "message": "1-100 printable ASCII characters"}],
        )
    return key
