from __future__ import annotations

import random
from pathlib import Path

import pytest

from sos_agent.client import ApiClient, ApiError, TransportError, parse_retry_after
from sos_agent.core import AgentCore
from sos_agent.outbox import Outbox, OutboxWorker, backoff_delay
from sos_agent.state import RuntimeState


class Crash(Exception):
    """Stands for the process dying at that point."""


def test_queued_request_is_on_disk_before_anything_is_sent(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    entry = outbox.enqueue("open_case", "POST", "/agent/cases", {"source": "sos_button"})
    files = list((tmp_path / "outbox").glob("*"))
    assert [f.name for f in files if f.is_file()] == [f"{entry.id}.json"]  # no temp files left
    again = Outbox(tmp_path).pending()
    assert [e.idempotency_key for e in again] == [entry.idempotency_key]


def test_crash_between_write_and_send_still_delivers_exactly_one_case(
    fake_backend, make_config
) -> None:
    config = make_config(fake_backend.url)
    core = AgentCore(config)
    record = core.request_help()  # written to the outbox; the process "dies" before sending
    assert fake_backend.cases == {}

    restarted = AgentCore(make_config(fake_backend.url))
    restarted.worker.run_once()
    assert len(fake_backend.cases) == 1
    assert restarted.state.case(record.local_id).token.startswith("sosc_")
    assert len(restarted.outbox) == 0


def test_crash_after_the_server_answered_resends_with_the_same_key_and_makes_no_second_case(
    fake_backend, make_config
) -> None:
    core = AgentCore(make_config(fake_backend.url))
    record = core.request_help()
    real_send = core._send

    def send_then_die(entry):
        real_send(entry)
        raise Crash  # the case exists on the server, but the outbox file was not removed

    with pytest.raises(Crash):
        core.outbox.deliver_next(send_then_die)
    assert len(core.outbox) == 1

    restarted = AgentCore(make_config(fake_backend.url))
    restarted.worker.run_once()
    assert len(fake_backend.cases) == 1
    keys = [h.get("Idempotency-Key") for m, p, h, b in fake_backend.requests if p.endswith("cases")]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert restarted.state.case(record.local_id).code == next(iter(fake_backend.cases))


def test_server_errors_are_retried_with_backoff_honouring_retry_after(
    fake_backend, tmp_path: Path
) -> None:
    now = [1000.0]
    outbox = Outbox(tmp_path, clock=lambda: now[0])
    client = ApiClient(fake_backend.url, "sosd_k")
    outbox.enqueue("open_case", "POST", "/agent/cases", {"source": "api"})
    fake_backend.fail_next = [(503, {"Retry-After": "120"}), (429, {})]

    def send(entry):
        client.request(entry.method, entry.path, json=entry.body)

    with pytest.raises(TransportError):
        outbox.deliver_next(send)
    (entry,) = outbox.pending()
    assert entry.attempts == 1 and entry.next_attempt_at >= 1120.0
    assert outbox.deliver_next(send) == pytest.approx(entry.next_attempt_at - 1000.0)
    now[0] = entry.next_attempt_at
    with pytest.raises(TransportError):
        outbox.deliver_next(send)  # 429
    now[0] = outbox.pending()[0].next_attempt_at
    assert outbox.deliver_next(send) == 0.0
    assert len(fake_backend.cases) == 1 and len(outbox) == 0


def test_network_down_marks_the_agent_offline_and_keeps_the_request(make_config) -> None:
    core = AgentCore(make_config("http://127.0.0.1:9"))
    record = core.request_help()
    delay = core.worker.run_once()
    assert core.online is False
    assert delay is not None and delay > 0
    assert core.state.case(record.local_id).token is None
    assert len(core.outbox) == 1


def test_a_request_refused_for_good_goes_to_the_failed_folder(
    fake_backend, make_config
) -> None:
    core = AgentCore(make_config(fake_backend.url))
    record = core.join("s99-999-999")  # the fake backend knows no such code
    core.worker.run_once()
    assert len(core.outbox) == 0 and len(core.outbox.failed()) == 1
    assert core.state.case(record.local_id).failed == "not_found"


def test_worker_thread_delivers_as_soon_as_it_is_woken(fake_backend, make_config) -> None:
    core = AgentCore(make_config(fake_backend.url))
    core.start()
    try:
        record = core.request_help()
        assert core.wait_until_sent(record.local_id, timeout=5).token
    finally:
        core.stop()


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng=rng) for n in range(1, 10)]
    for n, d in enumerate(delays, start=1):
        step = min(60.0, 2 ** (n - 1))
        assert step / 2 <= d <= step
    assert backoff_delay(1, retry_after=30, rng=rng) >= 30


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None


def test_api_errors_carry_the_backend_code(fake_backend) -> None:
    client = ApiClient(fake_backend.url, "sosd_k")
    with pytest.raises(ApiError) as info:
        client.request("GET", "/nothing")
    assert (info.value.status, info.value.code) == (404, "not_found")


def test_state_survives_restart_with_the_case_token(fake_backend, make_config) -> None:
    core = AgentCore(make_config(fake_backend.url))
    record = core.request_help()
    OutboxWorker(core.outbox, core._send).run_once()
    state = RuntimeState(core.config.data_dir)
    assert state.current().token == core.state.case(record.local_id).token
