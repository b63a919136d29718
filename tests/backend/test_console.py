"""The web console through the Flask test client: log-in, CSRF, pages, access and languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from backend.console.i18n import CATALOGUES
from backend.models import Case, User
from tests.conftest import Api, World, open_case

CONSOLE = Path(__file__).parents[2] / "backend" / "console"


def csrf_of(client: FlaskClient, path: str = "/console/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def log_in(client: FlaskClient, username: str, password: str = "password-123"):
    token = csrf_of(client)
    return client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token},
    )


def test_pages_send_anonymous_visitors_to_the_login_page(client, world):
    response = client.get("/console/queue")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=/console/queue")


def test_logging_in_with_the_right_password_opens_the_queue(client, world):
    response = log_in(client, "alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/queue"
    page = client.get("/console/queue")
    assert page.status_code == 200
    assert "Alice" in page.get_data(as_text=True)


def test_the_session_cookie_is_httponly_and_samesite(client, world):
    response = log_in(client, "alice")
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie


def test_a_wrong_password_is_refused_with_a_message_and_no_session(client, world):
    response = log_in(client, "alice", "not-the-password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert client.get("/console/queue").status_code == 302


def test_a_login_post_without_the_csrf_token_is_refused(client, world):
    client.get("/console/login")
    response = client.post("/console/login", data={"username": "alice", "password": "password-123"})
    assert response.status_code == 403
    assert client.get("/console/queue").status_code == 302


def test_a_new_case_form_post_without_the_csrf_token_is_refused(client, world, runtime):
    log_in(client, "alice")
    response = client.post("/console/cases/new", data={"group_id": str(world.group.id)})
    assert response.status_code == 403
    with runtime.store.read() as s:
        assert s.query(Case).count() == 0


def test_api_calls_with_the_session_cookie_need_the_csrf_header(client, world):
    code, _ = open_case_through_agent(client, world)
    log_in(client, "alice")
    refused = client.post(f"/api/v1/cases/{code}/claim")
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.get_json()["error"]["message"]
    token = csrf_of(client, "/console/queue")
    claimed = client.post(f"/api/v1/cases/{code}/claim", headers={"X-CSRF-Token": token})
    assert claimed.status_code == 200
    assert claimed.get_json()["assignee"]["username"] == "alice"


def open_case_through_agent(client: FlaskClient, world: World) -> tuple[str, str]:
    return open_case(Api(client), world, description="The printer jams")


def test_logout_needs_the_csrf_token_and_ends_the_session(client, world):
    log_in(client, "alice")
    assert client.post("/console/logout").status_code == 403
    token = csrf_of(client, "/console/queue")
    response = client.post("/console/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/console/queue").status_code == 302


def test_login_redirects_only_to_console_paths(client, world):
    token = csrf_of(client)
    response = client.post(
        "/console/login",
        data={
            "username": "alice",
            "password": "password-123",
            "csrf_token": token,
            "next": "https://evil.example/steal",
        },
    )
    assert response.headers["Location"] == "/console/queue"


def test_a_deactivated_user_cannot_log_in(client, world, runtime):
    with runtime.store.write() as s:
        s.get(User, world.bob.id).active = False
    response = log_in(client, "bob")
    assert response.status_code == 401
    assert "deactivated" in response.get_data(as_text=True)


def test_console_pages_carry_security_headers(client, world):
    log_in(client, "alice")
    response = client.get("/console/queue")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script>" not in response.get_data(as_text=True)  # no inline script: CSP holds


def test_the_case_page_shows_a_case_of_ones_group(client, world):
    code, _ = open_case_through_agent(client, world)
    log_in(client, "alice")
    page = client.get(f"/console/cases/{code}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert code in html
    assert "The printer jams" in html  # in the page's data for its script
    assert '"username": "bob"' in html  # a colleague to assign to


def test_a_supporter_of_another_group_gets_404_for_the_case_page(client, world):
    code, _ = open_case_through_agent(client, world)
    log_in(client, "olga")
    assert client.get(f"/console/cases/{code}").status_code == 404


def test_admin_pages_are_for_admins_only(client, world):
    log_in(client, "alice")
    for page in ("users", "groups", "deployments"):
        assert client.get(f"/console/admin/{page}").status_code == 403
    client.post("/console/logout", data={"csrf_token": csrf_of(client, "/console/queue")})
    log_in(client, "admin")
    for page in ("users", "groups", "deployments"):
        assert client.get(f"/console/admin/{page}").status_code == 200


def test_the_new_case_form_opens_a_case_and_shows_the_code_and_the_instruction(
    client, world, runtime
):
    log_in(client, "alice")
    token = csrf_of(client, "/console/cases/new")
    response = client.post(
        "/console/cases/new",
        data={
            "csrf_token": token,
            "group_id": str(world.group.id),
            "name": "Jane Doe",
            "email": "jane@example.com",
            "description": "Cannot print",
        },
    )
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    code = re.search(r'id="new-code">(s\d{2}-\d{3}-\d{3})<', html).group(1)
    assert "I have a code" in html
    with runtime.store.read() as s:
        case = s.query(Case).filter_by(code=code).one()
        assert (case.source, case.customer_name, case.group_id) == (
            "manual",
            "Jane Doe",
            world.group.id,
        )


def test_the_new_case_form_reports_bad_input_and_keeps_what_was_typed(client, world, runtime):
    log_in(client, "alice")
    token = csrf_of(client, "/console/cases/new")
    response = client.post(
        "/console/cases/new",
        data={
            "csrf_token": token,
            "group_id": str(world.other_group.id),
            "name": "Jane Doe",
            "email": "not-an-email",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "E-mail:" in html
    assert 'value="Jane Doe"' in html
    response = client.post(
        "/console/cases/new",
        data={"csrf_token": token, "group_id": str(world.other_group.id)},
    )
    assert response.status_code == 422
    assert "is not one of yours" in response.get_data(as_text=True)
    with runtime.store.read() as s:
        assert s.query(Case).count() == 0


@pytest.mark.parametrize(
    ("lang", "expected"), [("fr", "File d&#39;attente"), ("pt", "Fila"), ("en", "Queue")]
)
def test_the_console_speaks_english_french_and_portuguese(client, world, lang, expected):
    log_in(client, "alice")
    html = client.get(f"/console/queue?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}">' in html
    assert f"<h1>{expected}</h1>" in html
    # The choice sticks for the next pages.
    assert f'<html lang="{lang}">' in client.get("/console/cases/new").get_data(as_text=True)


def test_the_browser_language_is_used_when_none_was_chosen(client, world):
    html = client.get("/console/login", headers={"Accept-Language": "pt-BR,pt;q=0.9"}).get_data(
        as_text=True
    )
    assert '<html lang="pt">' in html
    assert "Entrar" in html


def used_strings() -> set[str]:
    """Every English string the templates, views and scripts pass through translation."""
    found: set[str] = set()
    for path in CONSOLE.rglob("*"):
        text = path.read_text(encoding="utf-8") if path.suffix in {".py", ".html", ".js"} else ""
        if path.suffix in {".py", ".html"}:
            found |= set(re.findall(r"""_\(\s*["']((?:[^"'\\]|\\.)+)["']""", text))
        if path.suffix == ".js":
            found |= set(re.findall(r'\bt\(\s*"((?:[^"\\]|\\.)+)"', text))
    return found


@pytest.mark.parametrize("lang", ["fr", "pt"])
def test_every_console_string_has_a_translation(lang):
    catalogue = json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))
    strings = used_strings()
    assert len(strings) > 100
    missing = sorted(s for s in strings if s not in catalogue)
    assert missing == []
    for source, translated in catalogue.items():
        assert re.findall(r"\{\w+\}", source) == re.findall(r"\{\w+\}", translated), source


def test_repeated_wrong_passwords_are_slowed_down_with_a_readable_page(client, world):
    limit = 10  # SOS_RATELIMIT_LOGIN_ACCOUNT's default: 10/minute
    for _ in range(limit):
        assert log_in(client, "alice", "wrong-password").status_code == 401
    refused = log_in(client, "alice", "password-123")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many login attempts" in refused.get_data(as_text=True)
    assert refused.mimetype == "text/html"
    assert log_in(client, "bob").status_code == 302  # another account is not affected


PUBLIC_CONSOLE_ENDPOINTS = {"console.login", "console.static"}
ADMIN_CONSOLE_ENDPOINTS = {
    "console.admin_users",
    "console.admin_groups",
    "console.admin_deployments",
}


def console_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of every console page, from the app's own route table."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console."):
            continue
        path = rule.rule.replace("<code>", "s00-000-000").replace("<path:filename>", "console.css")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, path))
    return routes


def test_every_console_page_needs_a_login_and_admin_pages_an_admin(app, client, world):
    routes = console_routes(app)
    assert {endpoint for endpoint, _, _ in routes} >= ADMIN_CONSOLE_ENDPOINTS | {"console.queue"}
    for endpoint, method, path in routes:
        if endpoint in PUBLIC_CONSOLE_ENDPOINTS:
            continue
        response = client.open(path, method=method, follow_redirects=True)
        assert response.request.path == "/console/login", (endpoint, method)
        assert "<h1>Log in</h1>" in response.get_data(as_text=True), (endpoint, method)
    log_in(client, "alice")
    token = csrf_of(client, "/console/queue")
    for endpoint, method, path in routes:
        if endpoint in ADMIN_CONSOLE_ENDPOINTS:
            data = {"csrf_token": token} if method == "POST" else None
            assert client.open(path, method=method, data=data).status_code == 403, endpoint
