"""Opening, joining, listing, editing and deleting cases."""

from __future__ import annotations

import re

from backend.models import Case, CaseToken
from tests.conftest import open_case

CODE = re.compile(r"^s\d{2}-\d{3}-\d{3}$")


def test_agent_case_has_a_session_code_source_and_device_details(api, world):
    response = api.post(
        "/agent/cases",
        world.deployment_key,
        json={
            "source": "first_launch",
            "customer": {"name": "Bob", "email": "bob@example.com"},
            "description": "Printer jam",
            "device": {
                "hostname": "bob-pc",
                "os": "Windows 11",
                "agent_version": "0.1.0",
                "device_id": "dev-1",
            },
        },
    )
    assert response.status_code == 201
    assert response.headers["Location"].endswith(response.get_json()["case"]["code"])
    body = response.get_json()
    assert CODE.match(body["case"]["code"]) and body["case_token"].startswith("sosc_")
    assert "group" not in body["case"] and "device" not in body["case"]
    expert_view = api.get(f"/cases/{body['case']['code']}", world.alice_token).get_json()
    assert expert_view["source"] == "first_launch"
    assert expert_view["device"] == {
        "hostname": "bob-pc",
        "os": "Windows 11",
        "agent_version": "0.1.0",
        "device_id": "dev-1",
    }
    assert expert_view["group"]["name"] == "Helpdesk"
    assert expert_view["deployment"]["id"] == world.deployment.id


def test_the_same_idempotency_key_returns_the_same_case_and_never_a_second(api, world, runtime):
    first = api.post(
        "/agent/cases",
        world.deployment_key,
        json={"source": "sos_button"},
        headers={"Idempotency-Key": "k-1"},
    )
    retry = api.post(
        "/agent/cases",
        world.deployment_key,
        json={"source": "sos_button"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.get_json()["case"]["code"] == retry.get_json()["case"]["code"]
    # The retry's token works too: a client whose first answer was lost is not locked out.
    code = retry.get_json()["case"]["code"]
    assert api.get(f"/cases/{code}", retry.get_json()["case_token"]).status_code == 200
    assert api.get(f"/cases/{code}", first.get_json()["case_token"]).status_code == 200
    with runtime.store.read() as s:
        assert s.query(Case).count() == 1
        assert s.query(CaseToken).count() == 2  # one per answer, none for a case not made


def test_session_codes_are_unique(api, world):
    codes = {open_case(api, world)[0] for _ in range(30)}
    assert len(codes) == 30 and all(CODE.match(c) for c in codes)


def test_default_assignee_of_the_deployment_gets_new_cases(api, world, seed):
    deployment, key = seed.deployment(world.group, name="Alice's agent", assignee=world.alice)
    response = api.post("/agent/cases", key, json={"source": "sos_button"})
    code = response.get_json()["case"]["code"]
    assert response.get_json()["case"]["expert"] == {"display_name": "Alice"}
    case = api.get(f"/cases/{code}", world.bob_token).get_json()
    assert case["assignee"]["username"] == "alice"


def test_agent_config_gives_the_deployment_settings(api, world):
    body = api.get("/agent/config", world.deployment_key).get_json()
    assert body == {
        "deployment": {"id": world.deployment.id, "name": world.deployment.name},
        "group": {"name": "Helpdesk"},
        "customer_fields": ["name", "email", "description"],
        "topics": [],
    }


def test_a_customer_joins_a_manual_case_once_by_its_code(api, world):
    created = api.post(
        "/cases", world.alice_token, json={"group_id": world.group.id, "customer": {"name": "Dana"}}
    )
    assert created.status_code == 201
    code = created.get_json()["code"]
    assert created.get_json()["source"] == "manual"
    joined = api.post("/agent/join", world.deployment_key, json={"code": code})
    assert joined.status_code == 200 and joined.get_json()["case"]["code"] == code
    token = joined.get_json()["case_token"]
    assert api.post(f"/cases/{code}/connect", token).get_json()["status"] == "pending"
    again = api.post("/agent/join", world.deployment_key, json={"code": code})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_joined"


def test_a_retried_join_with_the_same_key_gets_the_case_again(api, world):
    created = api.post("/cases", world.alice_token, json={"group_id": world.group.id})
    code = created.get_json()["code"]
    first = api.post(
        "/agent/join", world.deployment_key, json={"code": code}, headers={"Idempotency-Key": "j1"}
    )
    assert first.status_code == 200
    # The answer was lost; the agent retries with the same key and is not locked out.
    retry = api.post(
        "/agent/join", world.deployment_key, json={"code": code}, headers={"Idempotency-Key": "j1"}
    )
    assert retry.status_code == 200
    token = retry.get_json()["case_token"]
    assert token != first.get_json()["case_token"]
    assert api.get(f"/cases/{code}", token).get_json()["code"] == code
    # Another device (another key) still cannot take the case over.
    other = api.post(
        "/agent/join", world.deployment_key, json={"code": code}, headers={"Idempotency-Key": "j2"}
    )
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "already_joined"


def test_a_retried_message_with_the_same_key_is_stored_once(api, world):
    code, token = open_case(api, world)
    headers = {"Idempotency-Key": "m-1"}
    first = api.post(f"/cases/{code}/messages", token, json={"body": "Hello"}, headers=headers)
    retry = api.post(f"/cases/{code}/messages", token, json={"body": "Hello"}, headers=headers)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.get_json()["id"] == first.get_json()["id"]
    other = api.post(
        f"/cases/{code}/messages", token, json={"body": "Hello"}, headers={"Idempotency-Key": "m-2"}
    )
    assert other.status_code == 201
    bodies = [m["body"] for m in api.get(f"/cases/{code}/messages", token).get_json()["messages"]]
    assert bodies == ["Hello", "Hello"]
    events = api.get(f"/cases/{code}/events", world.admin_token).get_json()["events"]
    assert [e["type"] for e in events].count("case.message") == 2


def test_the_same_message_key_on_two_cases_makes_two_messages(api, world):
    (a, a_token), (b, b_token) = open_case(api, world), open_case(api, world)
    headers = {"Idempotency-Key": "same"}
    assert (
        api.post(f"/cases/{a}/messages", a_token, json={"body": "x"}, headers=headers).status_code
        == 201
    )
    assert (
        api.post(f"/cases/{b}/messages", b_token, json={"body": "y"}, headers=headers).status_code
        == 201
    )


def test_joining_an_unknown_code_or_an_agent_case_is_404(api, world):
    agent_code, _ = open_case(api, world)
    for code in ("s00-000-000", agent_code):
        response = api.post("/agent/join", world.deployment_key, json={"code": code})
        assert response.status_code == 404


def test_list_filters_by_status_group_assignee_and_text(api, world):
    a, a_token = open_case(api, world, customer={"name": "Printer Pete"})
    b, _ = open_case(api, world, description="mail is broken")
    api.post(f"/cases/{a}/claim", world.alice_token)
    api.post(f"/cases/{a}/connect", a_token)

    def codes(**params):
        body = api.get("/cases", world.alice_token, query_string=params).get_json()
        return [c["code"] for c in body["cases"]]

    assert codes() == [b, a]
    assert codes(status="pending") == [a]
    assert codes(status="new,pending") == [b, a]
    assert codes(assignee="me") == [a]
    assert codes(assignee="none") == [b]
    assert codes(assignee="alice") == [a]
    assert codes(q="printer") == [a]
    assert codes(q="MAIL") == [b]
    assert codes(q=b) == [b]
    assert codes(group=world.other_group.id) == []
    counts = api.get("/cases", world.alice_token).get_json()["counts"]
    assert counts == {"new": 1, "pending": 1, "in_progress": 0}


def test_text_search_treats_wildcards_literally(api, world):
    open_case(api, world, description="100% broken")
    open_case(api, world, description="fine")
    body = api.get("/cases", world.alice_token, query_string={"q": "%"}).get_json()
    assert len(body["cases"]) == 1


def test_cursor_pagination_walks_every_case_once(api, world):
    made = [open_case(api, world)[0] for _ in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = api.get("/cases", world.alice_token, query_string=params).get_json()
        seen += [c["code"] for c in body["cases"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


def test_a_supporter_of_several_groups_pages_through_all_their_cases_once(api, world, seed):
    third = seed.group("Sales")
    both = seed.user("bea", groups=[world.group, world.other_group])
    token = seed.token(both)
    keys = {g.name: seed.deployment(g)[1] for g in (world.other_group, third)}

    def open_in(key):
        response = api.post("/agent/cases", key, json={"source": "api"})
        return response.get_json()["case"]["code"]

    mine, hidden = [], []
    for i in range(8):  # interleaved, so pages mix the groups
        mine.append(open_case(api, world)[0] if i % 2 else open_in(keys["Accounting"]))
        hidden.append(open_in(keys["Sales"]))
    assert api.post(f"/cases/{mine[3]}/claim", world.alice_token).status_code == 200
    for params, expected in (
        ({}, list(reversed(mine))),
        ({"assignee": "none"}, [c for c in reversed(mine) if c != mine[3]]),
        ({"status": "new"}, list(reversed(mine))),
    ):
        seen, cursor = [], None
        while True:
            query = params | {"limit": 3} | ({"cursor": cursor} if cursor else {})
            body = api.get("/cases", token, query_string=query).get_json()
            seen += [c["code"] for c in body["cases"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, params
        assert not set(seen) & set(hidden)


def test_customer_edits_own_details_but_not_the_group(api, world):
    code, token = open_case(api, world)
    response = api.patch(
        f"/cases/{code}",
        token,
        json={
            "customer": {"name": "Eve", "email": "eve@example.com"},
            "description": "Screen flickers",
        },
    )
    assert response.status_code == 200
    assert response.get_json()["customer"] == {"name": "Eve", "email": "eve@example.com"}
    refused = api.patch(f"/cases/{code}", token, json={"group_id": world.other_group.id})
    assert refused.status_code == 422


def test_expert_moves_a_case_to_another_group_and_loses_sight_of_it(api, world, seed):
    code, _ = open_case(api, world)
    api.post(f"/cases/{code}/claim", world.alice_token)
    admin_move = api.patch(
        f"/cases/{code}", world.admin_token, json={"group_id": world.other_group.id}
    )
    assert admin_move.get_json()["group"]["name"] == "Accounting"
    # Alice has no access to Accounting, so she no longer holds the case.
    assert admin_move.get_json()["assignee"] is None
    assert api.get(f"/cases/{code}", world.alice_token).status_code == 404
    assert api.get(f"/cases/{code}", world.outsider_token).status_code == 200


def test_only_admins_delete_and_deleted_cases_disappear(api, world):
    code, token = open_case(api, world)
    assert api.delete(f"/cases/{code}", world.alice_token).status_code == 403
    assert api.delete(f"/cases/{code}", world.admin_token).status_code == 204
    assert api.get(f"/cases/{code}", world.admin_token).status_code == 404
    assert api.get(f"/cases/{code}", token).status_code == 404
    assert api.get("/cases", world.admin_token).get_json()["cases"] == []


def test_chat_goes_both_ways_in_order(api, world):
    code, token = open_case(api, world, customer={"name": "Finn"})
    api.post(f"/cases/{code}/messages", world.alice_token, json={"body": "Hello, I'm Alice"})
    sent = api.post(f"/cases/{code}/messages", token, json={"body": "Hi!"})
    assert sent.status_code == 201
    messages = api.get(f"/cases/{code}/messages", token).get_json()["messages"]
    assert [(m["author"]["kind"], m["author"]["name"], m["body"]) for m in messages] == [
        ("expert", "Alice", "Hello, I'm Alice"),
        ("customer", "Finn", "Hi!"),
    ]
    later = api.get(
        f"/cases/{code}/messages", world.alice_token, query_string={"after": messages[0]["id"]}
    ).get_json()["messages"]
    assert [m["body"] for m in later] == ["Hi!"]
