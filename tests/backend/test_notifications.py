"""Notifications: signed webhooks and e-mail, delivered in the background with retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from backend.delivery import deliver_due
from backend.models import Notification
from tests.conftest import open_case
from tests.support.live import free_port, start_backend


class Receiver:
    """A local webhook endpoint that records what it gets and answers scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd API
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def subscribe(api, token, url):
    api.patch("/me", token, json={"notifications": {"webhook_url": url, "email": False}})
    return api.post("/me/webhook-secret", token).get_json()["secret"]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["X-SOS-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(headers["X-SOS-Signature"], "sha256=" + expected.hexdigest())


def round_robin(api, world):
    api.patch(
        f"/groups/{world.group.id}", world.admin_token, json={"routing": {"policy": "round_robin"}}
    )


def test_assignment_sends_a_signed_slack_compatible_webhook(api, world, runtime, receiver):
    secret = subscribe(api, world.alice_token, receiver.url)
    assert secret.startswith("sosw_")
    round_robin(api, world)
    code, _ = open_case(api, world, customer={"name": "Bob"}, description="No sound")
    assert deliver_due(runtime) == 1
    ((headers, body),) = receiver.requests
    assert verify(secret, headers, body)
    payload = json.loads(body)
    assert payload["text"] == f"Case {code} from Bob is assigned to you: No sound"
    assert payload["event"] == "case.assigned" and payload["case"]["code"] == code
    assert not verify("sosw_wrong", headers, body)


def test_unassigned_cases_notify_the_groups_subscribers(api, world, runtime, receiver):
    subscribe(api, world.bob_token, receiver.url)
    code, _ = open_case(api, world)
    deliver_due(runtime)
    ((_, body),) = receiver.requests
    assert json.loads(body)["text"] == f"New unassigned case {code} from a customer in Helpdesk"


def test_failed_webhooks_are_retried_with_backoff(api, world, runtime, receiver, clock):
    subscribe(api, world.alice_token, receiver.url)
    receiver.statuses = [503]
    round_robin(api, world)
    open_case(api, world)
    deliver_due(runtime)
    assert deliver_due(runtime) == 0  # not due again yet
    clock.advance(5)
    assert deliver_due(runtime) == 1
    assert len(receiver.requests) == 2
    with runtime.store.read() as s:
        (item,) = s.query(Notification).all()
        assert (item.status, item.attempts) == ("sent", 2)


def test_a_client_error_from_the_receiver_is_not_retried(api, world, runtime, receiver, clock):
    subscribe(api, world.alice_token, receiver.url)
    receiver.statuses = [404]
    round_robin(api, world)
    open_case(api, world)
    deliver_due(runtime)
    clock.advance(3600)
    assert deliver_due(runtime) == 0
    with runtime.store.read() as s:
        (item,) = s.query(Notification).all()
        assert (item.status, item.last_error) == ("failed", "HTTP 404")


def test_an_unreachable_receiver_never_fails_or_slows_the_request(api, world, runtime):
    subscribe(api, world.alice_token, f"http://127.0.0.1:{free_port()}/nobody-listens")
    round_robin(api, world)
    started = time.monotonic()
    code, _ = open_case(api, world)
    assert time.monotonic() - started < 1.0
    deliver_due(runtime)
    with runtime.store.read() as s:
        (item,) = s.query(Notification).all()
        assert item.status == "pending" and "ConnectionError" in item.last_error
    assert api.get(f"/cases/{code}", world.alice_token).status_code == 200


def test_assignment_sends_an_email_through_smtp(api, world, runtime, mailbox, clock):
    box, port = mailbox
    runtime.settings = runtime.settings.with_overrides(
        smtp_host="127.0.0.1", smtp_port=port, smtp_from="queue@example.com"
    )
    api.patch(f"/users/{world.alice.id}", world.admin_token, json={"email": "alice@example.com"})
    api.patch("/me", world.alice_token, json={"notifications": {"email": True}})
    round_robin(api, world)
    code, _ = open_case(api, world, description="Screen is black")
    assert deliver_due(runtime) == 1
    ((sender, recipients, content),) = box.messages
    assert (sender, recipients) == ("queue@example.com", ["alice@example.com"])
    assert f"Subject: Case {code} from a customer is assigned to you: Screen is black" in content


def test_nobody_is_notified_without_opting_in(api, world, runtime):
    round_robin(api, world)
    open_case(api, world)
    assert deliver_due(runtime) == 0


@pytest.mark.slow
def test_the_running_server_delivers_webhooks_in_the_background(tmp_path, receiver):
    live = start_backend(tmp_path)
    try:
        secret = live.api("POST", "/me/webhook-secret", live.supporter_token).json()["secret"]
        live.api(
            "PATCH",
            "/me",
            live.supporter_token,
            json={"notifications": {"webhook_url": receiver.url}},
        )
        live.api("PATCH", f"/groups/{live.group_id}", json={"routing": {"policy": "round_robin"}})
        opened = live.api("POST", "/agent/cases", live.deployment_key, json={"source": "api"})
        assert opened.status_code == 201
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        ((headers, body),) = receiver.requests
        assert verify(secret, headers, body)
        assert json.loads(body)["case"]["code"] == opened.json()["case"]["code"]
    finally:
        live.stop()


def test_a_claimed_batch_stays_leased_for_as_long_as_sending_it_may_take(
    api, world, runtime, receiver, clock
):
    from backend.services.notifications import WORST_SEND_SECONDS, claim_due

    subscribe(api, world.bob_token, receiver.url)
    for _ in range(7):
        open_case(api, world)  # each unassigned case notifies bob
    with runtime.store.write() as s:
        batch = claim_due(s, runtime.context())
        assert len(batch) == 5
        leased_until = {n.next_attempt_at for n in batch}
    assert leased_until == {clock.now() + timedelta(seconds=5 * WORST_SEND_SECONDS)}
    # Another worker, even after a minute, takes only what nobody is sending.
    clock.advance(60)
    with runtime.store.write() as s:
        assert len(claim_due(s, runtime.context())) == 2


def test_a_webhook_url_alone_is_enough_to_be_notified(api, world, runtime, receiver):
    me = api.patch(
        "/me", world.bob_token, json={"notifications": {"webhook_url": receiver.url}}
    ).get_json()
    assert me["notifications"]["webhook_secret_set"] is True
    open_case(api, world)
    assert deliver_due(runtime) == 1
    ((headers, _),) = receiver.requests
    assert headers["X-SOS-Signature"].startswith("sha256=")


def test_only_a_change_that_queues_notifications_wakes_the_dispatcher(api, world, runtime):
    # A look at the outbox costs a write transaction: a case nobody is told about (the
    # common case) must not cause one, in this process or any other.
    outbox, changes = runtime.outbox.version, runtime.signal.version
    open_case(api, world)
    assert runtime.signal.version > changes  # long-polls were woken
    assert runtime.outbox.version == outbox
    subscribe(api, world.bob_token, "http://127.0.0.1:9/hook")
    open_case(api, world)
    assert runtime.outbox.version == outbox + 1
