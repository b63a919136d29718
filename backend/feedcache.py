"""The newest events of the log, shared by every long-poll of one process.

When the change signal wakes the long-polls waiting on ``GET /events``, each of them needs the
events committed since it last looked. Rather than one database read per waiter, the first
waiter to wake reads the new events once (``id > newest id held``) into this cache, the others
wait for that read and reuse it, and each filters the shared list by its own scope in memory
(:meth:`Principal.can_see_event`, the twin of :meth:`Principal.event_scope`).

The database stays the truth; the cache is an optimisation that each process keeps for itself:

- It holds every event with ``floor < id <= top`` and nothing else, so it can answer a cursor
  ``>= floor`` exactly as the database would. An older cursor (a client catching up) is
  answered from the database.
- Growing it by ``id > top`` never skips an event: SQLite has one writer, and on PostgreSQL
  event ids become visible in order (``Store._append_events``), so once ``top`` is visible
  every smaller id is too.
- Each snapshot records the signal version read *before* its read, so a waiter woken by a
  version past the one it saw knows whether a snapshot includes the commit that woke it; and
  the time its read began, for the fallback poll that catches lost notifications.
- Events never change once appended (cases are only soft-deleted), so held rows never go stale.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from backend.models import Event

if TYPE_CHECKING:
    from backend.db import Store
    from backend.services.access import Principal
    from backend.wakeups import ChangeSignal

DEFAULT_CAPACITY = 10_000  # events held; the oldest are dropped first
DEFAULT_PRIME = 1_000  # events loaded when the cache starts (or restarts after a burst)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """A read-only copy of one :class:`Event` row, with the fields the feed serialises."""

    id: int
    case_id: int
    case_code: str
    group_id: int
    type: str
    status: str
    actor_kind: str
    actor_id: int | None
    actor_name: str
    data: dict[str, Any]
    created_at: datetime


FEED_COLUMNS = (  # what a FeedEvent holds, in its order
    Event.id,
    Event.case_id,
    Event.case_code,
    Event.group_id,
    Event.type,
    Event.status,
    Event.actor_kind,
    Event.actor_id,
    Event.actor_name,
    Event.data,
    Event.created_at,
)


@dataclass(frozen=True)
class Snapshot:
    """What the cache holds after one read; replaced whole, never changed in place."""

    events: list[FeedEvent]  # ordered by id
    ids: list[int]  # the same ids, for bisect
    floor: int  # every event with floor < id <= top is in ``events``
    top: int
    version: int  # the change signal's version read before the read that made this
    read_at: float  # time.monotonic() when that read began


class FeedCache:
    """The newest events, refreshed at most once per wake-up, filtered per caller in memory."""

    def __init__(
        self,
        store: Store,
        signal: ChangeSignal,
        *,
        capacity: int = DEFAULT_CAPACITY,
        prime: int = DEFAULT_PRIME,
    ) -> None:
        if capacity < 1 or not 1 <= prime <= capacity:
            raise ValueError("need 1 <= prime <= capacity")
        self._store = store
        self._signal = signal
        self.capacity = capacity
        self.prime = prime
        self._lock = threading.Lock()  # one refresh at a time; the others wait and reuse it
        self._snapshot: Snapshot | None = None
        self.reads = 0  # database reads made by refreshes (for tests and diagnostics)

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def events_after(
        self,
        principal: Principal,
        after: int,
        limit: int,
        *,
        min_version: int,
        not_before: float | None = None,
    ) -> tuple[list[FeedEvent], Snapshot] | None:
        """The first ``limit`` events after ``after`` that ``principal`` may see.

        They come from a snapshot whose signal version is at least ``min_version`` (and whose
        read began at or after ``not_before``, when given), read from the database first if the
        current one is older. Returns them with that snapshot, or None when ``after`` is older
        than the cache's floor: the caller must read the database itself.
        """
        snapshot = self.fresh(min_version, not_before)
        if after < snapshot.floor:
            return None
        events, ids = snapshot.events, snapshot.ids
        found: list[FeedEvent] = []
        for i in range(bisect_right(ids, after), len(ids)):
            event = events[i]
            if principal.can_see_event(event):
                found.append(event)
                if len(found) >= limit:
                    break
        return found, snapshot

    def fresh(self, min_version: int, not_before: float | None = None) -> Snapshot:
        """A snapshot at least that new, reading the database at most once for all callers."""
        snapshot = self._snapshot
        if snapshot is not None and _satisfies(snapshot, min_version, not_before):
            return snapshot
        with self._lock:
            snapshot = self._snapshot  # another caller may have refreshed while we waited
            if snapshot is not None and _satisfies(snapshot, min_version, not_before):
                return snapshot
            snapshot = self._refresh(snapshot)
            self._snapshot = snapshot
            return snapshot

    def _refresh(self, old: Snapshot | None) -> Snapshot:
        # The version first: every commit notified up to it is visible to the read below.
        version = self._signal.version
        read_at = time.monotonic()
        if old is not None:
            with self._store.read() as s:
                self.reads += 1
                rows = s.execute(
                    select(*FEED_COLUMNS)
                    .where(Event.id > old.top)
                    .order_by(Event.id)
                    .limit(self.capacity)
                ).all()
            if len(rows) < self.capacity:
                return self._grown(old, [FeedEvent(*row) for row in rows], version, read_at)
            # A burst larger than the cache since the last read: start again from the newest.
        with self._store.read() as s:
            self.reads += 1
            newest = select(*FEED_COLUMNS).order_by(Event.id.desc()).limit(self.prime)
            rows = s.execute(newest).all()
        events = [FeedEvent(*row) for row in reversed(rows)]
        # Fewer rows than asked for: the cache holds the whole log.
        floor = events[0].id - 1 if len(events) == self.prime else 0
        top = events[-1].id if events else 0
        return Snapshot(events, [e.id for e in events], floor, top, version, read_at)

    def _grown(self, old: Snapshot, new: list[FeedEvent], version: int, read_at: float) -> Snapshot:
        if not new:
            return Snapshot(old.events, old.ids, old.floor, old.top, version, read_at)
        events = old.events + new
        ids = old.ids + [e.id for e in new]
        floor = old.floor
        excess = len(events) - self.capacity
        if excess > 0:
            floor = ids[excess - 1]
            events, ids = events[excess:], ids[excess:]
        return Snapshot(events, ids, floor, ids[-1], version, read_at)


def _satisfies(snapshot: Snapshot, min_version: int, not_before: float | None) -> bool:
    return snapshot.version >= min_version and (
        not_before is None or snapshot.read_at >= not_before
    )
