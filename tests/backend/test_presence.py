"""Presence, closing and expiry: the status is right when read, with or without the sweep."""

from __future__ import annotations

from backend.services.presence import sweep
from tests.conftest import open_case


def status_of(api, world, code):
    return api.get(f"/cases/{code}", world.alice_token).get_json()["status"]


def test_connect_moves_new_to_pending_to_in_progress(api, world):
    code, token = open_case(api, world)
    assert status_of(api, world, code) == "new"
    assert api.post(f"/cases/{code}/connect", token).get_json()["status"] == "pending"
    response = api.post(f"/cases/{code}/connect", world.alice_token)
    assert response.get_json()["status"] == "in_progress"
    assert response.get_json()["connected_expert"]["username"] == "alice"


def test_disconnect_moves_back_to_pending(api, world):
    code, token = open_case(api, world)
    api.post(f"/cases/{code}/connect", token)
    api.post(f"/cases/{code}/connect", world.alice_token)
    assert api.post(f"/cases/{code}/disconnect", token).get_json()["status"] == "pending"


def test_missing_heartbeat_disconnects_at_read_time_without_any_sweep(api, world, clock):
    code, token = open_case(api, world)
    api.post(f"/cases/{code}/connect", token)
    api.post(f"/cases/{code}/connect", world.alice_token)
    clock.advance(45)
    api.post(f"/cases/{code}/heartbeat", token)
    clock.advance(30)  # expert silent for 75 s > 60 s, customer for 30 s
    body = api.get(f"/cases/{code}", world.alice_token).get_json()
    assert body["status"] == "pending"
    assert body["expert_connected"] is False and body["customer_connected"] is True


def test_a_heartbeat_after_a_timeout_reconnects(api, world, clock):
    code, token = open_case(api, world)
    api.post(f"/cases/{code}/connect", token)
    clock.advance(61)
    assert status_of(api, world, code) == "new"
    assert api.post(f"/cases/{code}/heartbeat", token).get_json()["status"] == "pending"


def test_case_expires_at_read_time_after_its_lifetime(api, world, clock, runtime):
    code, token = open_case(api, world)
    clock.advance(runtime.settings.case_ttl - 1)
    assert status_of(api, world, code) == "new"
    clock.advance(1)
    assert status_of(api, world, code) == "expired"
    listed = api.get("/cases?status=expired", world.alice_token).get_json()
    assert [c["code"] for c in listed["cases"]] == [code]


def test_final_cases_refuse_connect_messages_and_reassignment_with_409(api, world, clock, runtime):
    closed, closed_token = open_case(api, world)
    assert api.post(f"/cases/{closed}/close", closed_token).get_json()["status"] == "closed"
    expired, _ = open_case(api, world)
    clock.advance(runtime.settings.case_ttl)
    for code in (closed, expired):
        for method, path, body in (
            ("post", "connect", None),
            ("post", "heartbeat", None),
            ("post", "messages", {"body": "hello?"}),
            ("post", "assign", {"assignee": "me"}),
            ("post", "claim", None),
            ("patch", "", {"description": "late"}),
        ):
            call = getattr(api, method)
            url = f"/cases/{code}/{path}".rstrip("/")
            response = (
                call(url, world.alice_token, json=body) if body else call(url, world.alice_token)
            )
            assert response.status_code == 409, (code, path, response.get_json())
            assert response.get_json()["error"]["code"] == "case_final"


def test_closing_twice_is_a_clear_conflict_and_expired_cases_cannot_be_closed(
    api, world, clock, runtime
):
    code, token = open_case(api, world)
    api.post(f"/cases/{code}/close", world.alice_token)
    again = api.post(f"/cases/{code}/close", token)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_closed"
    late, late_token = open_case(api, world)
    clock.advance(runtime.settings.case_ttl)
    refused = api.post(f"/cases/{late}/close", late_token)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "case_final"


def test_close_records_who_closed(api, world):
    code, token = open_case(api, world)
    body = api.post(f"/cases/{code}/close", token).get_json()
    assert body["status"] == "closed"
    expert_view = api.get(f"/cases/{code}", world.alice_token).get_json()
    assert expert_view["closed_by"] == "customer"


def test_sweep_records_timeouts_and_expiry_once(api, world, clock, runtime):
    code, token = open_case(api, world)
    api.post(f"/cases/{code}/connect", token)
    clock.advance(runtime.settings.case_ttl)
    with runtime.store.write() as s:
        first = sweep(s, runtime.context())
    with runtime.store.write() as s:
        second = sweep(s, runtime.context())
    assert first == {"expired": 1, "timed_out": 1}
    assert second == {"expired": 0, "timed_out": 0}
    types = [
        e["type"] for e in api.get(f"/cases/{code}/events", world.alice_token).get_json()["events"]
    ]
    assert types.count("case.expired") == 1
    assert types.count("case.disconnected") == 1


def test_a_second_expert_cannot_connect_while_another_is_connected(api, world):
    code, _ = open_case(api, world)
    api.post(f"/cases/{code}/connect", world.alice_token)
    response = api.post(f"/cases/{code}/connect", world.bob_token)
    assert response.status_code == 409
    assert "Alice" in response.get_json()["error"]["message"]
