"""The single source of truth for a case's status.

Status is derived from stored facts (closed, expiry time, each side's last presence signal)
at the moment it is read, so it is right whether or not a background sweep has run. The same
rule exists as Python (for one case) and as SQL (for filters and counts); tests check that the
two agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, false, not_, or_

from backend.models import Case


class CaseStatus(StrEnum):
    NEW = "new"
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in (CaseStatus.CLOSED, CaseStatus.EXPIRED)


FINAL_STATUSES = frozenset({CaseStatus.CLOSED, CaseStatus.EXPIRED})


def is_present(seen_at: datetime | None, now: datetime, timeout: float) -> bool:
    return seen_at is not None and seen_at > now - timedelta(seconds=timeout)


def derive_status(
    *,
    closed_at: datetime | None,
    expires_at: datetime,
    expert_seen_at: datetime | None,
    customer_seen_at: datetime | None,
    now: datetime,
    presence_timeout: float,
) -> CaseStatus:
    if closed_at is not None:
        return CaseStatus.CLOSED
    if expires_at <= now:
        return CaseStatus.EXPIRED
    connected = is_present(expert_seen_at, now, presence_timeout) + is_present(
        customer_seen_at, now, presence_timeout
    )
    return (CaseStatus.NEW, CaseStatus.PENDING, CaseStatus.IN_PROGRESS)[connected]


def case_status(case: Case, now: datetime, presence_timeout: float) -> CaseStatus:
    return derive_status(
        closed_at=case.closed_at,
        expires_at=case.expires_at,
        expert_seen_at=case.expert_seen_at,
        customer_seen_at=case.customer_seen_at,
        now=now,
        presence_timeout=presence_timeout,
    )


def _present(column: ColumnElement[datetime | None], cutoff: datetime) -> ColumnElement[bool]:
    return and_(column.is_not(None), column > cutoff)


def status_clause(
    status: CaseStatus, now: datetime, presence_timeout: float
) -> ColumnElement[bool]:
    """SQL condition true exactly for the cases whose derived status is ``status``."""
    if status is CaseStatus.CLOSED:
        return Case.closed_at.is_not(None)
    open_ = Case.closed_at.is_(None)
    if status is CaseStatus.EXPIRED:
        return and_(open_, Case.expires_at <= now)
    live = and_(open_, Case.expires_at > now)
    cutoff = now - timedelta(seconds=presence_timeout)
    expert = _present(Case.expert_seen_at, cutoff)
    customer = _present(Case.customer_seen_at, cutoff)
    if status is CaseStatus.NEW:
        return and_(live, not_(expert), not_(customer))
    if status is CaseStatus.PENDING:
        return and_(live, or_(and_(expert, not_(customer)), and_(customer, not_(expert))))
    if status is CaseStatus.IN_PROGRESS:
        return and_(live, expert, customer)
    return false()


def not_final_clause(now: datetime) -> ColumnElement[bool]:
    """SQL condition for cases that still take connects, messages and assignment."""
    return and_(Case.closed_at.is_(None), Case.expires_at > now, Case.deleted_at.is_(None))
