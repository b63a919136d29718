"""The commands an agent performs, from its own flags or handed over by a second process."""

from __future__ import annotations

from typing import Any

from sos_agent.core import AgentCore, InvalidCode
from sos_agent.state import CaseRecord

HEADLESS_EXIT = {"ok": 0, "refused": 3, "queued": 75}


def perform(core: AgentCore, command: str, args: dict[str, Any]) -> CaseRecord | None:
    """Run ``command`` (``start``, ``sos``, ``join``) on the core; the case it concerns."""
    first = core.first_launch() if args.get("first_launch", True) else None
    if command == "sos":
        customer = {k: args[k] for k in ("name", "email") if args.get(k)}
        return core.request_help("sos_button", customer or None, args.get("description"))
    if command == "join":
        customer = {k: args[k] for k in ("name", "email") if args.get(k)}
        return core.join(str(args.get("code", "")), customer)
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
        "queued": queued,
        "outcome": outcome,
    }
    if record.failed:
        result["error"] = core.last_error or record.failed
    return result


def handle(core: AgentCore, command: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Perform a command and wait (at most ``timeout``) for the backend to answer."""
    try:
        record = perform(core, command, args)
    except InvalidCode:
        return {"code": None, "status": None, "outcome": "refused", "queued": False,
                "error": "a code looks like s12-345-678"}
    if record is not None:
        record = core.wait_until_sent(record.local_id, timeout)
    return result_of(core, record)
