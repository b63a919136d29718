"""Durability: a server killed with SIGKILL while agents open cases loses none it acknowledged,
and agents re-sending every request with its Idempotency-Key make no duplicates.

Client threads open cases against a real ``sos-backend serve``; the server is killed in the
middle of the stream (some requests in flight, some refused while it is down) and restarted on
the same database and port. Runs on SQLite (one process, and two workers) and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.support.databases import DATABASES, database_for_servers
from tests.support.live import LiveBackend, running, start_backend

CLIENTS = 4
REQUESTS_PER_CLIENT = 75  # 300 in all
KILL_AFTER_ACKNOWLEDGED = 60
TIME_BUDGET = 20.0  # seconds for the stream of creations, restart included

# Each request has its own device, so only the per-deployment and per-token limits could
# interfere: they are raised so that this test measures durability, not rate limiting.
UNLIMITED = {
    "SOS_RATELIMIT_CASE_DEPLOYMENT": "100000/minute",
    "SOS_RATELIMIT_TOKEN": "100000/minute",
}


@dataclass
class Sent:
    """What the clients sent and what came back."""

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> body
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> code, for 201s
    failed: list[str] = field(default_factory=list)  # keys with no answer
    other: list[tuple[str, int]] = field(default_factory=list)  # unexpected statuses
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(params=[*DATABASES, "sqlite, 2 workers"])
def server_database(request) -> Iterator[tuple[str | None, tuple[str, ...]]]:
    kind, _, workers = request.param.partition(", ")
    serve_args = ("--workers", workers.split()[0]) if workers else ()
    with database_for_servers(kind) as url:
        yield url, serve_args


@pytest.fixture
def live(tmp_path, server_database) -> Iterator[LiveBackend]:
    url, serve_args = server_database
    server = start_backend(tmp_path, database_url=url, env=UNLIMITED, serve_args=serve_args)
    yield server
    server.stop()


def kill_server(live: LiveBackend) -> None:
    """SIGKILL the server; with workers, they end with it (and free the port) by themselves."""
    workers = live.worker_pids()
    live.kill()
    wait_for(lambda: not any(running(w) for w in workers), 10)


def open_case(live: LiveBackend, session: requests.Session, key: str, body: dict[str, Any]):
    return session.post(
        f"{live.url}/api/v1/agent/cases",
        json=body,
        headers={"Authorization": f"Bearer {live.deployment_key}", "Idempotency-Key": key},
        timeout=(1, 10),
    )


def run_client(live: LiveBackend, sent: Sent, client: int, deadline: float) -> None:
    session = requests.Session()
    for i in range(REQUESTS_PER_CLIENT):
        if time.monotonic() > deadline:
            return
        key = str(uuid.uuid4())
        body = {
            "source": "sos_button",
            "description": f"durability {client}-{i}",
            "device": {"device_id": f"durability-{client}-{i}", "hostname": f"pc-{client}-{i}"},
        }
        with sent.lock:
            sent.bodies[key] = body
        try:
            response = open_case(live, session, key, body)
        except requests.RequestException:
            with sent.lock:
                sent.failed.append(key)
            session.close()  # its pooled connection died with the server
            session = requests.Session()
            time.sleep(0.2)  # the server is down: pace the attempts while it restarts
            continue
        with sent.lock:
            if response.status_code == 201:
                sent.acknowledged[key] = response.json()["case"]["code"]
            else:
                sent.other.append((key, response.status_code))
    session.close()


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def all_case_codes(live: LiveBackend) -> list[str]:
    codes: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = live.api("GET", "/cases", params=params)
        assert page.status_code == 200, page.text
        data = page.json()
        codes.extend(case["code"] for case in data["cases"])
        cursor = data["next_cursor"]
        if not cursor:
            return codes


@pytest.mark.slow
def test_sigkill_while_opening_cases_loses_no_acknowledged_case_and_resending_duplicates_none(
    live,
):
    sent = Sent()
    deadline = time.monotonic() + TIME_BUDGET
    clients = [
        threading.Thread(target=run_client, args=(live, sent, n, deadline), daemon=True)
        for n in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    wait_for(lambda: len(sent.acknowledged) >= KILL_AFTER_ACKNOWLEDGED, 15)
    kill_server(live)
    with sent.lock:
        acknowledged_before_kill = len(sent.acknowledged)
    wait_for(lambda: len(sent.failed) >= CLIENTS, 5)  # the clients have met the dead server
    live.start()
    for thread in clients:
        thread.join(TIME_BUDGET + 15)
        assert not thread.is_alive()

    assert len(sent.acknowledged) > acknowledged_before_kill, "clients went on after the restart"
    assert not sent.other, sent.other

    # Every acknowledged case survived the kill.
    for key, code in sent.acknowledged.items():
        response = live.api("GET", f"/cases/{code}")
        assert response.status_code == 200, (key, code, response.text)
        assert response.json()["description"] == sent.bodies[key]["description"]

    # Agents re-send everything, answered or not, with the same keys: nothing is duplicated.
    def resend(key: str) -> tuple[str, int, str]:
        with requests.Session() as session:
            response = open_case(live, session, key, sent.bodies[key])
        assert response.status_code in (200, 201), response.text
        return key, response.status_code, response.json()["case"]["code"]

    keys = list(sent.bodies)
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(resend, keys))
    statuses = Counter(status for _, status, _ in first)
    code_of = {key: code for key, _, code in first}
    for key, code in sent.acknowledged.items():
        assert code_of[key] == code, "a re-sent acknowledged request answers its first case"
    assert all(status == 200 for key, status, _ in first if key in sent.acknowledged), (
        "a re-sent acknowledged request creates nothing"
    )
    assert statuses[201] <= len(sent.failed), "only requests never answered can create now"

    # A second round changes nothing: each key maps to one case, for good.
    with ThreadPoolExecutor(8) as pool:
        second = list(pool.map(resend, keys))
    assert {key: code for key, _, code in second} == code_of
    assert {status for _, status, _ in second} == {200}

    codes = all_case_codes(live)
    assert len(codes) == len(set(codes))
    assert len(codes) == len(keys), "one case per distinct Idempotency-Key, no more, no less"
    assert set(codes) == set(code_of.values())
