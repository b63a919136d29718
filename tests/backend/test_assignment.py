"""Assignment rules: who may be assigned, unassigning, claims and connect-to-take."""

from __future__ import annotations

from tests.conftest import open_case


def assign(api, token, code, assignee, **extra):
    return api.post(f"/cases/{code}/assign", token, json={"assignee": assignee} | extra)


def test_assign_to_me_to_a_colleague_and_unassign(api, world):
    code, _ = open_case(api, world)
    assert assign(api, world.alice_token, code, "me").get_json()["assignee"]["username"] == "alice"
    assert assign(api, world.alice_token, code, "bob").get_json()["assignee"]["username"] == "bob"
    assert assign(api, world.alice_token, code, None).get_json()["assignee"] is None
    reasons = [
        e["data"]["reason"]
        for e in api.get(f"/cases/{code}/events", world.admin_token).get_json()["events"]
        if e["type"] == "case.assigned"
    ]
    assert reasons == ["taken by alice", "assigned by alice", "unassigned by alice"]


def test_cannot_assign_to_someone_without_access_to_the_group(api, world):
    code, _ = open_case(api, world)
    response = assign(api, world.alice_token, code, "olga")
    assert response.status_code == 422
    assert "no access to the group Helpdesk" in response.get_json()["error"]["message"]


def test_admins_can_be_assigned_anywhere(api, world):
    code, _ = open_case(api, world)
    assert assign(api, world.alice_token, code, "admin").status_code == 200


def test_claim_only_succeeds_while_unassigned(api, world):
    code, _ = open_case(api, world)
    assert api.post(f"/cases/{code}/claim", world.alice_token).status_code == 200
    lost = api.post(f"/cases/{code}/claim", world.bob_token)
    assert lost.status_code == 409 and lost.get_json()["error"]["code"] == "already_assigned"
    again = api.post(f"/cases/{code}/claim", world.alice_token)
    assert again.status_code == 200  # claiming what one already holds is fine
    conditional = assign(api, world.bob_token, code, "me", if_unassigned=True)
    assert conditional.status_code == 409


def test_an_expert_who_connects_to_an_unassigned_case_gets_it(api, world):
    code, _ = open_case(api, world)
    body = api.post(f"/cases/{code}/connect", world.bob_token).get_json()
    assert body["assignee"]["username"] == "bob"


def test_connecting_does_not_steal_an_assigned_case(api, world):
    code, _ = open_case(api, world)
    assign(api, world.alice_token, code, "me")
    body = api.post(f"/cases/{code}/connect", world.bob_token).get_json()
    assert body["assignee"]["username"] == "alice"


def test_deactivated_users_cannot_be_assigned(api, world):
    code, _ = open_case(api, world)
    api.patch(f"/users/{world.bob.id}", world.admin_token, json={"active": False})
    assert assign(api, world.alice_token, code, "bob").status_code == 422
