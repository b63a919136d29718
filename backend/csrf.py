"""The session's CSRF token: one for the console's forms and its script's API calls."""

from __future__ import annotations

import secrets

from flask import session

from backend.security import constant_time_equals

SESSION_KEY = "csrf_token"


def csrf_token() -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_matches(sent: str) -> bool:
    """Whether ``sent`` is the session's token (compared in constant time)."""
    expected = session.get(SESSION_KEY, "")
    return bool(sent and expected and constant_time_equals(sent, expected))
