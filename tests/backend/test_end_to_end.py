"""End to end over HTTP against real ``sos-backend serve`` processes.

A deployment key opens a case, a supporter's long-poll sees it at once, the supporter claims it,
both sides connect, they chat, the customer closes the case, and the closed case takes no more
messages. A long-poll on one server process wakes for a case opened through another, on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import requests

from tests.support.databases import private_postgres
from tests.support.live import LiveBackend, free_port, start_backend

pytestmark = pytest.mark.slow


class LongPoll:
    """A feed long-poll running in a thread, timing when it answers."""

    def __init__(self, server: LiveBackend, token: str, cursor: str, wait: float) -> None:
        self.server, self.token, self.cursor, self.wait = server, token, cursor, wait
        self.response: requests.Response | None = None
        self.answered_at = 0.0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.response = self.server.api(
                "GET", "/events", self.token, params={"after": self.cursor, "wait": self.wait}
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc
        self.answered_at = time.monotonic()

    def start(self) -> LongPoll:
        self.thread.start()
        time.sleep(0.3)  # let the request reach the server and start waiting
        assert self.thread.is_alive(), "the long-poll answered before anything happened"
        return self

    def result(self) -> dict[str, Any]:
        self.thread.join(self.wait + 10)
        if self.error is not None:
            raise self.error
        assert self.response is not None and self.response.status_code == 200
        return self.response.json()


def feed_cursor(server: LiveBackend, token: str) -> str:
    response = server.api("GET", "/events", token)
    assert response.status_code == 200 and response.json()["events"] == []
    return response.json()["cursor"]


@pytest.fixture
def server(tmp_path) -> Iterator[LiveBackend]:
    live = start_backend(tmp_path)
    yield live
    live.stop()


def test_a_case_goes_from_agent_to_long_poll_to_chat_to_closed_over_http(server):
    supporter, key = server.supporter_token, server.deployment_key

    # A supporter is waiting on the feed before the customer asks for help.
    poll = LongPoll(server, supporter, feed_cursor(server, supporter), wait=10).start()
    opened_at = time.monotonic()
    opened = server.api(
        "POST",
        "/agent/cases",
        key,
        json={
            "source": "sos_button",
            "customer": {"name": "Bob Durand", "email": "bob@example.com"},
            "description": "The printer prints blank pages",
            "device": {"hostname": "bob-pc", "os": "Windows 11", "agent_version": "0.1.0"},
        },
        headers={"Idempotency-Key": "e2e-1"},
    )
    assert opened.status_code == 201, opened.text
    code, case_token = opened.json()["case"]["code"], opened.json()["case_token"]
    assert opened.json()["case"]["status"] == "new"

    seen = poll.result()
    assert [(e["type"], e["case_code"]) for e in seen["events"]] == [("case.created", code)]
    assert poll.answered_at - opened_at < 2.0, "the long-poll waited instead of waking up"

    claimed = server.api("POST", f"/cases/{code}/claim", supporter)
    assert claimed.status_code == 200 and claimed.json()["assignee"]["username"] == "alice"

    customer = server.api("POST", f"/cases/{code}/connect", case_token)
    assert customer.status_code == 200 and customer.json()["status"] == "pending"
    expert = server.api("POST", f"/cases/{code}/connect", supporter)
    assert expert.status_code == 200 and expert.json()["status"] == "in_progress"
    assert expert.json()["connected_expert"]["username"] == "alice"
    assert server.api("GET", f"/cases/{code}", case_token).json()["expert"] == {
        "display_name": "Alice Martin"
    }

    hello = server.api("POST", f"/cases/{code}/messages", supporter, json={"body": "Hello Bob"})
    assert hello.status_code == 201
    reply = server.api("POST", f"/cases/{code}/messages", case_token, json={"body": "Hi!"})
    assert reply.status_code == 201
    for token in (supporter, case_token):
        messages = server.api("GET", f"/cases/{code}/messages", token).json()["messages"]
        assert [(m["author"]["kind"], m["body"]) for m in messages] == [
            ("expert", "Hello Bob"),
            ("customer", "Hi!"),
        ]
    assert messages[0]["author"]["name"] == "Alice Martin"

    closed = server.api("POST", f"/cases/{code}/close", case_token)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert server.api("GET", f"/cases/{code}", supporter).json()["closed_by"] == "customer"

    for token in (case_token, supporter):
        late = server.api("POST", f"/cases/{code}/messages", token, json={"body": "one more"})
        assert late.status_code == 409 and late.json()["error"]["code"] == "case_final"

    history = server.api("GET", f"/cases/{code}/events", supporter).json()["events"]
    types = [e["type"] for e in history]
    assert types[0] == "case.created" and types[-1] == "case.closed"
    assert types.count("case.assigned") == 1 and types.count("case.message") == 2
    assert [e["status"] for e in history if e["type"] == "case.connected"] == [
        "pending",
        "in_progress",
    ]


def test_a_long_poll_with_nothing_happening_answers_empty_after_its_wait(server):
    cursor = feed_cursor(server, server.supporter_token)
    started = time.monotonic()
    poll = LongPoll(server, server.supporter_token, cursor, wait=1.5).start()
    body = poll.result()
    elapsed = poll.answered_at - started
    assert body == {"events": [], "cursor": cursor}
    assert 1.5 <= elapsed < 4.0, elapsed


def test_the_server_stops_cleanly_while_a_long_poll_is_waiting(server):
    poll = LongPoll(server, server.supporter_token, feed_cursor(server, server.supporter_token), 20)
    poll.start()
    stopped_at = time.monotonic()
    server.stop()
    assert time.monotonic() - stopped_at < 10
    poll.thread.join(15)
    assert not poll.thread.is_alive()


# ---- two server processes on one database ----------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_pair(request, tmp_path) -> Iterator[tuple[LiveBackend, LiveBackend]]:
    """Two servers on one database, neither re-reading the feed on its own (fallback 60 s)."""
    servers: list[LiveBackend] = []
    slow_fallback = {"SOS_FEED_POLL_INTERVAL": "60"}
    with ExitStack() as stack:
        url = stack.enter_context(private_postgres()) if request.param == "postgres" else None
        try:
            a = start_backend(tmp_path, database_url=url, env=slow_fallback)
            servers.append(a)
            instance = tmp_path / "server-b"
            instance.mkdir()
            env = a.env | {"SOS_INSTANCE_PATH": str(instance), "SOS_DATABASE_URL": a.database_url}
            b = LiveBackend(instance, a.database_url, free_port(), env)
            servers.append(b)
            b.start()
            b.admin_token, b.supporter_token = a.admin_token, a.supporter_token
            b.deployment_key = a.deployment_key
            yield a, b
        finally:
            for live in servers:
                live.stop()


def test_a_long_poll_on_one_server_wakes_for_a_case_opened_through_another(server_pair):
    # PostgreSQL: LISTEN/NOTIFY. SQLite: a datagram from the writing process to the others.
    # With the fallback re-read a minute away, a long-poll not woken by the other process
    # would answer only at the end of its 20 s wait, with the read it makes then.
    a, b = server_pair
    for _round in range(3):
        poll = LongPoll(a, a.supporter_token, feed_cursor(a, a.supporter_token), wait=20).start()
        opened_at = time.monotonic()
        opened = b.api("POST", "/agent/cases", b.deployment_key, json={"source": "api"})
        assert opened.status_code == 201, opened.text
        seen = poll.result()
        assert [e["case_code"] for e in seen["events"]] == [opened.json()["case"]["code"]]
        assert poll.answered_at - opened_at < 10, "the long-poll was not woken"
