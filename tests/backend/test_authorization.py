"""The authorization matrix: every API operation × every kind of caller.

The operations come from ``backend.api.framework.OPERATIONS``, so a new endpoint is part of the
matrix the moment it is declared, and fails here until ``CALLS`` says how to call it. The expected
answer of each cell is derived from the operation's declared ``callers`` and the visibility rules:

- anonymous callers get 401 (unless the operation is for anyone);
- a credential of the wrong kind gets 403;
- a case outside the caller's reach answers 404: a supporter outside the case's group, or the
  case token of another case (the case's existence is not revealed);
- every other caller succeeds with the operation's declared 2xx answer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import backend.api  # noqa: F401 - importing the API registers every operation
from backend.api.framework import OPERATIONS, Operation
from backend.errors import Unauthorized
from backend.services import accounts
from tests.conftest import open_case

# Kinds of caller, and the principal kind their credential resolves to.
CALLERS = {
    "anonymous": None,
    "other_case_token": "case",
    "own_case_token": "case",
    "deployment_key": "deployment",
    "supporter_outside_group": "user",
    "supporter_in_group": "user",
    "admin": "user",
}
ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 422: "validation_error"}


@dataclass
class Cell:
    """One cell of the matrix: fresh objects to act on, so cells never disturb each other."""

    env: MatrixEnv
    caller: str
    code: str
    case_token: str

    @property
    def user(self):  # the user behind the caller's credential, if any
        world = self.env.world
        return {
            "supporter_outside_group": world.outsider,
            "supporter_in_group": world.alice,
            "admin": world.admin,
        }.get(self.caller)


@dataclass
class MatrixEnv:
    api: Any
    world: Any
    seed: Any
    other_case_token: str
    names: itertools.count = field(default_factory=lambda: itertools.count(1))

    def unique(self, prefix: str) -> str:
        return f"{prefix}{next(self.names)}"

    def token_for(self, caller: str, cell: Cell) -> str | None:
        w = self.world
        return {
            "anonymous": None,
            "other_case_token": self.other_case_token,
            "own_case_token": cell.case_token,
            "deployment_key": w.deployment_key,
            "supporter_outside_group": w.outsider_token,
            "supporter_in_group": w.alice_token,
            "admin": w.admin_token,
        }[caller]

    def fresh_user(self, groups=()):
        return self.seed.user(self.unique("user"), groups=list(groups))

    def fresh_group(self):
        return self.seed.group(self.unique("Group "))

    def fresh_deployment(self):
        return self.seed.deployment(self.world.group, name=self.unique("Agent "))[0]

    def fresh_manual_case(self) -> str:
        response = self.api.post(
            "/cases", self.world.admin_token, json={"group_id": self.world.group.id}
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()["code"]


@dataclass(frozen=True)
class Call:
    """How to call one operation in a cell: path parameters and a minimal valid body."""

    path: Callable[[Cell], dict[str, Any]] = lambda cell: {}
    body: Callable[[Cell], Any] | None = None
    # Operations scoped to the Helpdesk group through a body or path id (not a case code):
    # what a supporter outside the group gets.
    outsider_status: int | None = None


def _case(cell: Cell) -> dict[str, Any]:
    return {"code": cell.code}


def _own_token_id(cell: Cell) -> dict[str, Any]:
    # A user revokes only their own tokens: each user caller gets a spare one to revoke.
    creator = cell.caller if cell.user is not None else "admin"
    spare = cell.env.api.post("/tokens", cell.env.token_for(creator, cell), json={"name": "spare"})
    return {"token_id": spare.get_json()["id"]}


CALLS: dict[str, Call] = {
    # accounts
    "api.login_token": Call(
        body=lambda c: {"username": "alice", "password": "password-123", "name": "matrix"}
    ),
    "api.get_me": Call(),
    "api.patch_me": Call(body=lambda c: {"display_name": "Renamed"}),
    "api.rotate_webhook_secret": Call(),
    "api.list_tokens": Call(),
    "api.create_token": Call(body=lambda c: {"name": "matrix"}),
    "api.delete_token": Call(path=_own_token_id),
    # users
    "api.list_users": Call(),
    "api.create_user": Call(
        body=lambda c: {"username": c.env.unique("new"), "password": "password-123"}
    ),
    "api.get_user": Call(path=lambda c: {"user_id": c.env.fresh_user().id}),
    "api.patch_user": Call(
        path=lambda c: {"user_id": c.env.fresh_user().id},
        body=lambda c: {"display_name": "Renamed"},
    ),
    # groups
    "api.list_groups": Call(),
    "api.create_group": Call(body=lambda c: {"name": c.env.unique("Group ")}),
    "api.get_group": Call(path=lambda c: {"group_id": c.env.world.group.id}, outsider_status=404),
    "api.patch_group": Call(
        path=lambda c: {"group_id": c.env.fresh_group().id}, body=lambda c: {"description": "x"}
    ),
    "api.delete_group": Call(path=lambda c: {"group_id": c.env.fresh_group().id}),
    "api.add_member": Call(
        path=lambda c: {"group_id": c.env.world.group.id, "user_id": c.env.fresh_user().id}
    ),
    "api.remove_member": Call(
        path=lambda c: {
            "group_id": c.env.world.group.id,
            "user_id": c.env.fresh_user([c.env.world.group]).id,
        }
    ),
    # deployments
    "api.list_deployments": Call(),
    "api.create_deployment": Call(
        body=lambda c: {"name": c.env.unique("Agent "), "group_id": c.env.world.group.id}
    ),
    "api.get_deployment": Call(path=lambda c: {"deployment_id": c.env.fresh_deployment().id}),
    "api.patch_deployment": Call(
        path=lambda c: {"deployment_id": c.env.fresh_deployment().id},
        body=lambda c: {"name": c.env.unique("Renamed ")},
    ),
    "api.rotate_deployment_key": Call(
        path=lambda c: {"deployment_id": c.env.fresh_deployment().id}
    ),
    # agent
    "api.agent_config": Call(),
    "api.agent_open_case": Call(body=lambda c: {"source": "sos_button"}),
    "api.agent_join": Call(body=lambda c: {"code": c.env.fresh_manual_case()}),
    # cases
    "api.list_queue": Call(),
    "api.create_case": Call(body=lambda c: {"group_id": c.env.world.group.id}, outsider_status=422),
    "api.get_case": Call(path=_case),
    "api.patch_case": Call(path=_case, body=lambda c: {"description": "It got worse"}),
    "api.remove_case": Call(path=_case),
    "api.assign": Call(path=_case, body=lambda c: {"assignee": "me"}),
    "api.claim": Call(path=_case),
    "api.connect": Call(path=_case),
    "api.heartbeat": Call(path=_case),
    "api.disconnect": Call(path=_case),
    "api.close": Call(path=_case),
    "api.list_messages": Call(path=_case),
    "api.post_message": Call(path=_case, body=lambda c: {"body": "Hello"}),
    "api.case_events": Call(path=_case),
    # feed
    "api.events_feed": Call(),
}


def missing_from_tables(operations: list[Operation]) -> set[str]:
    """Operations the matrix does not know how to call."""
    return {op.endpoint for op in operations} - set(CALLS)


def success_statuses(op: Operation) -> set[int]:
    return {status for status in op.responses if 200 <= status < 300}


def expected_statuses(op: Operation, caller: str, call: Call) -> set[int]:
    """The answer a caller must get, from the declared callers and the visibility rules."""
    if "anyone" in op.callers:
        return success_statuses(op)
    kind = CALLERS[caller]
    if kind is None:
        return {401}
    allowed = kind in op.callers or (caller == "admin" and "admin" in op.callers)
    if not allowed:
        return {403}
    if "<code>" in op.rule and caller in ("other_case_token", "supporter_outside_group"):
        return {404}
    if call.outsider_status is not None and caller == "supporter_outside_group":
        return {call.outsider_status}
    return success_statuses(op)


def fill_rule(op: Operation, params: dict[str, Any]) -> str:
    path = op.rule
    for name, value in params.items():
        path, count = re.subn(rf"<(?:[^:>]+:)?{name}>", str(value), path)
        assert count == 1, f"{op.endpoint}: no path parameter {name}"
    assert "<" not in path, f"{op.endpoint}: CALLS gives no value for a path parameter in {path}"
    return path.removeprefix("/api/v1")


@pytest.fixture
def env(api, world, seed) -> MatrixEnv:
    _, other_token = open_case(api, world)  # a case in the same group: only the token differs
    return MatrixEnv(api, world, seed, other_token)


def test_the_matrix_tables_cover_every_declared_operation_and_nothing_else():
    assert missing_from_tables(OPERATIONS) == set()
    assert set(CALLS) - {op.endpoint for op in OPERATIONS} == set(), "stale entries in CALLS"


def test_the_matrix_refuses_an_operation_missing_from_its_tables(monkeypatch):
    newcomer = Operation(
        method="POST",
        rule="/api/v1/cases/<code>/escalate",
        endpoint="api.escalate",
        summary="a new endpoint nobody added to the matrix",
        callers=("user",),
        responses={200: None},
    )
    monkeypatch.setattr("backend.api.framework.OPERATIONS", [*OPERATIONS, newcomer])
    from backend.api import framework

    assert missing_from_tables(framework.OPERATIONS) == {"api.escalate"}


def test_each_kind_of_caller_has_a_credential_of_that_kind(env, world):
    cell = Cell(env, "anonymous", *open_case(env.api, world))
    prefixes = {caller: (env.token_for(caller, cell) or "")[:5] for caller in CALLERS}
    assert prefixes == {
        "anonymous": "",
        "other_case_token": "sosc_",
        "own_case_token": "sosc_",
        "deployment_key": "sosd_",
        "supporter_outside_group": "sosu_",
        "supporter_in_group": "sosu_",
        "admin": "sosu_",
    }
    assert env.token_for("other_case_token", cell) != env.token_for("own_case_token", cell)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.openapi_path}")
def test_each_caller_gets_the_answer_its_kind_and_visibility_allow(op, env, world):
    assert op.endpoint in CALLS, f"add {op.endpoint} to CALLS in {__name__}"
    call = CALLS[op.endpoint]
    wrong = []
    for caller in CALLERS:
        code, case_token = open_case(env.api, world)
        cell = Cell(env, caller, code, case_token)
        path = fill_rule(op, call.path(cell))
        kwargs = {"json": call.body(cell)} if call.body else {}
        response = env.api.call(op.method, path, env.token_for(caller, cell), **kwargs)
        expected = expected_statuses(op, caller, call)
        if response.status_code not in expected:
            wrong.append(
                f"{caller}: {response.status_code} {response.get_data(as_text=True)[:200]}"
            )
            continue
        if response.status_code >= 400:
            assert response.get_json()["error"]["code"] == ERROR_CODES[response.status_code]
    assert not wrong, f"{op.method} {path} answered unexpectedly:\n" + "\n".join(wrong)


# ---- visibility inside answers that succeed ---------------------------------------------------


def test_a_supporter_outside_the_group_sees_neither_the_case_in_the_queue_nor_its_events(
    api, world
):
    start = api.get("/events", world.outsider_token).get_json()["cursor"]
    code, _ = open_case(api, world)
    queue = api.get("/cases", world.outsider_token).get_json()
    assert code not in [c["code"] for c in queue["cases"]]
    assert sum(queue["counts"].values()) == 0
    feed = api.get("/events", world.outsider_token, query_string={"after": start}).get_json()
    assert feed["events"] == []
    inside = api.get("/cases", world.alice_token).get_json()
    assert code in [c["code"] for c in inside["cases"]]


def test_a_case_token_feed_shows_only_its_own_case(api, world):
    code, token = open_case(api, world)
    other_code, _ = open_case(api, world)
    api.post(f"/cases/{other_code}/messages", world.alice_token, json={"body": "not for you"})
    events = api.get("/events", token, query_string={"after": 0}).get_json()["events"]
    assert {e["case_code"] for e in events} == {code}


def test_a_case_token_reads_the_customer_view_without_internal_fields(api, world):
    code, token = open_case(api, world, device={"hostname": "pc-1"})
    view = api.get(f"/cases/{code}", token).get_json()
    assert not {"group", "assignee", "deployment", "device", "connected_expert"} & set(view)
    expert_view = api.get(f"/cases/{code}", world.alice_token).get_json()
    assert expert_view["device"]["hostname"] == "pc-1"


def test_a_customer_cannot_move_their_case_to_another_group(api, world):
    code, token = open_case(api, world)
    response = api.patch(f"/cases/{code}", token, json={"group_id": world.other_group.id})
    assert response.status_code == 422
    assert api.get(f"/cases/{code}", world.admin_token).get_json()["group"]["name"] == "Helpdesk"


def test_a_deployment_key_cannot_join_a_case_of_another_group(api, world):
    manual = api.post("/cases", world.outsider_token, json={"group_id": world.other_group.id})
    code = manual.get_json()["code"]
    response = api.post("/agent/join", world.deployment_key, json={"code": code})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_a_user_cannot_revoke_another_users_token(api, world):
    tokens = api.get("/tokens", world.alice_token).get_json()["tokens"]
    response = api.delete(f"/tokens/{tokens[0]['id']}", world.bob_token)
    assert response.status_code == 404
    assert api.get("/me", world.alice_token).status_code == 200


def test_a_revoked_token_or_an_inactive_deployment_gets_401(api, world):
    tokens = api.get("/tokens", world.bob_token).get_json()["tokens"]
    assert api.delete(f"/tokens/{tokens[0]['id']}", world.bob_token).status_code == 204
    assert api.get("/me", world.bob_token).status_code == 401
    api.patch(f"/deployments/{world.deployment.id}", world.admin_token, json={"active": False})
    response = api.get("/agent/config", world.deployment_key)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_a_deactivated_user_token_gets_401(api, world):
    api.patch(f"/users/{world.bob.id}", world.admin_token, json={"active": False})
    assert api.get("/me", world.bob_token).status_code == 401


def test_a_malformed_authorization_header_gets_401(api, world):
    for header in ("Basic YWxpY2U6cHc=", "Bearer", "Bearer   ", world.alice_token, "sosu_nope"):
        response = api.client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_rotated_or_deactivated_key_opens_no_case(api, world):
    # Opening a case checks the key inside the transaction that would store the case.
    def open_with(key: str):
        return api.post("/agent/cases", key, json={"source": "api"})

    def case_count() -> int:
        return len(api.get("/cases", world.admin_token).get_json()["cases"])

    assert open_with(world.deployment_key).status_code == 201
    rotated = api.post(f"/deployments/{world.deployment.id}/rotate-key", world.admin_token)
    new_key = rotated.get_json()["key"]
    assert open_with(world.deployment_key).status_code == 401
    assert open_with(new_key).status_code == 201
    api.patch(f"/deployments/{world.deployment.id}", world.admin_token, json={"active": False})
    response = open_with(new_key)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    assert case_count() == 2


# ---- who a secret or a console session stands for ----------------------------------------------


def _principal(runtime, *, secret: str | None = None, user_id: int | None = None):
    with runtime.store.read() as s:
        if secret is not None:
            return accounts.resolve_secret(s, runtime.context(), secret)
        return accounts.principal_for_user_id(s, runtime.context(), user_id)


def test_a_user_token_stands_for_its_user_and_exactly_their_groups(runtime, seed, world):
    third = seed.group("Field service")
    carol = seed.user("carol", groups=[world.group, third])
    nobody = seed.user("nadia")
    for user, token, groups in (
        (carol, seed.token(carol), {world.group.id, third.id}),
        (world.alice, world.alice_token, {world.group.id}),
        (nobody, seed.token(nobody), set()),
        (world.admin, world.admin_token, set()),
    ):
        for principal in (_principal(runtime, secret=token), _principal(runtime, user_id=user.id)):
            assert (principal.kind, principal.user_id, principal.username) == (
                "user",
                user.id,
                user.username,
            )
            assert principal.group_ids == groups
            assert principal.role == user.role and principal.display_name == user.display_name
        assert _principal(runtime, secret=token).token_id is not None
        assert _principal(runtime, user_id=user.id).token_id is None


def test_a_membership_change_applies_to_the_next_request(runtime, world, api):
    with runtime.store.write() as s:
        accounts.add_member(s, world.other_group.id, world.alice.id)
    assert _principal(runtime, secret=world.alice_token).group_ids == {
        world.group.id,
        world.other_group.id,
    }
    with runtime.store.write() as s:
        accounts.remove_member(s, world.group.id, world.alice.id)
    assert _principal(runtime, user_id=world.alice.id).group_ids == {world.other_group.id}
    code, _ = open_case(api, world)  # in the group she has just left
    assert api.get(f"/cases/{code}", world.alice_token).status_code == 404


def test_a_deactivated_user_has_neither_token_nor_console_session(runtime, world, api):
    api.patch(f"/users/{world.bob.id}", world.admin_token, json={"active": False})
    with pytest.raises(Unauthorized):
        _principal(runtime, secret=world.bob_token)
    with pytest.raises(Unauthorized, match="session has ended"):
        _principal(runtime, user_id=world.bob.id)


def _last_seen(runtime, user):
    with runtime.store.read() as s:
        return s.get(type(user), user.id).last_seen_at


def test_an_experts_requests_record_their_activity_at_most_once_a_minute(
    api, world, runtime, clock
):
    # Every kind of call counts, the feed's long-poll (which reads in one session) included.
    for call in (
        lambda: api.get("/cases", world.alice_token),
        lambda: api.get("/events", world.alice_token, query_string={"after": "0", "wait": 0}),
    ):
        clock.advance(61)
        assert call().status_code == 200
        recorded = _last_seen(runtime, world.alice)
        assert recorded == clock.now()
        clock.advance(30)
        assert call().status_code == 200
        assert _last_seen(runtime, world.alice) == recorded  # not again within the minute
