"""The feed's shared cache: one database read per wake-up, per-caller scope in memory.

Each test runs on SQLite and PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import insert, select

from backend.feedcache import FeedCache
from backend.models import Case, Event
from backend.services.access import SYSTEM, DeploymentInfo, Principal
from backend.services.events import append_event
from tests.conftest import open_case


def feed(api, token: str, **params: Any) -> dict[str, Any]:
    response = api.get("/events", token, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


class EventReads:
    """Counts the statements that read the events table, per thread, on the app's engine."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.by_thread: dict[int, int] = {}
        self._lock = threading.Lock()

    def _count(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if "FROM events" in statement:
            with self._lock:
                ident = threading.get_ident()
                self.by_thread[ident] = self.by_thread.get(ident, 0) + 1

    def total(self, threads: list[threading.Thread]) -> int:
        with self._lock:
            return sum(self.by_thread.get(t.ident, 0) for t in threads)

    def reset(self) -> None:
        with self._lock:
            self.by_thread.clear()

    @contextmanager
    def listening(self) -> Iterator[EventReads]:
        sa_event.listen(self.engine, "before_cursor_execute", self._count)
        try:
            yield self
        finally:
            sa_event.remove(self.engine, "before_cursor_execute", self._count)


class Poller(threading.Thread):
    """One long-poll through its own test client."""

    def __init__(self, app, token: str, cursor: str, wait: float = 15) -> None:
        super().__init__(daemon=True)
        self.app, self.token, self.cursor, self.wait = app, token, cursor, wait
        self.body: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            response = self.app.test_client().get(
                "/api/v1/events",
                query_string={"after": self.cursor, "wait": self.wait},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            assert response.status_code == 200, response.get_json()
            self.body = response.get_json()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc

    def result(self) -> list[tuple[str, str]]:
        self.join(20)
        assert not self.is_alive(), "the long-poll did not answer"
        if self.error is not None:
            raise self.error
        assert self.body is not None
        return [(e["type"], e["case_code"]) for e in self.body["events"]]


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def start_waiting(runtime, pollers: list[Poller]) -> None:
    """Start the polls and return once every one of them waits on the change signal."""
    waiting = runtime.signal.waiting
    for poller in pollers:
        poller.start()
    wait_until(lambda: runtime.signal.waiting == waiting + len(pollers))


def append(runtime, code: str, count: int, type_: str = "case.edited") -> None:
    """``count`` events on one case, committed in one transaction (so one wake-up)."""
    with runtime.store.write() as s:
        case = s.scalar(select(Case).where(Case.code == code))
        for n in range(count):
            append_event(s, runtime.context(), case, type_, SYSTEM, {"fields": [f"f{n}"]})


# --- the in-memory scope agrees with the SQL scope


@pytest.fixture
def scoped_events(runtime, api, world, seed) -> list[Event]:
    """Events over three cases and, through the denormalised group id, over four groups."""
    _, other_key = seed.deployment(world.other_group)
    cases = []
    for key in (world.deployment_key, world.deployment_key, other_key):
        response = api.post("/agent/cases", key, json={"source": "sos_button"})
        assert response.status_code == 201, response.get_json()
        cases.append(response.get_json()["case"]["code"])
    with runtime.store.write() as s:
        ids = {c.code: c.id for c in s.scalars(select(Case).where(Case.code.in_(cases)))}
        groups = [world.group.id, world.other_group.id, 9_999, 12_345]
        rows = [
            {
                "case_id": ids[code],
                "case_code": code,
                "group_id": group,
                "type": "case.edited",
                "status": "new",
                "actor_kind": "system",
                "actor_id": None,
                "actor_name": "system",
                "data": {},
                "created_at": runtime.clock.now(),
            }
            for code in cases
            for group in groups
        ]
        s.execute(insert(Event), rows)
    with runtime.store.read() as s:
        events = list(s.scalars(select(Event).order_by(Event.id)))
        s.expunge_all()
    return events


GROUP_IDS = st.frozensets(st.sampled_from([1, 2, 3, 9_999, 12_345, 77]), max_size=4)


@st.composite
def principals(draw) -> Principal:
    kind = draw(st.sampled_from(["user", "case", "deployment"]))
    if kind == "user":
        return Principal(
            kind="user",
            user_id=draw(st.integers(1, 5)),
            role=draw(st.sampled_from(["admin", "supporter"])),
            group_ids=draw(GROUP_IDS),
        )
    if kind == "case":
        return Principal(kind="case", case_id=draw(st.one_of(st.none(), st.integers(0, 8))))
    return Principal(kind="deployment", deployment=DeploymentInfo(id=1, name="d", group_id=1))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(principal=principals())
def test_in_memory_scope_agrees_with_the_sql_scope(runtime, scoped_events, principal):
    scope, params = principal.event_scope()
    with runtime.store.read() as s:
        in_sql = list(s.scalars(select(Event.id).where(scope).order_by(Event.id), params))
    in_memory = [e.id for e in scoped_events if principal.can_see_event(e)]
    assert in_memory == in_sql
    # And the cache's copies of the rows, which the feed filters, give the same answer.
    cached = runtime.feed_cache.fresh(0).events
    assert [e.id for e in cached if principal.can_see_event(e)] == in_sql


def test_the_scope_examples_cover_every_rule(runtime, scoped_events, world):
    # A guard for the property test above: its events do tell the rules apart.
    admin = Principal(kind="user", role="admin")
    alice = Principal(kind="user", role="supporter", group_ids=frozenset({world.group.id}))
    nobody = Principal(kind="user", role="supporter")
    token = Principal(kind="case", case_id=scoped_events[-1].case_id)
    seen = {
        name: sum(p.can_see_event(e) for e in scoped_events)
        for name, p in {"admin": admin, "alice": alice, "nobody": nobody, "token": token}.items()
    }
    assert seen["admin"] == len(scoped_events)
    assert 0 < seen["alice"] < seen["admin"]
    assert 0 < seen["token"] < seen["admin"]
    assert seen["nobody"] == 0


# --- concurrent long-polls


def test_twenty_long_polls_woken_by_one_change_each_get_exactly_their_scope(
    app, api, world, seed, runtime
):
    # Only wake-ups answer within the test: the fallback poll would come after 5 s.
    runtime.settings = runtime.settings.with_overrides(feed_poll_interval=5.0)
    _, other_key = seed.deployment(world.other_group)
    code_a, token_a = open_case(api, world)  # group A (Helpdesk)
    response = api.post("/agent/cases", other_key, json={"source": "sos_button"})
    code_b, token_b = response.get_json()["case"]["code"], response.get_json()["case_token"]
    cursor = feed(api, world.admin_token)["cursor"]

    sees_a = [world.admin_token, world.alice_token, world.bob_token, token_a]
    sees_b = [world.outsider_token, token_b]
    a_polls = [Poller(app, sees_a[n % len(sees_a)], cursor) for n in range(12)]
    b_polls = [Poller(app, sees_b[n % len(sees_b)], cursor) for n in range(8)]
    start_waiting(runtime, a_polls + b_polls)

    # Change 1, in group A on case A: wakes all twenty; only the twelve of A's scope answer.
    api.post(f"/cases/{code_a}/messages", token_a, json={"body": "help"})
    for poll in a_polls:
        assert poll.result() == [("case.message", code_a)]
    wait_until(lambda: runtime.signal.waiting == len(b_polls))
    assert all(poll.is_alive() for poll in b_polls)  # woken, found nothing, waiting again

    # Change 2, in group B on case B: the eight others answer with it, and only it.
    api.post(f"/cases/{code_b}/messages", token_b, json={"body": "help"})
    for poll in b_polls:
        assert poll.result() == [("case.message", code_b)]


@pytest.mark.parametrize("waiters", [1, 6, 30])
def test_a_wake_up_costs_one_database_read_whatever_the_number_of_waiters(
    app, api, world, runtime, waiters
):
    runtime.settings = runtime.settings.with_overrides(feed_poll_interval=5.0)
    code, token = open_case(api, world)
    cursor = feed(api, world.admin_token)["cursor"]
    tokens = [world.admin_token, world.alice_token, world.bob_token, token]
    polls = [Poller(app, tokens[n % len(tokens)], cursor) for n in range(waiters)]
    with EventReads(runtime.store.engine).listening() as reads:
        start_waiting(runtime, polls)  # each has made its own first read
        assert reads.total(polls) == waiters
        reads.reset()
        refreshes = runtime.feed_cache.reads
        api.post(f"/cases/{code}/messages", token, json={"body": "one change"})
        for poll in polls:
            assert poll.result() == [("case.message", code)]
        assert reads.total(polls) == 1
        assert runtime.feed_cache.reads == refreshes + 1


def test_later_wake_ups_read_only_the_new_events(app, api, world, runtime):
    runtime.settings = runtime.settings.with_overrides(feed_poll_interval=5.0)
    code, token = open_case(api, world)
    for n in range(3):
        cursor = feed(api, world.alice_token)["cursor"]
        polls = [Poller(app, world.alice_token, cursor) for _ in range(4)]
        with EventReads(runtime.store.engine).listening() as reads:
            start_waiting(runtime, polls)
            reads.reset()
            api.post(f"/cases/{code}/messages", token, json={"body": f"message {n}"})
            assert {tuple(p.result()) for p in polls} == {(("case.message", code),)}
            assert reads.total(polls) == 1
    snapshot = runtime.feed_cache.snapshot
    assert snapshot is not None
    with runtime.store.read() as s:
        in_db = list(s.scalars(select(Event.id).where(Event.id > snapshot.floor)))
    assert snapshot.ids == in_db


# --- cursors older than the cache


def test_a_waiter_behind_the_cache_floor_still_gets_every_event(app, api, world, runtime):
    runtime.settings = runtime.settings.with_overrides(feed_poll_interval=5.0)
    runtime.feed_cache = FeedCache(runtime.store, runtime.signal, capacity=5, prime=5)
    code, _ = open_case(api, world)
    cursor = feed(api, world.alice_token)["cursor"]
    poll = Poller(app, world.alice_token, cursor)
    with EventReads(runtime.store.engine).listening() as reads:
        start_waiting(runtime, [poll])
        reads.reset()
        append(runtime, code, 8)  # one commit, more events than the cache holds
        events = poll.result()
        # The wake-up loaded the cache (the newest five), found the cursor below its floor,
        # and read the database itself.
        assert reads.total([poll]) == 2
    assert events == [("case.edited", code)] * 8
    fields = [e["data"]["fields"] for e in poll.body["events"]]
    assert fields == [[f"f{n}"] for n in range(8)]
    assert runtime.feed_cache.snapshot.floor > int(cursor)
    assert poll.body["cursor"] == poll.body["events"][-1]["cursor"]


def test_a_quiet_caller_with_an_old_cursor_is_then_answered_from_the_cache(
    app, api, world, seed, runtime
):
    runtime.settings = runtime.settings.with_overrides(feed_poll_interval=5.0)
    runtime.feed_cache = FeedCache(runtime.store, runtime.signal, capacity=5, prime=5)
    _, other_key = seed.deployment(world.other_group)
    cursor = feed(api, world.outsider_token)["cursor"]
    code_a, _ = open_case(api, world)
    append(runtime, code_a, 8)  # group A only: nothing the outsider (group B) may see
    runtime.feed_cache.fresh(runtime.signal.version)  # as earlier wake-ups would have left it
    assert runtime.feed_cache.snapshot.floor > int(cursor)
    poll = Poller(app, world.outsider_token, cursor)
    with EventReads(runtime.store.engine).listening() as reads:
        # Its first read finds nothing after its old cursor, up to what the cache then held...
        start_waiting(runtime, [poll])
        reads.reset()
        response = api.post("/agent/cases", other_key, json={"source": "sos_button"})
        code_b = response.get_json()["case"]["code"]
        events = poll.result()
        # ... so the wake-up is answered from the cache: its one read, and none of its own.
        assert reads.total([poll]) == 1
    assert events and {c for _, c in events} == {code_b}
    assert ("case.created", code_b) in events


def test_a_burst_larger_than_the_cache_restarts_it_from_the_newest_events(api, world, runtime):
    runtime.feed_cache = cache = FeedCache(runtime.store, runtime.signal, capacity=6, prime=4)
    code, _ = open_case(api, world)
    first = cache.fresh(0)
    assert first.floor == 0 and len(first.events) <= 4
    append(runtime, code, 3)
    grown = cache.fresh(runtime.signal.version)
    assert grown.ids[-1] == grown.top and len(grown.ids) <= 6
    append(runtime, code, 10)  # more than the cache holds since its last read
    restarted = cache.fresh(runtime.signal.version)
    assert len(restarted.ids) == 4
    with runtime.store.read() as s:
        newest = list(s.scalars(select(Event.id).order_by(Event.id.desc()).limit(4)))
    assert restarted.ids == sorted(newest)
    assert restarted.floor == restarted.ids[0] - 1
    # A cursor at or after the floor is answered from the cache; an older one is not.
    admin = Principal(kind="user", role="admin")
    answer = cache.events_after(admin, restarted.floor, 100, min_version=0)
    assert answer is not None and [e.id for e in answer[0]] == restarted.ids
    assert cache.events_after(admin, restarted.floor - 1, 100, min_version=0) is None


def test_the_cache_answers_with_at_most_limit_events_in_order(api, world, runtime):
    code, _ = open_case(api, world)
    cursor = int(feed(api, world.alice_token)["cursor"])
    append(runtime, code, 7)
    alice = Principal(kind="user", role="supporter", group_ids=frozenset({world.group.id}))
    answer = runtime.feed_cache.events_after(alice, cursor, 3, min_version=0)
    assert answer is not None
    ids = [e.id for e in answer[0]]
    scope, params = alice.event_scope()
    with runtime.store.read() as s:
        query = select(Event.id).where(Event.id > cursor, scope).order_by(Event.id).limit(3)
        expected = list(s.scalars(query, params))
    assert ids == expected and len(ids) == 3
    # Through the API the cursor is the last event returned, so the next page follows on.
    page = feed(api, world.alice_token, after=cursor, limit=3)
    assert [e["id"] for e in page["events"]] == expected
    assert page["cursor"] == str(expected[-1])


def test_waiting_long_polls_hold_no_database_connection(app, api, world, runtime):
    # Authentication and the first read share one session, closed before the wait: a hundred
    # experts waiting do not need a hundred connections.
    code, _ = open_case(api, world)
    cursor = feed(api, world.alice_token)["cursor"]
    runtime.settings = runtime.settings.with_overrides(feed_poll_interval=5.0)
    pool = runtime.store.engine.pool
    pollers = [Poller(app, token, cursor) for token in (world.alice_token, world.admin_token)]
    start_waiting(runtime, pollers)
    assert pool.checkedout() == 0
    append(runtime, code, 1)
    assert [p.result() for p in pollers] == [[("case.edited", code)]] * 2
