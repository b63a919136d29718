"""The real agent process against a real ``sos-backend serve`` process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.agentproc import AgentRunner
from tests.support.live import LiveBackend, start_backend

pytestmark = [
    pytest.mark.slow,
    # tests/support/live.py leaves its server.log handle to the garbage collector on start().
    pytest.mark.filterwarnings("ignore:.*server.log:pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LiveBackend]:
    live = start_backend(tmp_path)
    yield live
    live.stop()


@pytest.fixture
def agent(backend: LiveBackend, tmp_path: Path) -> AgentRunner:
    return AgentRunner(backend.url, backend.deployment_key, tmp_path / "home")


def cases(backend: LiveBackend) -> list[dict]:
    response = backend.api("GET", "/cases")
    assert response.status_code == 200, response.text
    return response.json()["cases"]


def test_first_launch_makes_the_shortcut_and_exactly_one_case(backend, agent) -> None:
    code, first = agent.headless()
    assert code == 0 and first["source"] == "first_launch" and first["status"] == "new"
    shortcut = agent.desktop / "sos-support-sos.desktop"
    assert shortcut.is_file() and "--sos" in shortcut.read_text()
    assert (agent.home / ".local/share/applications/sos-support-sos.desktop").is_file()
    # Starting again (e.g. at login) is not a first launch any more.
    assert agent.headless()[1]["code"] == first["code"]
    (case,) = cases(backend)
    assert case["code"] == first["code"] and case["source"] == "first_launch"
    assert case["device"]["device_id"]


def test_sos_while_a_case_is_open_brings_it_back_and_after_closing_opens_a_new_one(
    backend, agent
) -> None:
    _, first = agent.headless("--sos", "--name", "Bob", "--description", "Printer jam")
    _, again = agent.headless("--sos")
    assert again["code"] == first["code"]
    (case,) = cases(backend)
    assert case["customer"]["name"] == "Bob" and case["description"] == "Printer jam"

    closed = backend.api("POST", f"/cases/{first['code']}/close")
    assert closed.status_code == 200, closed.text
    _, new = agent.headless("--sos")
    assert new["code"] != first["code"] and new["source"] == "sos_button"
    assert len(cases(backend)) == 2


def test_backend_down_queues_the_request_and_delivers_exactly_one_case_when_back(
    backend, agent
) -> None:
    backend.stop()
    code, queued = agent.headless("--sos", timeout=1)
    assert code == 75 and queued["outcome"] == "queued" and queued["code"] is None
    code, still = agent.headless("--sos", timeout=1)  # a second click while offline
    assert code == 75
    backend.start()
    code, delivered = agent.headless("--sos")
    assert code == 0 and delivered["code"]
    (case,) = cases(backend)
    assert case["code"] == delivered["code"]
    assert list((agent.data_dir / "outbox").glob("*.json")) == []


def test_a_second_agent_process_hands_over_to_the_running_one(backend, agent) -> None:
    backend.stop()
    # The first agent runs (waiting for the backend); a second process hands over to it.
    running = agent.popen("--headless", "--sos", "--timeout", "30")
    deadline = time.monotonic() + 10
    while not (agent.data_dir / "instance.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = agent.popen("--headless", "--sos", "--timeout", "30")
    time.sleep(1)
    backend.start()
    out_first, err_first = running.communicate(timeout=60)
    out_second, err_second = second.communicate(timeout=60)
    first, handed = json.loads(out_first), json.loads(out_second)
    assert handed["handed_over"] is True, err_second
    assert handed["code"] == first["code"]
    assert len(cases(backend)) == 1


def test_the_sos_shortcut_hands_over_and_exits_within_a_second(backend, agent) -> None:
    backend.stop()  # keeps the running agent busy (waiting for the network) during the click
    running = agent.popen("--headless", "--sos", "--timeout", "20")
    try:
        deadline = time.monotonic() + 10
        while not (agent.data_dir / "instance.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        # What the desktop shortcut runs (window mode): it hands over without needing a display.
        clicked = agent.popen("--sos", DISPLAY="")
        _, clicked_err = clicked.communicate(timeout=10)
        elapsed = time.monotonic() - started
        assert clicked.returncode == 0, clicked_err
        assert elapsed < 1.0, f"hand-over took {elapsed:.2f} s"
    finally:
        backend.start()
        out, _ = running.communicate(timeout=30)
    assert json.loads(out)["code"]
    assert len(cases(backend)) == 1


def _offer_topic(backend: LiveBackend, name: str) -> int:
    """A second group, offered by the deployment as the topic ``name``; the group's id."""
    group = backend.api("POST", "/groups", json={"name": f"{name} team"})
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    patched = backend.api(
        "PATCH", f"/deployments/{backend.deployment_id}",
        json={"topics": [{"name": name, "group_id": group_id}]},
    )
    assert patched.status_code == 200, patched.text
    return group_id


def test_sos_with_a_topic_opens_the_case_in_the_topics_group(backend, agent) -> None:
    printers = _offer_topic(backend, "Printer")
    assert printers != backend.group_id
    code, opened = agent.headless("--sos", "--topic", "Printer", "--description", "Jammed")
    assert code == 0 and opened["topic"] == "Printer", opened
    case = backend.api("GET", f"/cases/{opened['code']}").json()
    assert case["topic"] == "Printer" and case["group"]["id"] == printers
    assert case["description"] == "Jammed"
    (only,) = cases(backend)
    assert only["code"] == opened["code"]
    # The topics are cached with the deployment's other settings.
    state = json.loads((agent.data_dir / "state.json").read_text())
    assert state["deployment"]["topics"] == ["Printer"]


def test_an_unknown_topic_names_the_valid_ones_and_exits_non_zero(backend, agent) -> None:
    _offer_topic(backend, "Printer")
    result = agent.run_headless("--sos", "--topic", "Fax")
    assert result.returncode == 3
    answer = json.loads(result.stdout)
    assert answer["outcome"] == "refused" and answer["topics"] == ["Printer"]
    assert "unknown topic 'Fax'; choose one of: Printer" in result.stderr
    assert cases(backend) == []  # nothing was opened, not even the first launch's case
    # A topic goes with a new request, never with a join.
    joined = agent.run_headless("--join", "s12-345-678", "--topic", "Printer")
    assert joined.returncode == 2 and "--topic" in joined.stderr


def test_join_on_a_first_run_joins_the_experts_case_and_opens_no_other(backend, agent) -> None:
    created = backend.api("POST", "/cases", json={"group_id": backend.group_id})
    assert created.status_code == 201, created.text
    manual = created.json()["code"]
    code, joined = agent.headless("--join", manual, "--name", "Bob")
    assert code == 0 and joined["code"] == manual and joined["outcome"] == "ok", joined
    (case,) = cases(backend)  # exactly one case: the expert's
    assert case["code"] == manual and case["source"] == "manual"
    assert case["deployment"]["id"] == backend.deployment_id  # joined by this agent
    assert case["customer"]["name"] == "Bob" and case["device"]["device_id"]
    # It was this agent's first run: the SOS button is on the desktop...
    assert (agent.desktop / "sos-support-sos.desktop").is_file()
    # ...and a later start is not a first launch: it shows the joined case, opens nothing.
    assert agent.headless()[1]["code"] == manual
    assert len(cases(backend)) == 1
    # The same code on another device is refused with a clear word.
    other = AgentRunner(backend.url, backend.deployment_key, agent.home.parent / "other")
    code, again = other.headless("--join", manual)
    assert code == 3 and again["error_code"] == "already_joined"
    assert len(cases(backend)) == 1
