"""The console in a real Chromium against a live server: what an expert really sees and does."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.databases import missing
from tests.support.live import ADMIN_PASSWORD, SUPPORTER_PASSWORD, LiveBackend, start_backend

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    live = start_backend(tmp_path_factory.mktemp("console-browser"))
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        missing("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def log_in(page, username: str, password: str) -> None:
    page.goto("/console/login")
    page.get_by_label(re.compile("Username")).fill(username)
    page.get_by_label(re.compile("Password")).fill(password)
    page.get_by_role("button", name="Log in").click()
    try:
        # The queue page may already have put its filters in the address (?status=...).
        page.wait_for_url(re.compile(r"/console/queue(\?.*)?$"))
    except Exception as exc:
        raise AssertionError(
            f"login did not reach the queue; page was:\n{page.content()[:3000]}"
        ) from exc


def open_agent_case(server: LiveBackend, **body) -> tuple[str, str]:
    response = requests.post(
        server.url + "/api/v1/agent/cases",
        json={"source": "sos_button", **body},
        headers={"Authorization": f"Bearer {server.deployment_key}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    data = response.json()
    return data["case"]["code"], data["case_token"]


def customer(server: LiveBackend, token: str, method: str, path: str, **kwargs):
    response = requests.request(
        method,
        server.url + "/api/v1" + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        **kwargs,
    )
    assert response.ok, response.text
    return response.json()


def screenshot(page, name: str, tmp_path: Path) -> None:
    """Kept with the test's files; also written to docs/ when DOCS_SCREENSHOTS names a folder."""
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if target := os.environ.get("DOCS_SCREENSHOTS"):
        page.screenshot(path=str(Path(target) / name), full_page=True)


def test_an_expert_sees_a_case_live_claims_connects_chats_and_closes_it(page, server, tmp_path):
    log_in(page, "alice", SUPPORTER_PASSWORD)
    page.get_by_text("Live", exact=True).wait_for()

    # A customer presses SOS: the case appears in the queue without a reload.
    code, token = open_agent_case(
        server,
        customer={"name": "Jane Doe", "email": "jane@example.com"},
        description="The printer in room 12 jams on every page",
        device={"hostname": "PC-JANE", "os": "Windows 11", "agent_version": "0.1.0"},
    )
    row = page.locator(f'tr[data-code="{code}"]')
    row.wait_for()
    assert "Jane Doe" in row.inner_text()
    assert page.locator("#count-new").inner_text() == "1"

    # Claim it from the queue.
    row.get_by_role("button", name="Claim").click()
    page.locator(f'tr[data-code="{code}"] >> text=Alice Martin').wait_for()
    screenshot(page, "console-queue.png", tmp_path)

    # Open the case page and connect: the expert side is in, the status moves to pending.
    page.get_by_role("link", name=code).click()
    page.wait_for_url(f"**/console/cases/{code}")
    assert page.locator("#code").inner_text() == code
    page.get_by_role("button", name="Connect", exact=True).click()
    page.locator("#status", has_text="Pending").wait_for()
    # The customer's agent connects: both sides are in.
    customer(server, token, "POST", f"/cases/{code}/connect")
    page.locator("#status", has_text="In progress").wait_for()
    page.locator("#customer-presence", has_text="connected").wait_for()

    # Chat both ways.
    page.get_by_placeholder("Write to the customer…").fill("Hello Jane, I am looking at it.")
    page.keyboard.press("Enter")
    page.locator("#messages", has_text="Hello Jane, I am looking at it.").wait_for()
    seen = customer(server, token, "GET", f"/cases/{code}/messages")["messages"]
    assert [m["body"] for m in seen] == ["Hello Jane, I am looking at it."]
    customer(server, token, "POST", f"/cases/{code}/messages", json={"body": "Thank you!"})
    page.locator("#messages", has_text="Thank you!").wait_for()
    page.locator("#timeline", has_text="The customer connected").wait_for()
    screenshot(page, "console-case.png", tmp_path)

    # Close it; the customer's view says closed too.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Close case").click()
    page.locator("#status", has_text="Closed").wait_for()
    assert customer(server, token, "GET", f"/cases/{code}")["status"] == "closed"


def test_leaving_the_case_page_disconnects_the_expert(page, server):
    log_in(page, "alice", SUPPORTER_PASSWORD)
    code, _ = open_agent_case(server, description="Leaving test")
    page.goto(f"/console/cases/{code}")
    page.get_by_role("button", name="Connect", exact=True).click()
    page.locator("#status", has_text="Pending").wait_for()
    page.goto("/console/queue")
    page.locator(f'tr[data-code="{code}"]').wait_for()
    case = server.api("GET", f"/cases/{code}").json()
    assert case["expert_connected"] is False
    assert case["status"] == "new"


def test_a_supporter_of_another_group_cannot_see_the_case(page, server):
    group = server.api("POST", "/groups", json={"name": "Accounting"}).json()
    created = server.api(
        "POST",
        "/users",
        json={"username": "olga", "password": "olga-password-1", "group_ids": [group["id"]]},
    )
    assert created.status_code == 201, created.text
    code, _ = open_agent_case(server, description="Only Helpdesk may see this")
    log_in(page, "olga", "olga-password-1")
    page.get_by_text("Live", exact=True).wait_for()
    page.locator("#queue-empty").wait_for(state="visible")
    assert code not in page.locator("#cases").inner_text()
    response = page.goto(f"/console/cases/{code}")
    assert response.status == 404


def test_a_form_post_without_the_csrf_token_is_refused(page, server):
    log_in(page, "alice", SUPPORTER_PASSWORD)
    # The browser's own cookies, a forged form without the token.
    response = page.request.post(
        "/console/cases/new", form={"group_id": str(server.group_id), "name": "Forged"}
    )
    assert response.status == 403
    listed = server.api("GET", "/cases", params={"q": "Forged"}).json()["cases"]
    assert listed == []


def test_the_console_is_usable_at_phone_width(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 390, "height": 800})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        log_in(page, "alice", SUPPORTER_PASSWORD)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing forces sideways scrolling of the page
        assert page.title() == "Queue · SOS"
    finally:
        context.close()


def test_an_admin_adds_a_user_and_a_deployment_whose_key_is_shown_once_and_works(page, server):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/console/admin/users")
    form = page.locator("#new-user")
    form.get_by_label("Username", exact=True).fill("bruno")
    form.get_by_label("Name", exact=True).fill("Bruno Costa")
    form.get_by_label(re.compile("^Password")).fill("bruno-password-1")
    form.get_by_label("Helpdesk").check()
    form.get_by_role("button", name="Add the user").click()
    page.locator("#users tr", has_text="Bruno Costa").wait_for()
    bruno = next(u for u in server.api("GET", "/users").json()["users"] if u["username"] == "bruno")
    assert [g["name"] for g in bruno["groups"]] == ["Helpdesk"]

    # Bad input is reported in the form, and nothing is created.
    form.get_by_label("Username", exact=True).fill("bruno")
    form.get_by_label(re.compile("^Password")).fill("another-password")
    form.get_by_role("button", name="Add the user").click()
    form.locator(".error").wait_for(state="visible")
    assert "bruno" in form.locator(".error").inner_text()

    page.goto("/console/admin/deployments")
    form = page.locator("#new-deployment")
    form.get_by_role("textbox", name="Name").fill("Acme laptops")
    form.get_by_role("button", name="Add the deployment").click()
    page.locator("#secret-value", has_text="sosd_").wait_for()
    key = page.locator("#secret-value").inner_text()
    assert key.startswith("sosd_")
    page.locator("#deployments tr", has_text="Acme laptops").wait_for()
    opened = requests.post(
        server.url + "/api/v1/agent/cases",
        json={"source": "api"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert opened.status_code == 201
    page.get_by_role("button", name="Done").click()
    assert page.locator("#secret-value").inner_text() == ""
    page.reload()
    assert key not in page.content()  # shown once, never again


def test_an_expert_creates_an_api_token_on_the_profile_page(page, server):
    log_in(page, "alice", SUPPORTER_PASSWORD)
    page.goto("/console/me")
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create a token").click()
    page.locator("#secret-value", has_text="sosu_").wait_for()
    token = page.locator("#secret-value").inner_text()
    assert token.startswith("sosu_")
    me = requests.get(
        server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert me.json()["username"] == "alice"
    page.locator("#tokens li", has_text="laptop").wait_for()


def test_an_admin_sets_a_groups_assignment_and_a_deployments_topics(page, server):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/console/admin/groups")
    row = page.locator("#groups tr", has_text="Helpdesk")
    row.locator("summary").click()
    form = row.locator("form.routing")
    form.get_by_label("Policy").select_option("round_robin")
    form.get_by_label("Only experts who are available").check()
    form.get_by_label(re.compile("Reassign when")).fill("7")
    form.get_by_role("button", name="Save").click()
    row.locator("summary", has_text="Round robin").wait_for()
    group = server.api("GET", f"/groups/{server.group_id}").json()
    assert group["routing"]["policy"] == "round_robin"
    assert group["routing"]["only_available"] is True
    assert group["routing"]["escalate_after_minutes"] == 7

    page.goto("/console/admin/deployments")
    row = page.locator("#deployments tr", has_text="Test agent")
    row.locator("summary", has_text="Topics").click()
    row.get_by_role("button", name="Add a topic").click()
    row.get_by_placeholder("e.g. Printer").fill("Printer")
    row.get_by_role("button", name="Save").click()
    page.locator("#deployments tr summary", has_text="Topics: Printer").wait_for()
    deployment = server.api("GET", f"/deployments/{server.deployment_id}").json()
    assert deployment["topics"] == [{"name": "Printer", "group_id": server.group_id}]
    # The routing is put back for the other tests of this module's server.
    server.api("PATCH", f"/groups/{server.group_id}", json={"routing": {"policy": "none"}})
    server.api("PATCH", f"/deployments/{server.deployment_id}", json={"topics": []})
