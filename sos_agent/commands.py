"""The commands an agent performs, from its own flags or handed over by a second process."""

from __future__ import annotations

from typing import Any

from sos_agent.core import AgentCore, InvalidCode, UnknownTopic
from sos_agent.state import CaseRecord

HEADLESS_EXIT = {"ok": 0, "refused": 3, "queued": 75}


def perform(core: AgentCore, command: str, args: dict[str, Any]) -> CaseRecord | None:
    """Run ``command`` (``start``, ``sos``, ``join``) on the core; the case it concerns.

    Raises ``InvalidCode`` for a malformed code and ``UnknownTopic`` for a topic the deployment
    does not offer, before anything is queued.
    """
    customer = {k: args[k] for k in ("name", "email") if args.get(k)} or None
    description = args.get("description")
    topic = core.resolve_topic(args.get("topic"))
    if command == "join":
        # A first start that joins an expert's case: the SOS button, but no case of its own.
        core.first_launch(open_case=False)
        return core.join(str(args.get("code", "")), customer)
    first = core.first_launch(customer, description, topic)
    if command == "sos":
        return first or core.request_help("sos_button", customer, description, topic)
    return first or core.current()


def result_of(core: AgentCore, record: CaseRecord | None) -> dict[str, Any]:
    """The JSON headless mode prints (never the case token)."""
    if record is None:
        return {"code": None, "status": None, "outcome": "ok", "queued": False}
    record = core.state.case(record.local_id) or record
    queued = record.token is None and not record.failed
    outcome = "refused" if record.failed else "queued" if queued else "ok"
    result: dict[str, Any] = {
        "code": record.code,
        "status": record.status,
        "source": record.source,
        "topic": record.topic,
        "queued": queued,
        "outcome": outcome,
    }
    if record.failed:
        result["error"] = core.last_error or record.failed
        result["error_code"] = record.failed
    return result


def refused(error: str) -> dict[str, Any]:
    return {"code": None, "status": None, "outcome": "refused", "queued": False, "error": error}


def handle(core: AgentCore, command: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Perform a command and wait (at most ``timeout``) for the backend to answer."""
    try:
        record = perform(core, command, args)
    except InvalidCode:
        return refused("a code looks like s12-345-678")
    except UnknownTopic as exc:
        # Shown in the window too when the command came from a shortcut or a hand-over.
        core.last_error, core.last_error_code = str(exc), "unknown_topic"
        core.notify()
        return {**refused(str(exc)), "topics": list(exc.offered)}
    if record is not None:
        record = core.wait_until_sent(record.local_id, timeout)
    return result_of(core, record)
