"""Following the change feed for ``sos-queue watch``: long-polls, backoff, notifications."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from backend.queue_client import TIMEOUT, ApiError, Client, Unreachable
from backend.queue_format import case_summary, event_line

LONG_POLL = 25.0  # the longest wait the feed allows
MAX_BACKOFF = 30.0


def feed_end(client: Client) -> str:
    """The cursor at the feed's current end (a feed call without ``after`` answers it)."""
    return str(client.call("GET", "/events")["cursor"])


def follow_feed(
    client: Client,
    cursor: str,
    deadline: float | None = None,
    report: Callable[[str], None] = print,
) -> Iterator[dict[str, Any]]:
    """Yield the feed's events after ``cursor`` as they come, until ``deadline`` (monotonic).

    Long-polls ``GET /events``; while the server is out of reach (or failing), says so through
    ``report`` and retries with exponential backoff, resuming from the last cursor.
    """
    backoff, lost = 1.0, False
    while deadline is None or time.monotonic() < deadline:
        wait = LONG_POLL if deadline is None else min(LONG_POLL, deadline - time.monotonic())
        params = {"after": cursor, "wait": f"{max(wait, 0.0):.2f}"}
        try:
            feed = client.call("GET", "/events", params=params, timeout=wait + TIMEOUT)
        except (Unreachable, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status < 500:
                raise
            report(f"{exc}; retrying in {backoff:.0f} s")
            pause = backoff if deadline is None else min(backoff, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))
            backoff, lost = min(backoff * 2, MAX_BACKOFF), True
            continue
        if lost:
            report(f"reconnected to {client.server}")
        backoff, lost = 1.0, False
        yield from feed["events"]
        cursor = feed["cursor"]


def notify(title: str, body: str) -> None:
    """A desktop notification through ``notify-send``, when there is one."""
    if shutil.which("notify-send"):
        try:
            subprocess.run(
                ["notify-send", "--app-name=sos-queue", title, body],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            pass  # a notification is a nicety; the line is printed anyway


def notify_event(event: dict[str, Any], case: dict[str, Any] | None, me: str) -> None:
    """Notify of a new case, or of a case assigned to ``me``."""
    code = event["case_code"]
    if event["type"] == "case.created":
        notify(f"SOS: new case {code}", case_summary(case) if case else code)
    elif event["type"] == "case.assigned":
        assignee = (event.get("data") or {}).get("assignee") or {}
        if assignee.get("username") == me:
            notify(f"SOS: {code} is assigned to you", event_line(event))
