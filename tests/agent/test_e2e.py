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
