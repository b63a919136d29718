"""Bad input gets a 4xx with a JSON error a person can act on, never a 500, and writes nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from backend.models import Case, CaseToken, Event, Group, Message, User
from tests.conftest import open_case

COUNTED = (Case, Event, CaseToken, Message, User, Group)


def row_counts(runtime) -> dict[str, int]:
    with runtime.store.read() as s:
        return {
            model.__tablename__: s.scalar(select(func.count()).select_from(model))
            for model in COUNTED
        }


def assert_error(response, status: int | set[int], code: str | None = None) -> dict:
    """A 4xx with {"error": {"code", "message"}} and a message worth reading."""
    statuses = status if isinstance(status, set) else {status}
    assert response.status_code in statuses, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert len(error["message"]) > 10
    if code is not None:
        assert error["code"] == code
    return error


@pytest.fixture
def unchanged(runtime):
    """Asserts, after the test, that no row was added or removed by the rejected requests."""
    holder = {}

    def start() -> None:
        holder["before"] = row_counts(runtime)

    yield start
    assert "before" in holder, "call unchanged() once the set-up is done"
    assert row_counts(runtime) == holder["before"]


def raw_post(api, path, token, data, content_type="application/json", method="POST"):
    return api.call(method, path, token, data=data, headers={"Content-Type": content_type})


# ---- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"{", b'{"source": "api",}', b"{'source': 'api'}", b"\xff\xfe{}", b"[" * 5000, b"nul"],
    ids=["unclosed", "trailing-comma", "single-quotes", "not-utf8", "deeply-nested", "bare-word"],
)
def test_malformed_json_is_refused_as_invalid_json_and_opens_no_case(api, world, unchanged, data):
    unchanged()
    response = raw_post(api, "/agent/cases", world.deployment_key, data)
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("path", ["/agent/cases", "/agent/join"])
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("sosd_not-a-key", 401, "unauthorized"),
        ("alice", 403, "forbidden"),
        ("deployment", 400, "invalid_json"),
    ],
)
def test_who_calls_is_checked_before_what_they_sent(
    api, world, unchanged, path, caller, status, code
):
    # The agent's endpoints validate the body before their unit of work begins; a stranger
    # still learns only that the credentials are wrong, not what a valid body looks like.
    token = {"alice": world.alice_token, "deployment": world.deployment_key}.get(caller, caller)
    unchanged()
    assert_error(raw_post(api, path, token, b'{"source": '), status, code)


@pytest.mark.parametrize("data", [b"[]", b'"text"', b"null", b"42"])
def test_json_that_is_not_an_object_is_a_validation_error(api, world, unchanged, data):
    unchanged()
    assert_error(raw_post(api, "/agent/cases", world.deployment_key, data), 422, "validation_error")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"group_id": "1"}, "group_id"),
        ({"group_id": 1.0}, "group_id"),
        ({"group_id": True}, "group_id"),
        ({"group_id": None}, "group_id"),
        ({"group_id": 10**30}, "group_id"),
        ({"group_id": 0}, "group_id"),
        ({"group_id": -1}, "group_id"),
        ({"group_id": 1, "customer": "Bob"}, "customer"),
        ({"group_id": 1, "customer": {"name": 7}}, "customer.name"),
        ({"group_id": 1, "description": ["a"]}, "description"),
        ({}, "group_id"),
    ],
    ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else str(v),
)
def test_wrong_types_name_the_field_and_create_nothing(api, world, unchanged, body, field):
    unchanged()
    error = assert_error(api.post("/cases", world.alice_token, json=body), 422, "validation_error")
    assert field in [d["field"] for d in error["details"]]
    assert field in error["message"]


def test_an_empty_body_where_one_is_required_names_the_missing_field(api, world, unchanged):
    unchanged()
    error = assert_error(api.post("/cases", world.alice_token), 422, "validation_error")
    assert error["details"][0]["field"] == "group_id"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/agent/cases", {"source": "api", "priority": "high"}, "priority"),
        ("/agent/cases", {"customer": {"name": "Bob", "phone": "1"}}, "customer.phone"),
        ("/agent/cases", {"device": {"hostname": "pc", "ram": 8}}, "device.ram"),
    ],
)
def test_unknown_fields_are_refused_by_name(api, world, unchanged, path, body, field):
    unchanged()
    error = assert_error(api.post(path, world.deployment_key, json=body), 422, "validation_error")
    assert {"field": field, "message": "unknown field; remove it"} in error["details"]


def test_unknown_fields_in_a_patch_change_nothing(api, world):
    code, _ = open_case(api, world, description="before")
    response = api.patch(
        f"/cases/{code}", world.alice_token, json={"description": "after", "status": "closed"}
    )
    assert_error(response, 422, "validation_error")
    assert api.get(f"/cases/{code}", world.alice_token).get_json()["description"] == "before"


# ---- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer": {"name": "n" * 101}}, "customer.name"),
        ({"customer": {"email": "a" * 64 + "@" + ("b" * 63 + ".") * 3 + "com"}}, None),
        ({"description": "d" * 4001}, "description"),
        ({"device": {"hostname": "h" * 256}}, "device.hostname"),
    ],
    ids=["name-101", "email-over-254", "description-4001", "hostname-256"],
)
def test_over_long_strings_are_refused_and_open_no_case(api, world, unchanged, body, field):
    unchanged()
    error = assert_error(api.post("/agent/cases", world.deployment_key, json=body), 422)
    if field:
        assert error["details"][0]["field"] == field
    else:
        assert error["details"][0]["field"].startswith("customer.email")


def test_strings_at_their_limit_are_accepted(api, world):
    email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(email) == 254
    body = {"customer": {"name": "n" * 100, "email": email}, "description": "d" * 4000}
    response = api.post("/agent/cases", world.deployment_key, json=body)
    assert response.status_code == 201, response.get_json()
    case = response.get_json()["case"]
    assert len(case["customer"]["name"]) == 100 and len(case["description"]) == 4000


def test_an_over_long_message_is_refused_and_not_stored(api, world, runtime):
    code, token = open_case(api, world)
    before = row_counts(runtime)
    response = api.post(f"/cases/{code}/messages", token, json={"body": "m" * 4001})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "body"
    assert api.post(f"/cases/{code}/messages", token, json={"body": "m" * 4000}).status_code == 201
    after = row_counts(runtime)
    assert after["messages"] == before["messages"] + 1


@pytest.mark.parametrize(
    "email", ["not-an-email", "bob@", "@example.com", "bob@@example.com", "bob example@x.com", ""]
)
def test_invalid_emails_are_refused_with_the_field_named(api, world, unchanged, email):
    unchanged()
    body = {"customer": {"name": "Bob", "email": email}}
    error = assert_error(api.post("/agent/cases", world.deployment_key, json=body), 422)
    assert error["details"][0]["field"].startswith("customer.email")


def test_an_invalid_email_for_a_new_user_creates_no_user(api, world, unchanged):
    unchanged()
    body = {"username": "carol", "password": "password-123", "email": "carol@"}
    assert_error(api.post("/users", world.admin_token, json=body), 422, "validation_error")


def test_a_body_over_64_kib_is_refused_with_413(api, world, unchanged):
    unchanged()
    data = json.dumps({"description": "x" * (64 * 1024)}).encode()
    error = assert_error(
        raw_post(api, "/agent/cases", world.deployment_key, data), 413, "payload_too_large"
    )
    assert "65536" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_not_sent_as_json_is_refused_with_415(api, world, unchanged, content_type):
    unchanged()
    data = json.dumps({"source": "api"}).encode()
    response = raw_post(api, "/agent/cases", world.deployment_key, data, content_type)
    assert_error(response, 415, "unsupported_media_type")


# ---- control characters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "printer\x00broken"}, "description"),
        ({"description": "bell\x07"}, "description"),
        ({"customer": {"name": "Bob\nSmith"}}, "customer.name"),
        ({"customer": {"name": "Bob\x00"}}, "customer.name"),
        ({"device": {"hostname": "pc\x1b[31m"}}, "device.hostname"),
    ],
    ids=["nul-in-text", "bell-in-text", "newline-in-name", "nul-in-name", "escape-in-hostname"],
)
def test_control_characters_are_refused_and_open_no_case(api, world, unchanged, body, field):
    unchanged()
    error = assert_error(api.post("/agent/cases", world.deployment_key, json=body), 422)
    assert error["details"][0]["field"] == field
    assert "control characters" in error["message"]


def test_line_breaks_and_tabs_are_allowed_in_free_text(api, world):
    code, token = open_case(api, world, description="line one\n\tline two\r\n")
    response = api.post(f"/cases/{code}/messages", token, json={"body": "a\nb\tc"})
    assert response.status_code == 201
    assert response.get_json()["body"] == "a\nb\tc"


@pytest.mark.parametrize("body", ["\x00", "   ", "hi\x00there", ""])
def test_blank_or_nul_messages_are_refused_and_not_stored(api, world, runtime, body):
    code, token = open_case(api, world)
    before = row_counts(runtime)
    response = api.post(f"/cases/{code}/messages", token, json={"body": body})
    assert_error(response, 422, "validation_error")
    assert row_counts(runtime) == before


def test_control_characters_in_a_search_are_refused(api, world):
    response = api.get("/cases", world.alice_token, query_string={"q": "bob\x00"})
    assert_error(response, 422, "validation_error")


def test_a_nul_in_the_idempotency_key_is_refused_and_opens_no_case(api, world, unchanged):
    unchanged()
    for key in ("a\x00b", "x" * 101, "clé"):
        response = api.post(
            "/agent/cases", world.deployment_key, json={}, headers={"Idempotency-Key": key}
        )
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == "Idempotency-Key"


# ---- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["s00-000-000", "s12-345-67", "nonsense", "s12%00345", "x" * 500, "%E2%98%83"]
)
def test_unknown_or_malformed_case_codes_get_404(api, world, code):
    for method, suffix in (("GET", ""), ("POST", "/connect"), ("GET", "/events")):
        response = api.call(method, f"/cases/{code}{suffix}", world.admin_token)
        assert_error(response, 404, "not_found")


def test_joining_an_unknown_code_gets_404_and_a_malformed_one_422(api, world, unchanged):
    unchanged()
    response = api.post("/agent/join", world.deployment_key, json={"code": "s00-000-000"})
    assert_error(response, 404, "not_found")
    response = api.post("/agent/join", world.deployment_key, json={"code": "12345678"})
    error = assert_error(response, 422, "validation_error")
    assert "s12-345-678" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/users/2147483647",
        "/users/2147483648",
        "/users/99999999999999999999999",
        "/users/-1",
        "/users/abc",
        "/groups/9223372036854775808",
        "/deployments/2147483647",
        "/tokens/99999999999999999999",
    ],
)
def test_huge_or_malformed_ids_in_paths_get_404(api, world, path):
    method = "DELETE" if path.startswith("/tokens") else "GET"
    assert_error(api.call(method, path, world.admin_token), 404, "not_found")


def test_membership_of_unknown_users_or_groups_gets_404(api, world):
    assert_error(
        api.call("PUT", f"/groups/{world.group.id}/members/2147483647", world.admin_token), 404
    )
    assert_error(
        api.call("PUT", f"/groups/2147483647/members/{world.alice.id}", world.admin_token), 404
    )


def test_a_wrong_method_gets_405_with_the_allowed_ones(api, world):
    response = api.call("PUT", "/cases", world.alice_token)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


# ---- queries: cursors, wait, limits ----------------------------------------------------------


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "9" * 19, "%00"])
def test_a_bad_case_list_cursor_is_refused_naming_the_cursor(api, world, cursor):
    response = api.get("/cases", world.alice_token, query_string={"cursor": cursor})
    error = assert_error(response, {400, 422})
    assert "cursor" in error["message"]


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "9" * 19, "", " 1"])
def test_a_bad_feed_cursor_is_refused(api, world, after):
    response = api.get("/events", world.alice_token, query_string={"after": after})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "after"


@pytest.mark.parametrize("wait", ["26", "-1", "abc", "nan", "inf", "1e400", ""])
def test_a_bad_wait_is_refused_at_once(api, world, wait):
    response = api.get("/events", world.alice_token, query_string={"after": "0", "wait": wait})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "wait"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/cases", {"limit": "0"}, "limit"),
        ("/cases", {"limit": "101"}, "limit"),
        ("/cases", {"status": "open"}, "status"),
        ("/cases", {"group": "2147483648"}, "group"),
        ("/cases", {"assignee": "bad name"}, "assignee"),
        ("/cases", {"sort": "name"}, "sort"),
        ("/events", {"limit": "501"}, "limit"),
    ],
)
def test_bad_query_parameters_name_the_parameter(api, world, path, params, field):
    error = assert_error(api.get(path, world.alice_token, query_string=params), 422)
    assert error["details"][0]["field"].split(".")[0] == field


def test_query_parameters_on_a_call_without_any_are_refused(api, world):
    response = api.get("/me", world.alice_token, query_string={"verbose": "1"})
    error = assert_error(response, 400, "bad_request")
    assert "verbose" in error["message"]


# ---- nothing half-written --------------------------------------------------------------------


def test_a_rejected_manual_case_in_an_unknown_group_leaves_no_case_and_no_event(
    api, world, unchanged
):
    unchanged()
    response = api.post("/cases", world.alice_token, json={"group_id": 2147483647})
    assert_error(response, 422, "validation_error")


def test_an_edit_refused_half_way_changes_no_field_and_records_no_event(api, world, runtime):
    code, token = open_case(api, world, customer={"name": "Bob"})
    before = row_counts(runtime)
    # The customer's name would be applied before the group change is refused.
    body = {"customer": {"name": "Mallory"}, "group_id": world.other_group.id}
    assert_error(api.patch(f"/cases/{code}", token, json=body), 422, "validation_error")
    body = {"customer": {"name": "Mallory"}, "group_id": 2147483647}
    assert_error(api.patch(f"/cases/{code}", world.alice_token, json=body), 422)
    assert row_counts(runtime) == before
    case = api.get(f"/cases/{code}", world.alice_token).get_json()
    assert case["customer"]["name"] == "Bob" and case["group"]["name"] == "Helpdesk"


def test_a_rejected_user_creation_leaves_no_user_behind(api, world, unchanged):
    unchanged()
    body = {"username": "carol", "password": "password-123", "group_ids": [2147483647]}
    response = api.post("/users", world.admin_token, json=body)
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    duplicate = {"username": "alice", "password": "password-123"}
    assert_error(api.post("/users", world.admin_token, json=duplicate), 409)


def test_no_bad_request_in_this_file_ever_answers_500(api, world):
    """A sweep of odd bodies against every body-taking endpoint: always a 4xx JSON error."""
    from backend.api.framework import OPERATIONS

    code, _ = open_case(api, world)
    bodies = [b"{", b"[]", b'{"x": 1}', b'{"name": "\\u0000"}', b'{"a":' * 200, b"\x00"]
    for op in OPERATIONS:
        if op.body is None:
            continue
        path = (
            op.rule.removeprefix("/api/v1")
            .replace("<code>", code)
            .replace("<int(max=2147483647):user_id>", str(world.alice.id))
            .replace("<int(max=2147483647):group_id>", str(world.group.id))
            .replace("<int(max=2147483647):deployment_id>", str(world.deployment.id))
        )
        token = world.deployment_key if "deployment" in op.callers else world.admin_token
        for data in bodies:
            response = raw_post(api, path, token, data, method=op.method)
            assert 400 <= response.status_code < 500, (op.endpoint, data, response.status_code)
            assert_error(response, response.status_code)
