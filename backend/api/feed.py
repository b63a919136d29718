"""The change feed: long-polled by the console, the CLI and agents."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from backend.api import bp
from backend.api import schemas as sc
from backend.api.framework import operation
from backend.api.runtime import runtime
from backend.api.serialize import event_out
from backend.services.access import Principal
from backend.services.events import feed_events, latest_event_id

if TYPE_CHECKING:
    from backend.app import Runtime


@operation(
    bp,
    "/events",
    summary="Events after a cursor, waiting up to `wait` seconds for the first",
    callers=("user", "case"),
    query=sc.FeedQuery,
    responses={200: sc.Feed},
    tags=("events",),
    read_unit=True,  # every re-poll: the caller and the first read in one session
)
def events_feed(principal: Principal, query: sc.FeedQuery, unit: Session) -> sc.Feed:
    rt = runtime()
    if query.after is None:
        return sc.Feed(events=[], cursor=str(latest_event_id(unit)))
    after = int(query.after)
    deadline = time.monotonic() + query.wait
    # The request's first read is its own, from the database: an answer never lags behind a
    # commit made before the request, in this process or another.
    found, seen, scanned = _read_database(rt, principal, after, query.limit, unit)
    unit.close()  # a long-poll holds no database connection while it waits
    while not found:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # Woken: a snapshot taken after the change that woke us, shared with every other
        # waiter. Not woken (the fallback poll, for changes whose wake-up was lost): a snapshot
        # read since this wait began, so the waiters that time out together share one read.
        # The next waiter's turn comes once this one has its events (see ChangeSignal).
        waiting_since = time.monotonic()
        with rt.signal.turn(seen, min(remaining, rt.settings.feed_poll_interval)) as woken:
            result = rt.feed_cache.events_after(
                principal,
                scanned,
                query.limit,
                min_version=seen + 1 if woken else seen,
                not_before=None if woken else waiting_since,
            )
        if result is None:  # older than what the cache holds: a client catching up
            found, seen, scanned = _read_database(rt, principal, scanned, query.limit)
        else:
            cached, snapshot = result
            found = [event_out(e, principal) for e in cached]
            seen, scanned = snapshot.version, max(scanned, snapshot.top)
    return sc.Feed(events=found, cursor=found[-1].cursor if found else str(after))


def _read_database(
    rt: Runtime, principal: Principal, scanned: int, limit: int, unit: Session | None = None
) -> tuple[list[sc.EventOut], int, int]:
    """The caller's events after ``scanned``, read from the database by this request alone.

    ``scanned`` is the request's cursor, or a later id when the caller is known to see nothing
    between the two. Returns the events, the signal version read before the read, and the new
    ``scanned``: when the answer is empty, the top of the cache's snapshot taken before the read
    (its events were all committed, so the read saw them too). That lets a quiet caller with an
    old cursor be answered from the cache on its next wake-up.
    """
    version = rt.signal.version
    snapshot = rt.feed_cache.snapshot
    with rt.store.read() if unit is None else nullcontext(unit) as s:
        found = [event_out(e, principal) for e in feed_events(s, principal, scanned, limit)]
    if not found and snapshot is not None:
        scanned = max(scanned, snapshot.top)
    return found, version, scanned
