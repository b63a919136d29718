"""Text rendering for ``sos-queue``: the case table, case details and one line per event.

Pure functions over the API's JSON shapes (see docs/API.md), so they are easy to test and the
commands stay short.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Case = dict[str, Any]


def parse_time(value: str) -> datetime:
    """An API timestamp (ISO 8601 ending in ``Z``) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def clock(value: str) -> str:
    """An API timestamp as local ``HH:MM:SS``."""
    return parse_time(value).astimezone().strftime("%H:%M:%S")


def local(value: str | None) -> str:
    return parse_time(value).astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def age(value: str, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: ``45s``, ``12m``, ``3h``, ``2d``."""
    seconds = max(0, int(((now or datetime.now(UTC)) - parse_time(value)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def shorten(text: str | None, width: int) -> str:
    """The first line of ``text``, cut to ``width`` characters with an ellipsis."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def customer_name(case: Case) -> str:
    customer = case.get("customer") or {}
    return customer.get("name") or customer.get("email") or "(no name)"


def case_summary(case: Case) -> str:
    """``Helpdesk  Jane Doe: printer jams``."""
    description = shorten(case.get("description"), 60)
    who = customer_name(case) + (f": {description}" if description else "")
    return f"{case['group']['name']}  {who}"


def case_table(cases: list[Case]) -> str:
    """A fixed-width table of cases, newest first as the API returns them."""
    header = ("CODE", "STATUS", "GROUP", "ASSIGNEE", "CUSTOMER", "AGE")
    rows = [header] + [
        (
            c["code"],
            c["status"],
            shorten(c["group"]["name"], 20),
            c["assignee"]["username"] if c.get("assignee") else "-",
            shorten(customer_name(c), 30),
            age(c["created_at"]),
        )
        for c in cases
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def case_details(case: Case, messages: list[dict[str, Any]], shown: int) -> str:
    """What ``show`` prints: the case's fields, then its last ``shown`` messages."""
    customer = case.get("customer") or {}
    device = case.get("device") or {}
    assignee = case.get("assignee")
    expert = case.get("connected_expert")
    lines = [
        f"{case['code']}  {case['status']}  ({case['source']}"
        + (f", topic {case['topic']}" if case.get("topic") else "")
        + ")",
        f"Group:       {case['group']['name']}",
        "Assignee:    "
        + (f"{assignee['display_name']} ({assignee['username']})" if assignee else "nobody"),
        f"Customer:    {customer.get('name') or '-'}"
        + (f" <{customer['email']}>" if customer.get("email") else ""),
        "Device:      "
        + (", ".join(str(v) for v in (device.get("hostname"), device.get("os")) if v) or "-"),
        "Connected:   expert "
        + (f"yes ({expert['username']})" if expert else "no")
        + ", customer "
        + ("yes" if case.get("customer_connected") else "no"),
        f"Created:     {local(case['created_at'])} ({age(case['created_at'])} ago)",
    ]
    if case.get("closed_at"):
        lines.append(f"Closed:      {local(case['closed_at'])} by {case.get('closed_by') or '?'}")
    else:
        lines.append(f"Expires:     {local(case.get('expires_at'))}")
    if case.get("description"):
        lines += ["Description:"] + [f"  {line}" for line in case["description"].splitlines()]
    recent = messages[-shown:] if shown > 0 else []
    if recent:
        lines.append(f"Messages (last {len(recent)} of {len(messages)}):")
        lines += [
            f"  {clock(m['created_at'])}  {m['author']['name']}: {shorten(m['body'], 200)}"
            for m in recent
        ]
    elif messages:
        lines.append(f"Messages: {len(messages)}")
    else:
        lines.append("Messages: none yet")
    return "\n".join(lines)


def _event_detail(kind: str, data: dict[str, Any]) -> str:
    if kind in ("connected", "disconnected"):
        reason = data.get("reason")
        return str(data.get("side", "")) + (
            f" ({reason})" if reason and kind != "connected" else ""
        )
    if kind == "message":
        message = data.get("message") or {}
        author = (message.get("author") or {}).get("name", "?")
        return f"{author}: {shorten(message.get('body'), 80)}"
    if kind == "closed":
        return f"by {data.get('by', '?')}"
    if kind == "edited":
        return ", ".join(data.get("fields") or [])
    if kind == "routed":
        return str(data.get("reason") or data.get("policy") or "")
    return ""


def event_line(event: dict[str, Any], case: Case | None = None) -> str:
    """One ``watch`` line, e.g. ``21:04:05  NEW       s12-345-678  Helpdesk  Jane: help``."""
    kind = event["type"].removeprefix("case.")
    data = event.get("data") or {}
    head = f"{clock(event['created_at'])}  "
    code = event["case_code"]
    if kind == "created":
        return f"{head}{'NEW':<9} {code}  {case_summary(case) if case else ''}".rstrip()
    if kind == "assigned":
        who = (data.get("assignee") or {}).get("username") or "nobody"
        reason = data.get("reason")
        return f"{head}{'ASSIGNED':<9} {code} → {who}" + (f"  ({reason})" if reason else "")
    detail = _event_detail(kind, data)
    return f"{head}{kind.upper():<9} {code}  [{event.get('status', '?')}]  {detail}".rstrip()
