"""The change signal that wakes long-polls: every waiter a change concerns is woken, in turns."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from backend.db import NOTIFY_CHANNEL
from backend.wakeups import ChangeSignal, PostgresListener
from tests.support.databases import private_postgres


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Waiter(threading.Thread):
    """Takes a turn on the signal and holds it until told to let go."""

    def __init__(self, signal: ChangeSignal, seen: int, timeout: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.signal, self.seen, self.timeout = signal, seen, timeout
        self.woken = threading.Event()
        self.let_go = threading.Event()
        self.moved: bool | None = None
        self.waited = 0.0

    def run(self) -> None:
        began = time.monotonic()
        with self.signal.turn(self.seen, self.timeout) as moved:
            self.moved, self.waited = moved, time.monotonic() - began
            self.woken.set()
            self.let_go.wait(10)


def start(*waiters: Waiter) -> None:
    signal = waiters[0].signal
    before = signal.waiting
    for waiter in waiters:
        waiter.start()
    wait_until(lambda: signal.waiting == before + len(waiters))


def test_a_change_wakes_every_waiter_one_turn_after_another():
    signal = ChangeSignal()
    waiters = [Waiter(signal, 0) for _ in range(5)]
    start(*waiters)
    signal.notify()
    for n, waiter in enumerate(waiters):
        assert waiter.woken.wait(5), f"waiter {n} was never woken"
        time.sleep(0.05)
        # the next one waits until this one's turn ends
        assert all(not later.woken.is_set() for later in waiters[n + 1 :])
        waiter.let_go.set()
    for waiter in waiters:
        waiter.join(5)
        assert waiter.moved is True
    assert signal.waiting == 0


def test_a_waiter_that_came_after_the_change_is_not_woken_by_it():
    signal = ChangeSignal()
    early = Waiter(signal, 0)
    start(early)
    signal.notify()
    assert early.woken.wait(5)
    late = Waiter(signal, signal.version, timeout=0.3)  # has already seen version 1
    start(late)
    early.let_go.set()  # passes the turn on: nobody else waits for version 1
    late.join(5)
    assert late.moved is False and late.waited >= 0.25  # timed out, not woken
    assert early.moved is True


def test_a_waiter_that_timed_out_does_not_break_the_chain():
    signal = ChangeSignal()
    first = Waiter(signal, 0)
    quitter = Waiter(signal, 0, timeout=0.1)
    last = Waiter(signal, 0)
    start(first, quitter, last)
    quitter.let_go.set()
    quitter.join(5)
    assert quitter.moved is False
    signal.notify()
    first.let_go.set()
    assert last.woken.wait(5)
    last.let_go.set()


def test_a_second_change_starts_a_second_chain_and_wait_passes_its_turn_at_once():
    signal = ChangeSignal()
    a, b = Waiter(signal, 0), Waiter(signal, 0)
    start(a, b)
    signal.notify()
    assert a.woken.wait(5)
    signal.notify()  # a still holds its turn; the new change wakes the next waiter itself
    assert b.woken.wait(5)
    a.let_go.set()
    b.let_go.set()
    assert signal.wait(0, 0.01) is True  # the version moved: no waiting at all
    assert signal.wait(signal.version, 0.05) is False


# ---- PostgreSQL: LISTEN/NOTIFY across processes ------------------------------------------------


@pytest.fixture
def listener():
    """A listener on its own connection, named so that a test can find its backend."""
    name = f"sos-test-listener-{uuid.uuid4().hex[:8]}"
    with private_postgres() as url:
        signal = ChangeSignal()
        listening = PostgresListener(f"{url}&application_name={name}", signal)
        listening.start()
        assert listening.ready.wait(10), "the listener did not connect"
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            yield listening, signal, engine, name
        finally:
            listening.stop(wait=5)
            engine.dispose()


def notify(engine, times: int = 1) -> None:
    with engine.connect() as conn:
        for _ in range(times):
            conn.execute(text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"))


@pytest.mark.postgres
def test_a_notification_from_another_connection_wakes_the_signal(listener):
    _, signal, engine, _ = listener
    before = signal.version
    notify(engine)
    wait_until(lambda: signal.version > before)


@pytest.mark.postgres
def test_a_burst_of_notifications_wakes_and_the_last_is_never_missed(listener):
    _, signal, engine, _ = listener
    before = signal.version
    notify(engine, 500)  # each in its own transaction: 500 notifications
    wait_until(lambda: signal.version > before)
    time.sleep(0.3)
    settled = signal.version
    assert settled - before <= 500  # notifications that arrive together wake it once
    notify(engine)
    wait_until(lambda: signal.version > settled)


@pytest.mark.postgres
def test_the_listener_reconnects_when_its_connection_is_cut(listener, caplog):
    listening, signal, engine, name = listener
    listening.ready.clear()
    before = signal.version
    with engine.connect() as conn:
        cut = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"
            ),
            {"n": name},
        ).all()
    assert cut == [(True,)]
    wait_until(lambda: signal.version > before)  # the waiters re-read at once
    assert listening.ready.wait(10), "the listener did not reconnect"
    assert "change listener lost its database connection" in caplog.text
    after = signal.version
    notify(engine)
    wait_until(lambda: signal.version > after)
