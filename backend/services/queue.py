"""The queue: pages of the cases a caller may see, newest first, and counts per status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, func, or_, select, union_all
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session, selectinload

from backend.errors import BadRequest
from backend.models import Case, User
from backend.services.access import Principal, require_user
from backend.services.context import Context
from backend.services.status import CaseStatus, status_clause


@dataclass(frozen=True)
class CaseFilter:
    statuses: tuple[CaseStatus, ...] = ()
    group_id: int | None = None
    assignee: str | None = None  # "me", "none" or a username
    text: str | None = None
    limit: int = 50
    cursor: str | None = None


def encode_cursor(case_id: int) -> str:
    # Keyset pagination: the cursor is the last id seen, so any cursor is a valid position.
    return str(case_id)


def decode_cursor(cursor: str) -> int:
    if not cursor.isdigit() or len(cursor) > 18:
        raise BadRequest("the cursor is not one this server gave out; start without it")
    return int(cursor)


CASE_RELATIONS = (Case.group, Case.deployment, Case.assignee, Case.expert)


def _page_ids(principal: Principal, filters: CaseFilter, conditions: list[Any]) -> Any:
    """The condition selecting one page of cases, newest first.

    For a supporter of several groups, each group's newest cases are read through its own
    ``(group_id, id)`` index and merged: a plain ``group_id IN (...)`` makes the database sort
    every case of those groups before it can keep one page.
    """
    groups = sorted(principal.group_ids)
    if principal.is_admin or filters.group_id is not None or len(groups) < 2:
        return and_(*conditions)
    per_group = [
        select(Case.id)
        .where(*conditions, Case.group_id == group_id)
        .order_by(Case.id.desc())
        .limit(filters.limit + 1)
        .subquery()
        for group_id in groups
    ]
    newest = union_all(*(select(sub.c.id) for sub in per_group)).subquery()
    return Case.id.in_(select(newest.c.id))


def list_cases(
    s: Session, ctx: Context, principal: Principal, filters: CaseFilter
) -> tuple[list[Case], str | None, dict[str, int]]:
    """A page of visible cases, newest first, with counts per status over the same filters."""
    require_user(principal)
    conditions: list[Any] = [Case.deleted_at.is_(None), principal.case_scope()]
    if filters.group_id is not None:
        conditions.append(Case.group_id == filters.group_id)
    if filters.assignee == "me":
        conditions.append(Case.assignee_id == principal.user_id)
    elif filters.assignee == "none":
        conditions.append(Case.assignee_id.is_(None))
    elif filters.assignee:
        # An unknown username matches no case, like any other filter.
        user_id = s.scalar(select(User.id).where(User.username == filters.assignee))
        conditions.append(Case.assignee_id == user_id if user_id is not None else false())
    if filters.text:
        pattern = (
            "%"
            + filters.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            + "%"
        )
        conditions.append(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (
                        Case.code,
                        Case.customer_name,
                        Case.customer_email,
                        Case.description,
                    )
                )
            )
        )
    counts = status_counts(s, ctx, conditions)
    page_conditions = list(conditions)
    if filters.statuses:
        page_conditions.append(
            or_(*(status_clause(st, ctx.now, ctx.presence_timeout) for st in filters.statuses))
        )
    if filters.cursor:
        page_conditions.append(Case.id < decode_cursor(filters.cursor))
    # The page's relations come in one small query each: joined into the page query they make
    # SQLite join and sort a group's whole history before it can stop at one page.
    query = (
        select(Case)
        .where(_page_ids(principal, filters, page_conditions))
        .order_by(Case.id.desc())
        .limit(filters.limit + 1)
        .options(*(selectinload(rel) for rel in CASE_RELATIONS))
    )
    cases = list(s.scalars(query))
    next_cursor = encode_cursor(cases[filters.limit - 1].id) if len(cases) > filters.limit else None
    return cases[: filters.limit], next_cursor, counts


LIVE_STATUSES = (CaseStatus.NEW, CaseStatus.PENDING, CaseStatus.IN_PROGRESS)


def status_counts(s: Session, ctx: Context, conditions: list[Any]) -> dict[str, int]:
    """Counts of the live statuses (the work in the queue).

    Only cases still open within their lifetime are read, through the partial index on open
    cases: the cost follows the day's volume, not the size of the history.
    """
    columns = [
        func.coalesce(
            func.sum(sql_case((status_clause(st, ctx.now, ctx.presence_timeout), 1), else_=0)), 0
        )
        for st in LIVE_STATUSES
    ]
    live = and_(Case.closed_at.is_(None), Case.expires_at > ctx.now)
    row = s.execute(select(*columns).select_from(Case).where(*conditions, live)).one()
    return {st.value: int(n) for st, n in zip(LIVE_STATUSES, row, strict=True)}
