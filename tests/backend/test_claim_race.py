"""Races: however many experts claim a case at once, one wins; a repeated create is one case.

Threads race through the app in this process (separate test clients, separate database
sessions); processes race through several ``sos-backend serve`` servers on one database.
Both run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from backend.app import create_app
from backend.services import accounts
from backend.settings import Settings
from tests.conftest import open_case
from tests.support.databases import DATABASES, database_for_servers
from tests.support.live import LiveBackend, free_port, start_backend

THREADS = 16
ROUNDS = 3


def race(count: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run ``attempt(i)`` in ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Any:
        barrier.wait(10)
        return attempt(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def assigned_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "case.assigned"]


# ---- threads in one process ------------------------------------------------------------------


@pytest.fixture
def claimers(seed, world) -> list[str]:
    """Tokens of THREADS distinct supporters of the case's group."""
    return [seed.token(seed.user(f"expert{i}", groups=[world.group])) for i in range(THREADS)]


def test_sixteen_threads_claiming_one_case_make_exactly_one_winner(app, api, world, claimers):
    for _round in range(ROUNDS):
        code, _ = open_case(api, world)

        def claim(i: int, code: str = code):
            response = app.test_client().post(
                f"/api/v1/cases/{code}/claim", headers={"Authorization": f"Bearer {claimers[i]}"}
            )
            return response.status_code, response.get_json()

        results = race(THREADS, claim)
        statuses = Counter(status for status, _ in results)
        assert statuses == {200: 1, 409: THREADS - 1}, statuses
        assert {body["error"]["code"] for status, body in results if status == 409} == {
            "already_assigned"
        }
        winner = next(body["assignee"]["username"] for status, body in results if status == 200)
        case = api.get(f"/cases/{code}", world.admin_token).get_json()
        assert case["assignee"]["username"] == winner
        events = api.get(f"/cases/{code}/events", world.admin_token).get_json()["events"]
        assert [e["data"]["assignee"]["username"] for e in assigned_events(events)] == [winner]


def test_conditional_assigns_racing_plain_assigns_never_overwrite_a_won_claim(
    app, api, world, claimers
):
    """Half the threads claim, half use assign with if_unassigned: still one winner."""
    code, _ = open_case(api, world)

    def attempt(i: int):
        client = app.test_client()
        headers = {"Authorization": f"Bearer {claimers[i]}"}
        if i % 2:
            return client.post(f"/api/v1/cases/{code}/claim", headers=headers).status_code
        body = {"assignee": "me", "if_unassigned": True}
        return client.post(f"/api/v1/cases/{code}/assign", headers=headers, json=body).status_code

    assert Counter(race(THREADS, attempt)) == {200: 1, 409: THREADS - 1}
    events = api.get(f"/cases/{code}/events", world.admin_token).get_json()["events"]
    assert len(assigned_events(events)) == 1


def test_experts_connecting_at_once_to_an_unassigned_case_assign_it_once(app, api, world, claimers):
    code, _ = open_case(api, world)

    def connect(i: int):
        response = app.test_client().post(
            f"/api/v1/cases/{code}/connect", headers={"Authorization": f"Bearer {claimers[i]}"}
        )
        return response.status_code

    statuses = Counter(race(8, connect))
    # One expert gets the session; the others are told someone is connected already.
    assert statuses == {200: 1, 409: 7}, statuses
    case = api.get(f"/cases/{code}", world.admin_token).get_json()
    assert case["assignee"]["id"] == case["connected_expert"]["id"]
    events = api.get(f"/cases/{code}/events", world.admin_token).get_json()["events"]
    assert len(assigned_events(events)) == 1


def test_the_same_idempotency_key_sent_by_many_threads_opens_one_case(app, api, world, runtime):
    key = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {world.deployment_key}", "Idempotency-Key": key}

    def create(_i: int):
        response = app.test_client().post(
            "/api/v1/agent/cases", headers=headers, json={"source": "first_launch"}
        )
        return response.status_code, response.get_json()

    results = race(THREADS, create)
    assert Counter(status for status, _ in results) == {201: 1, 200: THREADS - 1}, results
    (code,) = {body["case"]["code"] for _, body in results}
    tokens = {body["case_token"] for _, body in results}
    assert len(tokens) == THREADS  # each answer carries a fresh token for the one case
    queue = api.get("/cases", world.admin_token).get_json()["cases"]
    assert [c["code"] for c in queue] == [code]
    events = api.get("/events", world.admin_token, query_string={"after": 0}).get_json()["events"]
    assert [e["type"] for e in events] == ["case.created"]
    assert all(api.get(f"/cases/{code}", token).status_code == 200 for token in tokens)


def test_different_idempotency_keys_at_once_open_one_case_each(app, api, world):
    def create(i: int):
        response = app.test_client().post(
            "/api/v1/agent/cases",
            headers={
                "Authorization": f"Bearer {world.deployment_key}",
                "Idempotency-Key": f"key-{i}",
            },
            json={},
        )
        return response.status_code, response.get_json()["case"]["code"]

    results = race(8, create)
    assert {status for status, _ in results} == {201}
    assert len({code for _, code in results}) == 8


# ---- several server processes on one database -------------------------------------------------


def start_servers(tmp_path: Path, count: int, database_url: str | None) -> list[LiveBackend]:
    """One seeded server plus ``count - 1`` more processes serving the same database."""
    first = start_backend(tmp_path, database_url=database_url)
    servers = [first]
    try:
        for i in range(2, count + 1):
            instance = tmp_path / f"server-{i}"
            instance.mkdir()
            env = first.env | {
                "SOS_INSTANCE_PATH": str(instance),
                "SOS_DATABASE_URL": first.database_url,
            }
            servers.append(LiveBackend(instance, first.database_url, free_port(), env))
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda server: server.start(), servers[1:]))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def seed_claimers(server: LiveBackend, count: int) -> list[str]:
    """Supporters of the server's group, with tokens, written straight to the database."""
    app = create_app(Settings.from_env(server.env, password_hash_fast=True))
    rt = app.extensions["sos"]
    tokens = []
    try:
        with rt.store.write() as s:
            ctx = rt.context()
            for i in range(count):
                user = accounts.create_user(
                    s,
                    ctx,
                    username=f"racer{i}",
                    password="password-123",
                    role="supporter",
                    display_name=f"Racer {i}",
                    group_ids=[server.group_id],
                )
                tokens.append(accounts.create_token(s, ctx, user, "race")[1])
    finally:
        rt.close()
    return tokens


@pytest.fixture(scope="module", params=DATABASES)
def server_database(request) -> Iterator[str | None]:
    with database_for_servers(request.param) as url:  # SQLite: the first server's file
        yield url


@pytest.fixture(scope="module")
def servers(tmp_path_factory, server_database) -> Iterator[list[LiveBackend]]:
    """Four processes on one database, shared by the tests below (each uses its own cases)."""
    servers = start_servers(tmp_path_factory.mktemp("servers"), 4, server_database)
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_claims_racing_through_four_server_processes_make_exactly_one_winner(servers):
    first = servers[0]
    tokens = seed_claimers(first, THREADS)
    session = [requests.Session() for _ in range(THREADS)]
    for _round in range(ROUNDS):
        opened = first.api("POST", "/agent/cases", first.deployment_key, json={})
        assert opened.status_code == 201, opened.text
        code = opened.json()["case"]["code"]

        def claim(i: int, code: str = code):
            server = servers[i % len(servers)]
            response = session[i].post(
                f"{server.url}/api/v1/cases/{code}/claim",
                headers={"Authorization": f"Bearer {tokens[i]}"},
                timeout=30,
            )
            return response.status_code, response.json()

        results = race(THREADS, claim)
        assert Counter(status for status, _ in results) == {200: 1, 409: THREADS - 1}, results
        assert {body["error"]["code"] for status, body in results if status == 409} == {
            "already_assigned"
        }
        winner = next(body["assignee"]["username"] for status, body in results if status == 200)
        for server in servers:  # every process reads the same single assignment
            response = server.api("GET", f"/cases/{code}/events", first.admin_token)
            events = response.json()["events"]
            assert [e["data"]["assignee"]["username"] for e in assigned_events(events)] == [winner]


@pytest.mark.slow
def test_one_idempotency_key_sent_through_four_server_processes_opens_one_case(servers):
    key = str(uuid.uuid4())

    def create(i: int):
        server = servers[i % len(servers)]
        response = server.api(
            "POST",
            "/agent/cases",
            servers[0].deployment_key,
            json={"source": "sos_button"},
            headers={"Idempotency-Key": key},
        )
        return response.status_code, response.json()

    before = servers[0].api("GET", "/cases").json()["counts"]
    results = race(THREADS, create)
    assert Counter(status for status, _ in results) == {201: 1, 200: THREADS - 1}, results
    (code,) = {body["case"]["code"] for _, body in results}
    after = servers[0].api("GET", "/cases").json()["counts"]
    assert sum(after.values()) == sum(before.values()) + 1
    events = servers[0].api("GET", "/events", params={"after": 0}).json()["events"]
    assert [e["type"] for e in events if e["case_code"] == code] == ["case.created"]
