"""Automatic assignment: policies, filters, decisions in the log, escalation and topics."""

from __future__ import annotations

from collections import Counter

import pytest

from backend.services.access import DeploymentInfo
from backend.services.cases import NewCase, open_agent_case
from backend.services.routing import escalate, within_schedule
from tests.backend.test_claim_race import race
from tests.conftest import open_case


def set_routing(api, world, group=None, **routing):
    group = group or world.group
    response = api.patch(f"/groups/{group.id}", world.admin_token, json={"routing": routing})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["routing"]


def be_active(api, token):
    """Any authenticated call counts as activity and keeps an expert online."""
    assert api.get("/me", token).status_code == 200


def assigned_event(api, world, code):
    events = api.get(f"/cases/{code}/events", world.admin_token).get_json()["events"]
    return [e for e in events if e["type"] in ("case.assigned", "case.routed")]


def assignee(api, world, code):
    body = api.get(f"/cases/{code}", world.admin_token).get_json()["assignee"]
    return body and body["username"]


def test_round_robin_takes_turns_and_logs_why(api, world):
    set_routing(api, world, policy="round_robin")
    codes = [open_case(api, world)[0] for _ in range(4)]
    assert [assignee(api, world, c) for c in codes] == ["alice", "bob", "alice", "bob"]
    decision = assigned_event(api, world, codes[0])[0]
    assert decision["data"]["policy"] == "round_robin"
    assert decision["data"]["reason"] == "round_robin → alice: 2 available, alice next"


def test_round_robin_is_fair_over_a_thousand_cases(runtime, world, seed, api):
    carol = seed.user("carol", groups=[world.group])
    dave = seed.user("dave", groups=[world.group])
    set_routing(api, world, policy="round_robin", only_available=True)
    for token in (world.alice_token, world.bob_token, seed.token(carol)):
        be_active(api, token)  # dave never shows up: he is offline and must get nothing
    counts: Counter[str] = Counter()
    deployment = DeploymentInfo.of(world.deployment)
    for _ in range(1000):
        with runtime.store.write() as s:
            case, _, _ = open_agent_case(
                s,
                runtime.context(),
                deployment,
                source="api",
                details=NewCase(),
                idempotency_key=None,
            )
            counts[case.assignee.username if case.assignee else None] += 1
    assert dave.username not in counts and None not in counts
    assert sorted(counts) == ["alice", "bob", "carol"]
    assert max(counts.values()) - min(counts.values()) <= 1


def open_cases_at_once(app, world, count: int) -> list[str]:
    """``count`` agents open a case in the same instant, each through its own session."""

    def create(i: int) -> str:
        response = app.test_client().post(
            "/api/v1/agent/cases",
            headers={"Authorization": f"Bearer {world.deployment_key}"},
            json={"source": "sos_button", "device": {"device_id": f"pc-{i}"}},
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()["case"]["code"]

    return race(count, create)


def test_round_robin_keeps_its_turns_when_cases_arrive_at_once(app, api, world, seed):
    # Each decision must see the one before it (the group row is locked while deciding on
    # PostgreSQL): otherwise concurrent cases read the same position and pile on one expert.
    for name in ("carol", "dave"):
        seed.user(name, groups=[world.group])
    set_routing(api, world, policy="round_robin")
    codes = open_cases_at_once(app, world, 16)
    counts = Counter(assignee(api, world, code) for code in codes)
    assert counts == {"alice": 4, "bob": 4, "carol": 4, "dave": 4}


def test_a_cap_holds_when_cases_arrive_at_once(app, api, world):
    set_routing(api, world, policy="least_active", max_open_cases=2)
    codes = open_cases_at_once(app, world, 8)
    counts = Counter(assignee(api, world, code) for code in codes)
    assert counts == {"alice": 2, "bob": 2, None: 4}


def test_least_active_picks_the_expert_with_fewest_open_cases(api, world):
    for _ in range(2):
        code, _ = open_case(api, world)
        api.post(f"/cases/{code}/assign", world.admin_token, json={"assignee": "alice"})
    set_routing(api, world, policy="least_active")
    code, _ = open_case(api, world)
    assert assignee(api, world, code) == "bob"
    reason = assigned_event(api, world, code)[0]["data"]["reason"]
    assert reason == "least_active → bob: 0 open case(s), fewest of 2 available"


def test_closed_cases_do_not_count_as_open(api, world):
    for _ in range(2):
        code, token = open_case(api, world)
        api.post(f"/cases/{code}/assign", world.admin_token, json={"assignee": "alice"})
        api.post(f"/cases/{code}/close", token)
    api.post(
        f"/cases/{open_case(api, world)[0]}/assign", world.admin_token, json={"assignee": "bob"}
    )
    set_routing(api, world, policy="least_active")
    assert assignee(api, world, open_case(api, world)[0]) == "alice"


def test_only_available_skips_away_and_offline_experts(api, world):
    set_routing(api, world, policy="round_robin", only_available=True)
    be_active(api, world.alice_token)
    be_active(api, world.bob_token)
    api.patch("/me", world.bob_token, json={"availability": "away"})
    assert {assignee(api, world, open_case(api, world)[0]) for _ in range(3)} == {"alice"}


def test_experts_go_offline_after_the_availability_window(api, world, clock):
    set_routing(api, world, policy="round_robin", only_available=True, available_within_minutes=10)
    be_active(api, world.alice_token)
    clock.advance(11 * 60)
    code, _ = open_case(api, world)
    assert assignee(api, world, code) is None
    reason = assigned_event(api, world, code)[0]["data"]["reason"]
    assert reason == "round_robin: nobody available (alice offline, bob offline) → unassigned"


def test_max_open_cases_caps_each_expert(api, world):
    set_routing(api, world, policy="round_robin", max_open_cases=1)
    first, second, third = (open_case(api, world)[0] for _ in range(3))
    assert [assignee(api, world, c) for c in (first, second, third)] == ["alice", "bob", None]


def test_schedule_filter_uses_each_experts_hours_in_their_time_zone(api, world, clock):
    # The fake clock says Monday 09:00 UTC, which is 10:00 in Paris and 04:00 in New York.
    api.patch(
        "/me",
        world.alice_token,
        json={
            "schedule": {
                "timezone": "America/New_York",
                "days": ["mon"],
                "start": "08:00",
                "end": "17:00",
            }
        },
    )
    api.patch(
        "/me",
        world.bob_token,
        json={
            "schedule": {
                "timezone": "Europe/Paris",
                "days": ["mon"],
                "start": "08:00",
                "end": "17:00",
            }
        },
    )
    set_routing(api, world, policy="round_robin", use_schedules=True)
    assert {assignee(api, world, open_case(api, world)[0]) for _ in range(3)} == {"bob"}
    clock.advance(6 * 3600)  # 15:00 UTC: 10:00 in New York, 16:00 in Paris
    assert {assignee(api, world, open_case(api, world)[0]) for _ in range(4)} == {"alice", "bob"}


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-01-05T22:30", True),
        ("2026-01-06T05:59", True),
        ("2026-01-06T06:00", False),
        ("2026-01-05T21:59", False),
        ("2026-01-06T23:00", False),
    ],
)
def test_a_night_shift_runs_past_midnight(local, expected):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    night = {"timezone": "Europe/Lisbon", "days": ["mon"], "start": "22:00", "end": "06:00"}
    moment = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("Europe/Lisbon"))
    assert within_schedule(night, moment) is expected


def test_default_user_policy_and_deployment_override(api, world, seed):
    set_routing(api, world, policy="default_user", default_user_id=world.bob.id)
    assert assignee(api, world, open_case(api, world)[0]) == "bob"
    _, key = seed.deployment(world.group, name="Round robin agent")
    api.patch(f"/deployments/{_.id}", world.admin_token, json={"policy": "round_robin"})
    response = api.post("/agent/cases", key, json={"source": "sos_button"})
    code = response.get_json()["case"]["code"]
    assert assigned_event(api, world, code)[0]["data"]["policy"] == "round_robin"


def test_unavailable_default_user_leaves_the_case_to_the_group(api, world):
    set_routing(
        api, world, policy="default_user", default_user_id=world.bob.id, only_available=True
    )
    code, _ = open_case(api, world)
    assert assignee(api, world, code) is None
    assert assigned_event(api, world, code)[0]["data"]["reason"] == (
        "default_user: bob offline → unassigned"
    )


def test_routing_settings_are_validated(api, world):
    bad = api.patch(
        f"/groups/{world.group.id}", world.admin_token, json={"routing": {"policy": "default_user"}}
    )
    assert bad.status_code == 422
    outsider = api.patch(
        f"/groups/{world.group.id}",
        world.admin_token,
        json={"routing": {"policy": "default_user", "default_user_id": world.outsider.id}},
    )
    assert outsider.status_code == 422
    assert "not an active member" in outsider.get_json()["error"]["message"]


def test_moving_a_case_to_another_group_routes_it_there(api, world, seed):
    carol = seed.user("carol", groups=[world.other_group])
    set_routing(api, world, group=world.other_group, policy="round_robin")
    code, _ = open_case(api, world)
    moved = api.patch(f"/cases/{code}", world.alice_token, json={"group_id": world.other_group.id})
    assert moved.status_code == 422  # alice cannot send cases to a group she is not in
    moved = api.patch(f"/cases/{code}", world.admin_token, json={"group_id": world.other_group.id})
    assert moved.get_json()["assignee"]["username"] in {carol.username, world.outsider.username}


def test_escalation_reassigns_once_when_the_assignee_does_not_connect(api, world, clock, runtime):
    set_routing(api, world, policy="round_robin", escalate_after_minutes=5)
    code, _ = open_case(api, world)
    assert assignee(api, world, code) == "alice"
    clock.advance(4 * 60)
    with runtime.store.write() as s:
        assert escalate(s, runtime.context()) == 0
    clock.advance(61)
    with runtime.store.write() as s:
        assert escalate(s, runtime.context()) == 1
    with runtime.store.write() as s:
        assert escalate(s, runtime.context()) == 0  # bob has had it for 0 min: nothing to do
    assert assignee(api, world, code) == "bob"
    last = assigned_event(api, world, code)[-1]["data"]["reason"]
    assert last == (
        "escalated: alice did not connect within 5 min; round_robin → bob: 1 available, bob next"
    )


def test_escalation_returns_the_case_when_nobody_else_is_available(api, world, clock, runtime):
    set_routing(
        api, world, policy="default_user", default_user_id=world.alice.id, escalate_after_minutes=2
    )
    code, _ = open_case(api, world)
    clock.advance(3 * 60)
    with runtime.store.write() as s:
        assert escalate(s, runtime.context()) == 1
    assert assignee(api, world, code) is None
    assert assigned_event(api, world, code)[-1]["data"]["reason"].startswith(
        "escalated: alice did not connect within 2 min; default_user: alice excluded"
    )


def test_an_assignee_who_connects_in_time_is_not_escalated(api, world, clock, runtime):
    set_routing(api, world, policy="round_robin", escalate_after_minutes=5)
    code, _ = open_case(api, world)
    api.post(f"/cases/{code}/connect", world.alice_token)
    api.post(f"/cases/{code}/disconnect", world.alice_token)
    clock.advance(10 * 60)
    with runtime.store.write() as s:
        assert escalate(s, runtime.context()) == 0
    assert assignee(api, world, code) == "alice"


def test_topics_route_cases_to_their_group(api, world, seed):
    carol = seed.user("carol", groups=[world.other_group])
    set_routing(
        api, world, group=world.other_group, policy="default_user", default_user_id=carol.id
    )
    response = api.patch(
        f"/deployments/{world.deployment.id}",
        world.admin_token,
        json={
            "topics": [
                {"name": "Printer", "group_id": world.group.id},
                {"name": "Invoices", "group_id": world.other_group.id},
            ]
        },
    )
    assert response.status_code == 200
    config = api.get("/agent/config", world.deployment_key).get_json()
    assert config["topics"] == ["Printer", "Invoices"]
    opened = api.post(
        "/agent/cases", world.deployment_key, json={"source": "sos_button", "topic": "Invoices"}
    )
    code = opened.get_json()["case"]["code"]
    case = api.get(f"/cases/{code}", world.admin_token).get_json()
    assert (case["group"]["name"], case["topic"], case["assignee"]["username"]) == (
        "Accounting",
        "Invoices",
        "carol",
    )
    unknown = api.post("/agent/cases", world.deployment_key, json={"topic": "Coffee"})
    assert unknown.status_code == 422
    assert "choose one of: Printer, Invoices" in unknown.get_json()["error"]["message"]


def test_topics_must_route_to_existing_groups(api, world):
    response = api.patch(
        f"/deployments/{world.deployment.id}",
        world.admin_token,
        json={"topics": [{"name": "Printer", "group_id": 999}]},
    )
    assert response.status_code == 422


def test_an_admin_as_default_user_passes_the_same_filters(api, world):
    set_routing(
        api, world, policy="default_user", default_user_id=world.admin.id, only_available=True
    )
    assert api.patch("/me", world.admin_token, json={"availability": "away"}).status_code == 200
    code, _ = open_case(api, world)
    assert assignee(api, world, code) is None
    assert assigned_event(api, world, code)[0]["data"]["reason"] == (
        "default_user: admin away → unassigned"
    )
    assert api.patch("/me", world.admin_token, json={"availability": "online"}).status_code == 200
    assert assignee(api, world, open_case(api, world)[0]) == "admin"


def test_moving_a_case_out_of_its_assignees_reach_logs_the_unassignment(api, world):
    set_routing(api, world, group=world.other_group, policy="none")
    code, _ = open_case(api, world)
    assert api.post(f"/cases/{code}/claim", world.alice_token).status_code == 200
    moved = api.patch(f"/cases/{code}", world.admin_token, json={"group_id": world.other_group.id})
    assert moved.get_json()["assignee"] is None
    events = api.get(f"/cases/{code}/events", world.admin_token).get_json()["events"]
    unassigned = [
        e for e in events if e["type"] == "case.assigned" and e["data"]["assignee"] is None
    ]
    assert len(unassigned) == 1
    assert unassigned[0]["data"]["reason"] == "moved to Accounting, where alice has no access"
    assert unassigned[0]["data"]["previous"]["username"] == "alice"


def test_customers_never_see_routing_reasons_or_usernames(api, world):
    set_routing(api, world, policy="round_robin", only_available=True)
    code, case_token = open_case(api, world)  # nobody available: routed, unassigned
    be_active(api, world.alice_token)
    assigned = api.post(f"/cases/{code}/assign", world.admin_token, json={"assignee": "alice"})
    assert assigned.status_code == 200
    events = api.get(f"/cases/{code}/events", case_token).get_json()["events"]
    by_type = {e["type"]: e for e in events}
    assert by_type["case.routed"]["data"] == {}
    assert by_type["case.assigned"]["data"] == {"assignee": {"display_name": "Alice"}}
    feed = api.get("/events?after=0", case_token).get_json()["events"]
    text = str([e["data"] for e in feed]) + str([e["actor"] for e in feed])
    for internal in ("round_robin", "nobody available", "alice", "admin", "reason"):
        assert internal not in text
