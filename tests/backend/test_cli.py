"""``sos-backend``: administration commands, and refusing insecure settings at start-up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.app import create_app
from backend.cli import main
from backend.models import Deployment, Event
from backend.settings import DEV_SECRET_KEY, Settings

Invoke = Callable[..., Result]
# Should a start-up check ever let serve through, it fails at once instead of serving forever.
NO_LISTEN = ("--host", "256.256.256.256")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {"SOS_INSTANCE_PATH": str(tmp_path / "instance")}


@pytest.fixture
def sos(cli_env) -> Invoke:
    """Run ``sos-backend ARGS`` in this process; fails the test on a non-zero exit by default."""
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True, env: dict[str, str] | None = None, **kw) -> Result:
        result = runner.invoke(main, list(args), env=cli_env | (env or {}), **kw)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


@pytest.fixture
def api_for(cli_env) -> Callable[..., FlaskClient]:
    """A test client of the app the CLI administers (same instance folder and database)."""
    runtimes = []

    def make(**env: str) -> FlaskClient:
        app = create_app(Settings.from_env(cli_env | env))
        runtimes.append(app.extensions["sos"])
        return app.test_client()

    yield make
    for runtime in runtimes:
        runtime.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def helpdesk(sos) -> dict:
    sos("init-db")
    return json.loads(sos("create-group", "Helpdesk", "--json").output)


def test_init_db_creates_the_database_in_the_instance_folder(sos, cli_env):
    result = sos("init-db")
    assert "database is up to date" in result.output
    assert (Path(cli_env["SOS_INSTANCE_PATH"]) / "sos.sqlite3").is_file()


def test_create_group_prints_its_id_and_refuses_a_duplicate(sos, helpdesk):
    assert helpdesk["name"] == "Helpdesk" and isinstance(helpdesk["id"], int)
    again = sos("create-group", "Helpdesk", ok=False)
    assert again.exit_code != 0 and "Helpdesk" in again.output


def test_create_user_with_password_can_log_in_through_the_api(sos, helpdesk, api_for):
    args = ["create-user", "alice", "--password", "alice-secret-1", "--group", "Helpdesk"]
    user = json.loads(sos(*args, "--display-name", "Alice Martin", "--json").output)
    assert user["username"] == "alice" and user["role"] == "supporter"
    client = api_for()
    login = client.post(
        "/api/v1/auth/token", json={"username": "alice", "password": "alice-secret-1"}
    )
    assert login.status_code == 201, login.get_json()
    me = client.get("/api/v1/me", headers=bearer(login.get_json()["token"])).get_json()
    assert me["display_name"] == "Alice Martin"
    assert [g["name"] for g in me["groups"]] == ["Helpdesk"]
    wrong = client.post("/api/v1/auth/token", json={"username": "alice", "password": "nope"})
    assert wrong.status_code == 401


def test_create_user_prompts_for_the_password_when_not_given(sos, helpdesk, api_for):
    sos("create-user", "root", "--role", "admin", input="admin-secret-1\nadmin-secret-1\n")
    login = api_for().post(
        "/api/v1/auth/token", json={"username": "root", "password": "admin-secret-1"}
    )
    assert login.status_code == 201


def test_create_user_refuses_short_passwords_and_unknown_groups(sos, helpdesk):
    short = sos("create-user", "bob", "--password", "short", ok=False)
    assert short.exit_code != 0 and "8 characters" in short.output
    unknown = sos("create-user", "bob", "--password", "long-enough-1", "--group", "Nope", ok=False)
    assert unknown.exit_code != 0 and "Nope" in unknown.output


def test_create_deployment_prints_a_working_key_once_and_stores_only_its_hash(
    sos, helpdesk, api_for
):
    created = json.loads(
        sos("create-deployment", "--name", "Acme agent", "--group", "Helpdesk", "--json").output
    )
    key = created["key"]
    assert key.startswith("sosd_") and created["name"] == "Acme agent"
    client = api_for()
    config = client.get("/api/v1/agent/config", headers=bearer(key))
    assert config.status_code == 200
    assert config.get_json()["deployment"] == {"id": created["id"], "name": "Acme agent"}
    opened = client.post("/api/v1/agent/cases", headers=bearer(key), json={"source": "api"})
    assert opened.status_code == 201
    runtime = client.application.extensions["sos"]
    with runtime.store.read() as s:
        stored = s.scalar(select(Deployment).where(Deployment.id == created["id"]))
        assert key not in [getattr(stored, c.key) for c in Deployment.__table__.columns]
        assert stored.key_hash and stored.key_hash != key
    listed = client.get("/api/v1/deployments", headers=bearer(admin_token(sos)))
    assert key not in listed.get_data(as_text=True)


def admin_token(sos) -> str:
    sos("create-user", "root", "--role", "admin", "--password", "admin-secret-1")
    return json.loads(sos("create-token", "root", "--json").output)["token"]


def test_create_deployment_text_output_says_the_key_is_shown_once(sos, helpdesk):
    result = sos("create-deployment", "--name", "Agent", "--group", "Helpdesk")
    assert "shown once" in result.output and "sosd_" in result.output


def test_create_deployment_refuses_unknown_fields_and_groups(sos, helpdesk):
    fields = sos(
        "create-deployment", "--name", "A", "--group", "Helpdesk", "--fields", "phone", ok=False
    )
    assert fields.exit_code != 0 and "phone" in fields.output
    group = sos("create-deployment", "--name", "A", "--group", "Nope", ok=False)
    assert group.exit_code != 0 and "Nope" in group.output


def test_create_token_prints_a_token_that_authenticates_its_user(sos, helpdesk, api_for):
    sos("create-user", "alice", "--password", "alice-secret-1", "--group", "Helpdesk")
    plain = sos("create-token", "alice").output.strip()
    as_json = json.loads(sos("create-token", "alice", "--name", "laptop", "--json").output)
    client = api_for()
    for token in (plain, as_json["token"]):
        assert token.startswith("sosu_")
        me = client.get("/api/v1/me", headers=bearer(token))
        assert me.status_code == 200 and me.get_json()["username"] == "alice"
    unknown = sos("create-token", "nobody", ok=False)
    assert unknown.exit_code != 0 and "nobody" in unknown.output


def test_expire_records_each_expiry_once_however_often_it_runs(sos, helpdesk, api_for):
    key = json.loads(
        sos("create-deployment", "--name", "A", "--group", "Helpdesk", "--json").output
    )["key"]
    client = api_for(SOS_CASE_TTL="0.5")
    for _ in range(2):
        client.post("/api/v1/agent/cases", headers=bearer(key), json={})
    time.sleep(0.7)
    first = sos("expire")
    assert first.output.startswith("2 case(s) expired")
    second = sos("expire")
    assert second.output.startswith("0 case(s) expired")
    with client.application.extensions["sos"].store.read() as s:
        expired = s.scalars(select(Event).where(Event.type == "case.expired")).all()
        assert len(expired) == 2 and len({e.case_id for e in expired}) == 2


def test_demo_seeds_users_an_agent_key_and_cases_that_work(sos, api_for):
    data = json.loads(sos("demo", "--json").output)
    client = api_for()
    login = client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": data["passwords"]["admin"]}
    )
    assert login.status_code == 201
    cases = client.get("/api/v1/cases", headers=bearer(login.get_json()["token"])).get_json()
    assert len(cases["cases"]) == 2
    assert (
        client.get("/api/v1/agent/config", headers=bearer(data["deployment_key"])).status_code
        == 200
    )
    alice = client.post(
        "/api/v1/auth/token", json={"username": "alice", "password": data["passwords"]["alice"]}
    )
    assert alice.status_code == 201


def test_demo_runs_again_on_seeded_data_and_changes_the_passwords(sos, api_for):
    first = json.loads(sos("demo", "--json").output)
    second = json.loads(sos("demo", "--json").output)
    assert first["passwords"]["admin"] != second["passwords"]["admin"]
    client = api_for()
    old = {"username": "admin", "password": first["passwords"]["admin"]}
    new = {"username": "admin", "password": second["passwords"]["admin"]}
    assert client.post("/api/v1/auth/token", json=old).status_code == 401
    assert client.post("/api/v1/auth/token", json=new).status_code == 201


# ---- refusing insecure start-up ---------------------------------------------------------------


def run_serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOS_")}
    clean.update(SOS_INSTANCE_PATH=str(tmp_path / "instance"), **env)
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "serve", *NO_LISTEN],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_serve_refuses_the_development_secret_key_outside_debug(tmp_path):
    result = run_serve(tmp_path, SOS_SECRET_KEY=DEV_SECRET_KEY)
    assert result.returncode != 0
    assert "SOS_SECRET_KEY is the development key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "instance" / "sos.sqlite3").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_says_so_when_the_port_is_taken(sos, workers):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = sos("serve", "--port", port, "--workers", workers, ok=False)
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "another server is using the port?" in result.output


def test_serve_refuses_a_short_secret_key_and_a_malformed_setting(sos):
    short = sos("serve", *NO_LISTEN, ok=False, env={"SOS_SECRET_KEY": "too-short"})
    assert short.exit_code != 0 and "shorter than 32 characters" in short.output
    debug = sos("serve", *NO_LISTEN, ok=False, env={"SOS_DEBUG": "maybe"})
    assert debug.exit_code != 0 and "yes/no" in debug.output
    ttl = sos("serve", *NO_LISTEN, ok=False, env={"SOS_CASE_TTL": "-5"})
    assert ttl.exit_code != 0 and "SOS_CASE_TTL" in ttl.output


def test_the_development_secret_key_is_accepted_in_debug_mode():
    settings = Settings(secret_key=DEV_SECRET_KEY, debug=True)
    assert settings.resolve_secret_key() == DEV_SECRET_KEY
