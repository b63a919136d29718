"""The agent's flows in its core, against the fake backend: no display, no real server."""

from __future__ import annotations

import pytest

from sos_agent.commands import handle, perform
from sos_agent.core import AgentCore, UnknownTopic
from sos_agent.i18n import translation
from sos_agent.viewmodel import ViewModel


class Crash(Exception):
    """Stands for the process dying at that point."""


@pytest.fixture
def installed() -> list[str]:
    return []


@pytest.fixture
def make_core(fake_backend, make_config, installed):
    def make(url: str | None = None) -> AgentCore:
        return AgentCore(
            make_config(url or fake_backend.url),
            install_shortcuts=lambda config: installed.append(config.brand.product_name),
        )

    return make


def deliver(core: AgentCore) -> None:
    core.worker.run_once()


# --- topics ------------------------------------------------------------------------------------


def test_sos_with_an_offered_topic_sends_it_with_the_case(fake_backend, make_core) -> None:
    fake_backend.topics = ["Printer", "Network"]
    core = make_core()
    core.refresh_deployment()
    record = perform(core, "sos", {"topic": "printer"})  # any case; the deployment's spelling
    deliver(core)
    ((_, body),) = fake_backend.sent("POST", "/agent/cases")
    assert body["topic"] == "Printer" and body["source"] == "first_launch"
    record = core.state.case(record.local_id)
    assert record.topic == "Printer" and fake_backend.cases[record.code]["topic"] == "Printer"


def test_an_unknown_topic_is_refused_before_anything_is_queued(fake_backend, make_core) -> None:
    fake_backend.topics = ["Printer", "Network"]
    core = make_core()
    core.refresh_deployment()
    with pytest.raises(UnknownTopic, match="choose one of: Printer, Network"):
        perform(core, "sos", {"topic": "Fax"})
    result = handle(core, "sos", {"topic": "Fax"}, timeout=0)
    assert result["outcome"] == "refused" and result["topics"] == ["Printer", "Network"]
    assert "'Fax'" in result["error"] and "Printer, Network" in result["error"]
    assert core.last_error == result["error"]  # shown in the window too
    # Nothing was queued, and this is still the first launch for a later, valid command.
    assert len(core.outbox) == 0 and core.current() is None
    assert not core.state.data.first_launch_done


def test_a_topic_for_a_deployment_without_topics_says_there_are_none(
    fake_backend, make_core
) -> None:
    core = make_core()
    core.refresh_deployment()
    with pytest.raises(UnknownTopic, match="offers no topics"):
        core.resolve_topic("Printer")
    assert core.resolve_topic(None) is None and core.resolve_topic("  ") is None


def test_an_agent_that_never_reached_the_backend_lets_the_backend_judge_the_topic(
    fake_backend, make_core
) -> None:
    core = make_core("http://127.0.0.1:9")
    core.refresh_deployment()  # offline, nothing cached: the topics are not known
    assert core.resolve_topic(" Printer ") == "Printer"


def test_a_topic_does_not_move_the_open_case(fake_backend, make_core) -> None:
    fake_backend.topics = ["Printer"]
    core = make_core()
    core.refresh_deployment()
    first = perform(core, "start", {})
    deliver(core)
    again = perform(core, "sos", {"topic": "Printer"})
    assert again.local_id == first.local_id and len(fake_backend.cases) == 1


# --- first run ---------------------------------------------------------------------------------


def test_join_on_the_first_run_installs_the_button_and_opens_no_case_of_its_own(
    fake_backend, make_core, installed
) -> None:
    code = fake_backend.add_manual_case()
    core = make_core()
    result = handle(core, "join", {"code": code}, timeout=0)
    deliver(core)
    assert installed == ["SOS Support"] and core.state.data.first_launch_done
    assert fake_backend.sent("POST", "/agent/cases") == []  # no first_launch case
    assert core.current().code == code and core.current().token
    assert result["code"] == code
    # The next start is not a first launch: still no case of its own.
    assert perform(core, "start", {}).code == code
    assert fake_backend.sent("POST", "/agent/cases") == [] and installed == ["SOS Support"]


def test_the_first_start_opens_one_first_launch_case_with_the_details_given(
    fake_backend, make_core, installed
) -> None:
    core = make_core()
    record = perform(core, "sos", {"name": "Bob", "description": "Printer jam"})
    assert perform(core, "sos", {}).local_id == record.local_id
    deliver(core)
    ((_, body),) = fake_backend.sent("POST", "/agent/cases")
    assert body["source"] == "first_launch" and body["customer"] == {"name": "Bob"}
    assert body["description"] == "Printer jam" and installed == ["SOS Support"]


# --- exactly once ------------------------------------------------------------------------------


def test_a_join_retried_after_a_lost_answer_repeats_its_key_and_gets_the_same_case(
    fake_backend, make_core
) -> None:
    code = fake_backend.add_manual_case()
    core = make_core()
    record = core.join(code)
    real_send = core._send

    def send_then_die(entry):
        real_send(entry)
        raise Crash  # joined on the server; the outbox file was not removed

    with pytest.raises(Crash):
        core.outbox.deliver_next(send_then_die)
    restarted = make_core()
    deliver(restarted)
    keys = [h["Idempotency-Key"] for h, _ in fake_backend.sent("POST", "/agent/join")]
    assert len(keys) == 2 and keys[0] == keys[1]  # not a 409 already_joined: the same join
    joined = restarted.state.case(record.local_id)
    assert joined.token and not joined.failed and len(restarted.outbox.failed()) == 0


def test_a_message_retried_after_a_lost_answer_is_stored_once(fake_backend, make_core) -> None:
    core = make_core()
    perform(core, "sos", {})
    deliver(core)
    core.send_message("The printer says PC LOAD LETTER")
    real_send = core._send

    def send_then_die(entry):
        real_send(entry)
        raise Crash

    with pytest.raises(Crash):
        core.outbox.deliver_next(send_then_die)
    restarted = make_core()
    deliver(restarted)
    keys = [h["Idempotency-Key"] for h, _ in fake_backend.sent("POST", "/messages")]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert [m["body"] for m in fake_backend.messages] == ["The printer says PC LOAD LETTER"]
    assert len(restarted.outbox) == 0


def test_every_queued_request_keeps_its_own_key_across_restarts(make_core) -> None:
    core = make_core("http://127.0.0.1:9")
    perform(core, "sos", {})
    core.join("s20-000-001")
    keys = [e.idempotency_key for e in core.outbox.pending()]
    assert len(set(keys)) == 2
    assert [e.idempotency_key for e in make_core("http://127.0.0.1:9").outbox.pending()] == keys


# --- a code already in use ---------------------------------------------------------------------


def test_a_code_joined_on_another_device_is_explained_and_keeps_the_customers_own_case(
    fake_backend, make_core
) -> None:
    code = fake_backend.add_manual_case()
    fake_backend.joined_by[code] = "another device's key"
    core = make_core()
    own = perform(core, "sos", {})
    deliver(core)
    result = handle(core, "join", {"code": code}, timeout=0)
    deliver(core)

    # The join is refused for good (not retried), and said so...
    assert len(core.outbox) == 0 and len(core.outbox.failed()) == 1
    joined = [r for r in core.state.data.cases.values() if r.code == code]
    assert [r.failed for r in joined] == ["already_joined"]
    assert core.last_error_code == "already_joined"
    # ...but the customer's own open case is theirs again, in the window and in the tray.
    current = core.current()
    assert current.local_id == own.local_id and not current.is_final
    vm = ViewModel(translation("fr"))
    assert vm.error_text(core.last_error_code, core.last_error) == (
        "Ce code est déjà utilisé sur un autre appareil"
    )
    assert vm.status_text(joined[0], None, True) == (
        "Ce code est déjà utilisé sur un autre appareil"
    )
    assert result["code"] == code


def test_a_refused_join_without_an_earlier_case_leaves_the_agent_usable(
    fake_backend, make_core
) -> None:
    code = fake_backend.add_manual_case()
    fake_backend.joined_by[code] = "another device's key"
    core = make_core()
    core.state.mark_first_launch_done()
    record = core.join(code)
    deliver(core)
    assert core.state.case(record.local_id).failed == "already_joined"
    # Asking for help afterwards opens a fresh case rather than bringing back the refused join.
    help_record = core.request_help()
    deliver(core)
    assert help_record.local_id != record.local_id
    assert core.state.case(help_record.local_id).token
    assert core.last_error is None  # a new request clears the old refusal


def test_the_refusal_reaches_the_headless_result(fake_backend, make_core) -> None:
    code = fake_backend.add_manual_case()
    fake_backend.joined_by[code] = "another device's key"
    core = make_core()
    core.start()
    try:
        result = handle(core, "join", {"code": code}, timeout=5)
    finally:
        core.stop()
    assert result["outcome"] == "refused" and result["error_code"] == "already_joined"
    assert "already been joined" in result["error"]
