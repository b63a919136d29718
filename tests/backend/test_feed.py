"""The change feed: scoped, ordered, and prompt when something happens."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from backend.models import Case, Event
from backend.services.access import SYSTEM
from backend.services.events import append_event
from tests.conftest import open_case


def feed(api, token, **params):
    response = api.get("/events", token, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_without_a_cursor_the_feed_starts_at_the_current_end(api, world):
    open_case(api, world)
    start = feed(api, world.alice_token)
    assert start["events"] == []
    code, _ = open_case(api, world)
    after = feed(api, world.alice_token, after=start["cursor"])
    assert [(e["type"], e["case_code"]) for e in after["events"]] == [("case.created", code)]
    assert after["cursor"] == after["events"][-1]["cursor"]


def test_after_zero_replays_everything_in_order(api, world):
    open_case(api, world)
    open_case(api, world)
    events = feed(api, world.admin_token, after=0)["events"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(ids) == 2


def test_long_poll_is_woken_by_the_change_signal_not_the_fallback_poll(app, api, world, runtime):
    # With a 5 s fallback poll, only the in-process wake-up can answer well before 5 s.
    runtime.settings = runtime.settings.with_overrides(feed_poll_interval=5.0)
    cursor = feed(api, world.alice_token)["cursor"]
    result = {}

    def poll():
        client = app.test_client()
        started = time.monotonic()
        response = client.get(
            "/api/v1/events",
            query_string={"after": cursor, "wait": 10},
            headers={"Authorization": f"Bearer {world.alice_token}"},
        )
        result["elapsed"] = time.monotonic() - started
        result["events"] = response.get_json()["events"]

        result["returned_at"] = time.monotonic()

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)
    code, _ = open_case(api, world)
    committed_at = time.monotonic()
    thread.join(15)
    assert [e["case_code"] for e in result["events"]] == [code]
    # Not the 10 s wait, not the 5 s fallback poll: the signal sent at commit.
    assert result["returned_at"] - committed_at < 2.5


def test_long_poll_with_nothing_happening_returns_empty_after_wait(api, world):
    cursor = feed(api, world.alice_token)["cursor"]
    started = time.monotonic()
    body = feed(api, world.alice_token, after=cursor, wait=0.5)
    assert body == {"events": [], "cursor": cursor}
    assert time.monotonic() - started >= 0.5


def test_supporters_only_see_events_of_their_groups(api, world):
    cursor = feed(api, world.admin_token)["cursor"]
    open_case(api, world)
    assert len(feed(api, world.alice_token, after=cursor)["events"]) == 1
    assert feed(api, world.outsider_token, after=cursor)["events"] == []
    assert len(feed(api, world.admin_token, after=cursor)["events"]) == 1


def test_a_case_token_sees_only_its_case_without_internal_details(api, world):
    cursor = feed(api, world.admin_token)["cursor"]
    code, token = open_case(api, world)
    open_case(api, world)  # somebody else's case
    api.post(f"/cases/{code}/claim", world.alice_token)
    events = feed(api, token, after=cursor)["events"]
    assert {e["case_code"] for e in events} == {code}
    assigned = next(e for e in events if e["type"] == "case.assigned")
    assert assigned["data"] == {"assignee": {"display_name": "Alice"}}
    assert assigned["actor"]["id"] is None


def test_every_change_is_logged_with_actor_and_resulting_status(api, world):
    code, token = open_case(api, world, customer={"name": "Zoe"})
    api.post(f"/cases/{code}/claim", world.alice_token)
    api.post(f"/cases/{code}/connect", token)
    api.post(f"/cases/{code}/connect", world.alice_token)
    api.post(f"/cases/{code}/messages", token, json={"body": "hi"})
    api.patch(f"/cases/{code}", world.alice_token, json={"description": "VPN down"})
    api.post(f"/cases/{code}/disconnect", world.alice_token)
    api.post(f"/cases/{code}/close", world.alice_token)
    events = api.get(f"/cases/{code}/events", world.alice_token).get_json()["events"]
    assert [(e["type"], e["status"], e["actor"]["kind"]) for e in events] == [
        ("case.created", "new", "deployment"),
        ("case.assigned", "new", "user"),
        ("case.connected", "pending", "customer"),
        ("case.connected", "in_progress", "user"),
        ("case.message", "in_progress", "customer"),
        ("case.edited", "in_progress", "user"),
        ("case.disconnected", "pending", "user"),
        ("case.closed", "closed", "user"),
    ]
    assert events[5]["data"] == {"fields": ["description"]}
    assert events[4]["data"]["message"]["body"] == "hi"


def test_a_case_moved_to_another_group_is_announced_to_the_group_it_left(api, world):
    code, _ = open_case(api, world)
    alice_cursor = feed(api, world.alice_token)["cursor"]
    olga_cursor = feed(api, world.outsider_token)["cursor"]
    moved = api.patch(f"/cases/{code}", world.admin_token, json={"group_id": world.other_group.id})
    assert moved.status_code == 200
    left = feed(api, world.alice_token, after=alice_cursor)["events"]
    assert [(e["type"], e["case_code"]) for e in left] == [("case.moved", code)]
    assert left[0]["data"] == {
        "from": {"id": world.group.id, "name": "Helpdesk"},
        "to": {"id": world.other_group.id, "name": "Accounting"},
    }
    arrived = [e["type"] for e in feed(api, world.outsider_token, after=olga_cursor)["events"]]
    assert "case.edited" in arrived and "case.moved" not in arrived
    assert api.get(f"/cases/{code}", world.alice_token).status_code == 404


def test_a_unit_of_works_events_are_written_at_its_commit_in_the_order_appended(
    api, world, runtime
):
    code, _ = open_case(api, world)

    def count_events() -> int:
        with runtime.store.read() as s:
            return s.scalar(select(func.count()).select_from(Event)) or 0

    before = count_events()
    with runtime.store.write() as s:
        case = s.scalar(select(Case).where(Case.code == code))
        for n in range(3):
            append_event(s, runtime.context(), case, "case.edited", SYSTEM, {"fields": [f"f{n}"]})
        assert count_events() == before  # nothing is written before the commit
    events = feed(api, world.admin_token, after=0)["events"][-3:]
    assert [e["data"]["fields"] for e in events] == [["f0"], ["f1"], ["f2"]]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_a_unit_of_work_that_fails_leaves_no_events(api, world, runtime):
    code, _ = open_case(api, world)
    before = feed(api, world.admin_token, after=0)["events"]
    with pytest.raises(RuntimeError), runtime.store.write() as s:
        case = s.scalar(select(Case).where(Case.code == code))
        append_event(s, runtime.context(), case, "case.edited", SYSTEM, {"fields": ["x"]})
        raise RuntimeError("the unit of work fails after appending")
    assert feed(api, world.admin_token, after=0)["events"] == before
