"""The status rule: one derivation, identical in Python and in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from backend.models import Case
from backend.services.status import CaseStatus, derive_status, status_clause

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = 60.0


def status(**kw):
    base = dict(
        closed_at=None,
        expires_at=NOW + timedelta(hours=1),
        expert_seen_at=None,
        customer_seen_at=None,
        now=NOW,
        presence_timeout=TIMEOUT,
    )
    base.update(kw)
    return derive_status(**base)


def test_nobody_connected_is_new():
    assert status() is CaseStatus.NEW


def test_one_side_connected_is_pending():
    assert status(expert_seen_at=NOW) is CaseStatus.PENDING
    assert status(customer_seen_at=NOW - timedelta(seconds=59)) is CaseStatus.PENDING


def test_both_sides_connected_is_in_progress():
    assert status(expert_seen_at=NOW, customer_seen_at=NOW) is CaseStatus.IN_PROGRESS


def test_a_side_silent_for_the_timeout_counts_as_disconnected():
    assert status(expert_seen_at=NOW - timedelta(seconds=60), customer_seen_at=NOW) is (
        CaseStatus.PENDING
    )


def test_closed_wins_over_presence_and_expiry():
    assert status(closed_at=NOW, expires_at=NOW, expert_seen_at=NOW) is CaseStatus.CLOSED


def test_past_its_lifetime_an_open_case_is_expired_even_while_connected():
    assert status(expires_at=NOW, expert_seen_at=NOW, customer_seen_at=NOW) is CaseStatus.EXPIRED


def test_only_closed_and_expired_are_final():
    assert {s for s in CaseStatus if s.is_final} == {CaseStatus.CLOSED, CaseStatus.EXPIRED}


offsets = st.one_of(st.none(), st.integers(min_value=-200, max_value=200))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    closed=offsets,
    expires=st.integers(min_value=-100, max_value=100),
    expert=offsets,
    customer=offsets,
)
def test_sql_status_clause_agrees_with_python_derivation(
    runtime, world, closed, expires, expert, customer
):
    def at(offset):
        return None if offset is None else NOW + timedelta(seconds=offset)

    with runtime.store.write() as s:
        s.query(Case).delete()
        case = Case(
            code="s00-000-001",
            group_id=world.group.id,
            source="api",
            created_at=NOW,
            updated_at=NOW,
            expires_at=at(expires),
            closed_at=at(closed),
            expert_seen_at=at(expert),
            customer_seen_at=at(customer),
        )
        s.add(case)
    expected = derive_status(
        closed_at=at(closed),
        expires_at=at(expires),
        expert_seen_at=at(expert),
        customer_seen_at=at(customer),
        now=NOW,
        presence_timeout=TIMEOUT,
    )
    with runtime.store.read() as s:
        matching = [
            st_
            for st_ in CaseStatus
            if s.scalar(select(Case.id).where(status_clause(st_, NOW, TIMEOUT))) is not None
        ]
    assert matching == [expected]
