"""The event log: appending changes and reading them back as history and as a feed."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.orm import Session

from backend.feedcache import FEED_COLUMNS, FeedEvent
from backend.models import Case, Event
from backend.prepared import Prepared
from backend.services.access import Actor, Principal
from backend.services.context import Context
from backend.services.status import case_status

EVENT_TYPES = (
    "case.created",
    "case.edited",
    "case.moved",
    "case.assigned",
    "case.routed",
    "case.connected",
    "case.disconnected",
    "case.message",
    "case.closed",
    "case.expired",
    "case.deleted",
)


def append_event(
    s: Session,
    ctx: Context,
    case: Case,
    type_: str,
    actor: Actor,
    data: dict[str, Any] | None = None,
    *,
    group_id: int | None = None,
) -> None:
    """Record one change to ``case``; call after the case itself has been changed.

    The event belongs to the case's group (who may see it in the feed) unless ``group_id``
    names another: a case that moved away is announced to the group it left. The row is
    inserted when the unit of work commits, after everything else it writes (see
    ``Store.add_event``): a query later in the same unit of work does not see it.
    """
    assert type_ in EVENT_TYPES, type_
    if case.id is None:
        s.flush()
    row = {
        "case_id": case.id,
        "case_code": case.code,
        "group_id": case.group_id if group_id is None else group_id,
        "type": type_,
        "status": case_status(case, ctx.now, ctx.presence_timeout).value,
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_name": actor.name[:100],
        "data": data or {},
        "created_at": ctx.now,
    }
    s.info["store"].add_event(s, row)


def case_history(s: Session, case: Case) -> list[Event]:
    return list(s.scalars(select(Event).where(Event.case_id == case.id).order_by(Event.id)))


def latest_event_id(s: Session) -> int:
    return s.scalar(select(func.max(Event.id))) or 0


_FEED_AFTER = (
    select(*FEED_COLUMNS)
    .where(Event.id > bindparam("after"))
    .order_by(Event.id)
    .limit(bindparam("limit"))
)


@functools.cache
def _feed_query(scope: ColumnElement[bool]) -> Prepared:
    return Prepared(_FEED_AFTER.where(scope))


def feed_events(s: Session, principal: Principal, after: int, limit: int) -> list[FeedEvent]:
    """The first ``limit`` events after ``after`` that ``principal`` may see, as read-only rows
    (every long-poll starts with this read: a prepared statement, no ORM objects)."""
    scope, params = principal.event_scope()
    rows = _feed_query(scope).all(s.connection(), {**params, "after": after, "limit": limit})
    return [FeedEvent(*row) for row in rows]
