"""Rate limits with Flask-Limiter: case creation, password logins and API calls per token.

Views declare the limits they take with :func:`rate_limited` (or the ready-made
:func:`limit_login_attempts`). Nothing is enforced at import time: :func:`init_rate_limits` gives
each app its own :class:`~flask_limiter.Limiter`, built from that app's Settings, and wraps the
declared views with it. So two apps in one process never share configuration, and two processes
share counters only when ``SOS_RATELIMIT_STORAGE`` names one storage (e.g. Redis) for both.

Requests are grouped before the view runs, from the request alone: bearer secrets, device ids and
account names are hashed, so the storage never holds a secret or a user name, and a refused
request costs no database work and no password hash.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many
from limits.errors import ConfigurationError

from backend.errors import RateLimited
from backend.settings import Settings, SettingsError

View = TypeVar("View", bound=Callable[..., Any])
_DECLARED = "_sos_rate_limits"  # the attribute holding a view's declared rules


@dataclass(frozen=True)
class RateRule:
    """One kind of limit: where its value is set, how requests are grouped, what they are."""

    scope: str  # the counter's name, shared by every view that takes this rule
    setting: str  # the Settings field holding the limit string, e.g. "30/minute"
    key: Callable[[], str | None]  # the request's group; None: the rule does not apply to it
    what: str  # for the error message: "too many <what>"
    methods: tuple[str, ...] | None = None  # None: every method counts


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def client_address() -> str:
    """The caller's address (the proxy's, unless SOS_TRUSTED_PROXIES says how many to trust)."""
    return request.remote_addr or "unknown"


def _json_body() -> dict[str, Any]:
    # Key functions must never fail (Flask-Limiter would take it for a storage failure): a body
    # that is too large, too deep or not JSON at all groups as "no body", and the view reports it.
    try:
        data = request.get_json(silent=True, cache=True)
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


def bearer_key() -> str | None:
    """A digest of the request's bearer secret (user token, case token or deployment key)."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    return _digest(secret) if scheme.lower() == "bearer" and secret else None


def device_key() -> str:
    """The body's ``device.device_id``; the client address when the body names no device."""
    device = _json_body().get("device")
    device_id = device.get("device_id") if isinstance(device, dict) else None
    if isinstance(device_id, str) and device_id.strip():
        return "device:" + _digest(device_id.strip())
    return "address:" + client_address()


def account_key() -> str | None:
    """The account name a login attempt is for, from a JSON body or a form."""
    if request.is_json:
        name = _json_body().get("username")
    else:
        try:
            name = request.form.get("username")
        except Exception:  # see _json_body
            return None
    if not isinstance(name, str) or not name.strip():
        return None
    return _digest(name.strip().casefold())


CASES_PER_DEVICE = RateRule(
    "cases-per-device", "ratelimit_case_device", device_key, "cases opened from this device"
)
CASES_PER_DEPLOYMENT = RateRule(
    "cases-per-deployment",
    "ratelimit_case_deployment",
    bearer_key,
    "cases opened with this deployment key",
)
# Only POSTs are attempts: a console login route also answers GET with its form.
LOGINS_PER_ACCOUNT = RateRule(
    "logins-per-account",
    "ratelimit_login_account",
    account_key,
    "login attempts for this account",
    methods=("POST",),
)
LOGINS_PER_ADDRESS = RateRule(
    "logins-per-address",
    "ratelimit_login_address",
    client_address,
    "login attempts from this address",
    methods=("POST",),
)
CALLS_PER_TOKEN = RateRule(
    "calls-per-token", "ratelimit_token", bearer_key, "API calls with this token"
)


def rate_limited(*rules: RateRule) -> Callable[[View], View]:
    """Declare limits a view takes; :func:`init_rate_limits` applies them to every app.

    The declaration is an attribute of the function, so it may sit above or below the route
    decorator, and wrappers made with ``functools.wraps`` keep it.
    """

    def declare(view: View) -> View:
        declared = getattr(view, _DECLARED, ())
        setattr(view, _DECLARED, declared + tuple(r for r in rules if r not in declared))
        return view

    return declare


def limit_login_attempts(view: View) -> View:
    """Limit password attempts per account name and per client address.

    The counters are shared by every login route (API token exchange, console sign-in), so
    an attacker gains nothing by switching between them. Only POSTs count; the account name is
    read from the JSON body's or the form's ``username`` field.
    """
    return rate_limited(LOGINS_PER_ACCOUNT, LOGINS_PER_ADDRESS)(view)


def limit_case_creation(view: View) -> View:
    """Limit new cases per device (or client address) and per deployment key."""
    return rate_limited(CASES_PER_DEVICE, CASES_PER_DEPLOYMENT)(view)


def _limit_string(settings: Settings, rule: RateRule) -> str:
    value: str = getattr(settings, rule.setting)
    try:
        parse_many(value)
    except ValueError:
        raise SettingsError(
            f"SOS_{rule.setting.upper()} must be a rate limit such as '30/minute', got {value!r}"
        ) from None
    return value


def init_rate_limits(app: Flask, settings: Settings) -> Limiter | None:
    """Build the app's limiter and apply the declared limits; call once blueprints are in."""
    if not settings.ratelimit_enabled:
        return None
    storage = settings.ratelimit_storage or "memory://"
    try:
        limiter = Limiter(
            key_func=client_address,
            storage_uri=storage,
            key_prefix=settings.ratelimit_key_prefix,
            strategy="fixed-window",
            # If the shared storage goes away, limit per process rather than refuse every call.
            in_memory_fallback_enabled=True,
        )
        limiter.init_app(app)
    except ConfigurationError as exc:
        raise SettingsError(f"SOS_RATELIMIT_STORAGE={storage!r} cannot be used: {exc}") from None
    app.extensions["sos_ratelimit"] = limiter

    for endpoint, view in list(app.view_functions.items()):
        rules: tuple[RateRule, ...] = getattr(view, _DECLARED, ())
        for rule in rules:
            # Stacked limits of one limiter are all checked by the innermost wrapper.
            view = limiter.shared_limit(
                _limit_string(settings, rule),
                scope=rule.scope,
                methods=list(rule.methods) if rule.methods else None,
                key_func=lambda rule=rule: rule.key() or "",
                exempt_when=lambda rule=rule: rule.key() is None,
                error_message=rule.what,
            )(view)
        app.view_functions[endpoint] = view

    from backend.api.framework import error_response  # here: the API imports this module

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(error: RateLimitExceeded) -> Response:
        retry_after = _seconds_until_reset(limiter, error)
        domain = RateLimited(
            f"too many {error.description}; retry in {retry_after} s", retry_after=retry_after
        )
        return error_response(domain)  # JSON like every domain error, with Retry-After

    return limiter


def retry_after_seconds(error: RateLimitExceeded) -> int:
    """Seconds until the limit that refused the current request lets calls through again."""
    return _seconds_until_reset(current_app.extensions["sos_ratelimit"], error)


def _seconds_until_reset(limiter: Limiter, error: RateLimitExceeded) -> int:
    breached = limiter.current_limit
    if breached is None:  # not expected: fall back to a whole window
        return int(error.limit.limit.get_expiry())
    return max(1, math.ceil(breached.window.reset_time - time.time()))
