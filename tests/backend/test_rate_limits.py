"""Rate limits: each one refuses with 429, Retry-After and a JSON error past its count, leaves
other devices, accounts and tokens alone, and is shared through Redis by several apps.

Every test here sets small limits through ``limits`` (a fixture overridden by parametrizing);
the rest of the suite runs with the defaults, which are far above what it does.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from limits import parse_many

from backend.app import Runtime, create_app
from backend.clock import FakeClock
from backend.models import Base
from backend.ratelimit import init_rate_limits, limit_login_attempts
from backend.services import accounts
from backend.settings import Settings, SettingsError
from tests.support.databases import missing

# Read at import: the autouse fixture hides SOS_* variables from the tests themselves.
REDIS_URL = os.environ.get("SOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "password-123"


@pytest.fixture
def limits() -> dict[str, Any]:
    return {}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        instance_path=tmp_path / "instance",
        database_url=f"sqlite:///{tmp_path / 'limits.sqlite3'}",
        debug=True,
        password_hash_fast=True,
        feed_poll_interval=0.1,
        **overrides,
    )


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock, limits: dict[str, Any]) -> Iterator[Flask]:
    """Overrides the suite's app: SQLite only (limits do not touch the database)."""
    app = create_app(make_settings(tmp_path, **limits), clock=clock)
    runtime: Runtime = app.extensions["sos"]
    Base.metadata.create_all(runtime.store.engine)
    yield app
    runtime.close()


def open_case(api, key: str, device: str | None = None, address: str = "127.0.0.1"):
    body: dict[str, Any] = {"source": "sos_button"}
    if device is not None:
        body["device"] = {"device_id": device}
    return api.post("/agent/cases", key, json=body, environ_base={"REMOTE_ADDR": address})


def login(client, username: str, password: str = PASSWORD, address: str = "127.0.0.1"):
    return client.post(
        "/api/v1/auth/token",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def assert_rate_limited(response, what: str) -> int:
    """A 429 with Retry-After and the JSON error; returns the seconds to wait."""
    assert response.status_code == 429, response.get_json()
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"] == f"too many {what}; retry in {retry_after} s"
    return retry_after


@pytest.mark.parametrize("limits", [{"ratelimit_case_device": "3/minute"}])
def test_a_device_opening_too_many_cases_gets_429_and_other_devices_still_open_cases(api, world):
    for _ in range(3):
        assert open_case(api, world.deployment_key, device="device-a").status_code == 201
    assert_rate_limited(
        open_case(api, world.deployment_key, device="device-a"), "cases opened from this device"
    )
    assert open_case(api, world.deployment_key, device="device-b").status_code == 201
    cases = api.get("/cases", world.admin_token).get_json()["cases"]
    assert len(cases) == 4  # the refused request opened nothing


@pytest.mark.parametrize("limits", [{"ratelimit_case_device": "2/minute"}])
def test_cases_without_a_device_id_are_limited_per_client_address(api, world):
    for _ in range(2):
        assert open_case(api, world.deployment_key, address="10.0.0.1").status_code == 201
    assert_rate_limited(
        open_case(api, world.deployment_key, address="10.0.0.1"), "cases opened from this device"
    )
    assert open_case(api, world.deployment_key, address="10.0.0.2").status_code == 201


@pytest.mark.parametrize("limits", [{"ratelimit_case_deployment": "4/minute"}])
def test_a_deployment_key_opening_too_many_cases_gets_429_and_other_keys_still_open_cases(
    api, world, seed
):
    for i in range(4):
        assert open_case(api, world.deployment_key, device=f"device-{i}").status_code == 201
    assert_rate_limited(
        open_case(api, world.deployment_key, device="device-new"),
        "cases opened with this deployment key",
    )
    _, other_key = seed.deployment(world.other_group)
    assert open_case(api, other_key, device="device-new").status_code == 201


@pytest.mark.parametrize("limits", [{"ratelimit_login_account": "3/minute"}])
def test_too_many_logins_for_one_account_get_429_and_other_accounts_still_log_in(client, world):
    for _ in range(3):
        assert login(client, "alice", "wrong-password").status_code == 401
    # Even the right password is refused now: guessing cannot go on.
    assert_rate_limited(login(client, "alice"), "login attempts for this account")
    # The account name is grouped without regard to case, so "ALICE" is no way round.
    assert_rate_limited(login(client, "ALICE"), "login attempts for this account")
    assert login(client, "bob").status_code == 201


@pytest.mark.parametrize("limits", [{"ratelimit_login_address": "3/minute"}])
def test_too_many_logins_from_one_address_get_429_and_other_addresses_still_log_in(client, world):
    for name in ("alice", "bob", "olga"):
        assert login(client, name, "wrong-password", address="10.0.0.1").status_code == 401
    assert_rate_limited(
        login(client, "admin", address="10.0.0.1"), "login attempts from this address"
    )
    assert login(client, "admin", address="10.0.0.2").status_code == 201


@pytest.mark.parametrize("limits", [{"ratelimit_token": "5/minute"}])
def test_too_many_calls_with_one_token_get_429_and_other_tokens_still_pass(api, world):
    for _ in range(5):
        assert api.get("/cases", world.alice_token).status_code == 200
    assert_rate_limited(api.get("/me", world.alice_token), "API calls with this token")
    assert_rate_limited(
        api.get("/events", world.alice_token, query_string={"after": 0, "wait": 0}),
        "API calls with this token",
    )
    assert api.get("/cases", world.bob_token).status_code == 200
    assert api.get("/cases", world.admin_token).status_code == 200


@pytest.mark.parametrize("limits", [{"ratelimit_token": "3/minute"}])
def test_calls_without_a_token_do_not_count_against_the_token_limit(client, world):
    for _ in range(5):
        assert login(client, "alice").status_code == 201
    assert client.get("/healthz").status_code == 200


def test_a_form_login_route_shares_the_login_limits_and_showing_its_form_is_free(tmp_path):
    """What a console sign-in route gets from @limit_login_attempts, above or below its route."""
    app = Flask(__name__)

    @limit_login_attempts
    @app.route("/login", methods=["GET", "POST"])
    def form_login():
        return ("the form", 200) if request.method == "GET" else ("wrong password", 401)

    @app.post("/token")
    @limit_login_attempts
    def token_login():
        return {"error": "wrong password"}, 401

    init_rate_limits(app, make_settings(tmp_path, ratelimit_login_account="3/minute"))
    client = app.test_client()
    assert all(client.get("/login").status_code == 200 for _ in range(5))
    assert client.post("/login", data={"username": "alice"}).status_code == 401
    assert client.post("/token", json={"username": "Alice"}).status_code == 401
    assert client.post("/login", data={"username": "alice "}).status_code == 401
    assert_rate_limited(
        client.post("/token", json={"username": "alice"}), "login attempts for this account"
    )
    assert_rate_limited(
        client.post("/login", data={"username": "alice"}), "login attempts for this account"
    )
    assert client.post("/login", data={"username": "bob"}).status_code == 401


@pytest.mark.parametrize(
    "limits", [{"ratelimit_enabled": False, "ratelimit_case_device": "1/minute"}]
)
def test_with_rate_limits_disabled_nothing_is_refused(api, world):
    for _ in range(3):
        assert open_case(api, world.deployment_key, device="device-a").status_code == 201


def test_the_default_token_limit_leaves_room_for_back_to_back_long_polls():
    """A client long-polling the feed makes a few calls a minute when the queue is quiet, and
    about one per change when it is busy: the default allows at least ten calls a second."""
    for item in parse_many(Settings().ratelimit_token):
        assert item.amount / item.get_expiry() >= 10


def test_rate_limit_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "SOS_RATELIMIT_ENABLED": "0",
            "SOS_RATELIMIT_STORAGE": "redis://cache:6379/2",
            "SOS_RATELIMIT_KEY_PREFIX": "sos-eu",
            "SOS_RATELIMIT_CASE_DEVICE": "5/minute;50/hour",
            "SOS_RATELIMIT_CASE_DEPLOYMENT": "100/minute",
            "SOS_RATELIMIT_LOGIN_ACCOUNT": "3/minute",
            "SOS_RATELIMIT_LOGIN_ADDRESS": "20/minute",
            "SOS_RATELIMIT_TOKEN": "50/second",
            "SOS_TRUSTED_PROXIES": "1",
        }
    )
    assert settings.ratelimit_enabled is False
    assert settings.ratelimit_storage == "redis://cache:6379/2"
    assert settings.ratelimit_key_prefix == "sos-eu"
    assert settings.ratelimit_case_device == "5/minute;50/hour"
    assert settings.ratelimit_case_deployment == "100/minute"
    assert settings.ratelimit_login_account == "3/minute"
    assert settings.ratelimit_login_address == "20/minute"
    assert settings.ratelimit_token == "50/second"
    assert settings.trusted_proxies == 1


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SOS_RATELIMIT_TOKEN", "lots", "SOS_RATELIMIT_TOKEN must be a rate limit"),
        ("SOS_RATELIMIT_ENABLED", "maybe", "expected a yes/no value"),
        ("SOS_TRUSTED_PROXIES", "two", "SOS_TRUSTED_PROXIES must be the number"),
    ],
)
def test_bad_rate_limit_settings_are_refused_with_a_clear_message(variable, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_an_unknown_rate_limit_storage_is_refused_at_start(tmp_path):
    with pytest.raises(SettingsError, match="SOS_RATELIMIT_STORAGE='nosuch://x' cannot be used"):
        create_app(make_settings(tmp_path, ratelimit_storage="nosuch://x"))


@pytest.mark.parametrize("limits", [{"trusted_proxies": 1, "ratelimit_login_address": "2/minute"}])
def test_behind_a_trusted_proxy_logins_are_limited_per_forwarded_address(client, world):
    def attempt(forwarded_for: str):
        return client.post(
            "/api/v1/auth/token",
            json={"username": "alice", "password": "wrong-password"},
            headers={"X-Forwarded-For": forwarded_for},
            environ_base={"REMOTE_ADDR": "10.9.9.9"},  # the proxy
        )

    assert [attempt("203.0.113.7").status_code for _ in range(2)] == [401, 401]
    assert_rate_limited(attempt("203.0.113.7"), "login attempts from this address")
    assert attempt("198.51.100.4").status_code == 401  # another customer behind the same proxy


@pytest.mark.parametrize(
    "limits",
    [{"ratelimit_storage": "redis://127.0.0.1:1/0", "ratelimit_login_account": "2/minute"}],
)
def test_an_unreachable_storage_falls_back_to_limits_in_this_process(client, world):
    """Calls go on being served, and limited, while the shared storage is down."""
    assert [login(client, "alice", "wrong").status_code for _ in range(2)] == [401, 401]
    assert_rate_limited(login(client, "alice"), "login attempts for this account")
    assert login(client, "bob").status_code == 201


# ---- several apps sharing one Redis -----------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the test Redis; its keys are deleted afterwards."""
    try:
        import redis
    except ImportError:
        missing("the redis package is not installed (pip install -e '.[redis]')")
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        connection.ping()
    except redis.RedisError as exc:
        missing(f"Redis not reachable at {REDIS_URL}: {exc.__class__.__name__}")
    prefix = f"sos-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        keys = list(connection.scan_iter(match=f"*{prefix}*"))
        if keys:
            connection.delete(*keys)
        connection.close()


def test_two_apps_on_one_redis_share_their_counters(tmp_path, redis_prefix):
    import redis

    settings = make_settings(
        tmp_path,
        ratelimit_storage=REDIS_URL,
        ratelimit_key_prefix=redis_prefix,
        ratelimit_login_account="3/minute",
    )
    first, second = create_app(settings), create_app(settings)
    Base.metadata.create_all(first.extensions["sos"].store.engine)
    rt = first.extensions["sos"]
    with rt.store.write() as s:
        accounts.create_user(s, rt.context(), username="alice", password=PASSWORD, role="supporter")
    try:
        one, two = first.test_client(), second.test_client()
        assert login(one, "alice", "wrong").status_code == 401
        assert login(two, "alice", "wrong").status_code == 401
        assert login(one, "alice").status_code == 201
        assert_rate_limited(login(two, "alice"), "login attempts for this account")
        assert_rate_limited(login(one, "alice"), "login attempts for this account")
        stored = redis.Redis.from_url(REDIS_URL).keys(f"*{redis_prefix}*")
        assert stored, "the counters are in Redis, under this test's prefix"
    finally:
        first.extensions["sos"].close()
        second.extensions["sos"].close()
