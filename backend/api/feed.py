"""The change feed: long-polled by the console, the CLI and agents."""

from __future__ import annotations

import time

from backend.api import bp
from backend.api import schemas as sc
from backend.api.framework import operation
from backend.api.runtime import runtime
from backend.api.serialize import event_out
from backend.services.access import Principal
from backend.services.events import feed_events, latest_event_id


@operation(
    bp,
    "/events",
    summary="Events after a cursor, waiting up to `wait` seconds for the first",
    callers=("user", "case"),
    query=sc.FeedQuery,
    responses={200: sc.Feed},
    tags=("events",),
)
def events_feed(principal: Principal, query: sc.FeedQuery) -> sc.Feed:
    rt = runtime()
    if query.after is None:
        with rt.store.read() as s:
            return sc.Feed(events=[], cursor=str(latest_event_id(s)))
    after = int(query.after)
    deadline = time.monotonic() + query.wait
    while True:
        # Read the version before querying: a change committed after the query moves it.
        version = rt.signal.version
        with rt.store.read() as s:
            events = [
                event_out(e, principal) for e in feed_events(s, principal, after, query.limit)
            ]
        remaining = deadline - time.monotonic()
        if events or remaining <= 0:
            break
        rt.signal.wait(version, min(remaining, rt.settings.feed_poll_interval))
    return sc.Feed(events=events, cursor=events[-1].cursor if events else str(after))
