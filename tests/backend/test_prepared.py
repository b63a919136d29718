"""Prepared statements give what SQLAlchemy's execution gives, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, event, insert, select, text
from sqlalchemy.exc import IntegrityError

from backend.app import Runtime
from backend.db import EVENT_KEYS, EVENT_LOCK_ID, _event_insert
from backend.models import Case, Deployment, Event, Group, User
from backend.prepared import Prepared
from tests.support.databases import DATABASES

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
_groups, _deployments, _events = Group.__table__, Deployment.__table__, Event.__table__


def _deployment_row(runtime: Runtime) -> int:
    with runtime.store.write() as s:
        group = Group(name="Helpdesk", created_at=NOW, routing={"policy": "round_robin"})
        s.add(group)
        s.flush()
        deployment = Deployment(
            name="Agent",
            group_id=group.id,
            customer_fields=["name"],
            topics=[{"name": "Printers", "group_id": group.id}],
            key_hash="k" * 64,
            key_hint="sosd_kkk",
            created_at=NOW,
        )
        s.add(deployment)
        s.flush()
        return deployment.id


DEPLOYMENT = (
    select(
        _deployments.c.id,
        _deployments.c.name,
        _deployments.c.topics,
        _deployments.c.active,
        _deployments.c.created_at,
        _groups.c.routing.label("group_routing"),
    )
    .join(_groups, _groups.c.id == _deployments.c.group_id)
    .where(_deployments.c.key_hash == bindparam("digest"), _deployments.c.active.is_(True))
)


def test_rows_are_those_sqlalchemy_returns_with_the_same_names_and_types(runtime: Runtime):
    _deployment_row(runtime)
    prepared = Prepared(DEPLOYMENT)
    with runtime.store.read() as s:
        expected = s.connection().execute(DEPLOYMENT, {"digest": "k" * 64}).all()
        rows = prepared.all(s.connection(), {"digest": "k" * 64})
        missing = prepared.first(s.connection(), {"digest": "x" * 64})
    assert rows == [tuple(expected[0])]
    row = rows[0]
    assert row.topics == [{"name": "Printers", "group_id": row.id}]  # JSON, decoded
    assert row.active is True
    assert row.created_at == NOW and row.created_at.tzinfo is UTC  # UTCDateTime, aware
    assert row.group_routing == {"policy": "round_robin"}  # a label keeps its name
    assert missing is None


def test_an_insert_converts_values_and_fills_the_defaults_it_is_not_given(runtime: Runtime):
    deployment_id = _deployment_row(runtime)
    keys = ("code", "group_id", "deployment_id", "source", "created_at", "updated_at")
    keys += ("expires_at",)
    prepared = Prepared(insert(Case.__table__).returning(Case.__table__.c.id), keys=keys)
    with runtime.store.read() as s:
        group_id = s.scalar(select(Deployment.group_id))
    with runtime.store.write() as s:
        values = {
            "code": "s12-345-678",
            "group_id": group_id,
            "deployment_id": deployment_id,
            "source": "api",
            "created_at": NOW,
            "updated_at": NOW + timedelta(seconds=1),
            "expires_at": NOW + timedelta(days=1),
            "closed_at": NOW,  # not among the keys: not written
        }
        row = prepared.first(s.connection(), values)
    with runtime.store.read() as s:
        case = s.get(Case, row.id)
        assert case is not None
        assert (case.code, case.source, case.deployment_id) == ("s12-345-678", "api", deployment_id)
        assert case.created_at == NOW and case.updated_at == NOW + timedelta(seconds=1)
        assert case.customer_joined is False and case.assignee_connected is False  # defaults
        assert case.closed_at is None


def test_many_runs_once_per_row_in_order(runtime: Runtime):
    test_an_insert_converts_values_and_fills_the_defaults_it_is_not_given(runtime)
    keys = ("case_id", "case_code", "group_id", "type", "status", "actor_kind", "actor_name")
    keys += ("data", "created_at")
    prepared = Prepared(insert(_events), keys=keys)
    with runtime.store.read() as s:
        case = s.scalars(select(Case)).one()
    rows = [
        {
            "case_id": case.id,
            "case_code": case.code,
            "group_id": case.group_id,
            "type": kind,
            "status": "new",
            "actor_kind": "system",
            "actor_name": "SOS",
            "data": {"n": n, "text": "ünïcode"},
            "created_at": NOW,
        }
        for n, kind in enumerate(("case.created", "case.routed", "case.assigned"))
    ]
    with runtime.store.write() as s:
        prepared.many(s.connection(), rows)
    with runtime.store.read() as s:
        stored = s.scalars(select(Event).order_by(Event.id)).all()
    assert [(e.type, e.data, e.actor_id) for e in stored] == [
        (r["type"], r["data"], None) for r in rows
    ]


def test_a_driver_error_is_sqlalchemys_and_the_unit_of_work_keeps_nothing(runtime: Runtime):
    _deployment_row(runtime)
    # The default of routing is computed (a new dict each time): it must be given.
    prepared = Prepared(insert(_groups), keys=("name", "created_at"))
    with runtime.store.write() as s, pytest.raises(ValueError, match="routing"):
        prepared.run(s.connection(), {"name": "Other", "created_at": NOW})
    prepared = Prepared(insert(_groups), keys=("name", "created_at", "routing"))
    with pytest.raises(IntegrityError), runtime.store.write() as s:
        prepared.run(s.connection(), {"name": "Sales", "created_at": NOW, "routing": {}})
        prepared.run(s.connection(), {"name": "Helpdesk", "created_at": NOW, "routing": {}})
    with runtime.store.read() as s:
        assert s.scalars(select(Group.name)).all() == ["Helpdesk"]


def test_statements_it_cannot_run_as_they_are_are_refused(runtime: Runtime):
    with pytest.raises(ValueError, match="keys"):
        Prepared(insert(_groups))
    expanding = select(User.id).where(User.id.in_(bindparam("ids", expanding=True)))
    with runtime.store.read() as s, pytest.raises(ValueError, match="plain named"):
        Prepared(expanding).all(s.connection(), {"ids": [1, 2]})
    with runtime.store.read() as s, pytest.raises(TypeError, match="no rows"):
        Prepared(insert(_groups), keys=("name", "routing")).all(s.connection(), {"name": "x"})


def test_statement_listeners_see_prepared_statements(runtime: Runtime):
    _deployment_row(runtime)
    engine = runtime.store.engine
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        with runtime.store.read() as s:
            Prepared(DEPLOYMENT).all(s.connection(), {"digest": "k" * 64})
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert [statement for statement in seen if "FROM deployments" in statement]


@pytest.mark.parametrize("database_url", [DATABASES[1]], indirect=True)
def test_on_postgresql_an_event_insert_holds_the_event_order_lock_until_commit(runtime: Runtime):
    test_an_insert_converts_values_and_fills_the_defaults_it_is_not_given(runtime)
    with runtime.store.read() as s:
        case = s.scalars(select(Case)).one()
    row = dict.fromkeys(EVENT_KEYS) | {
        "case_id": case.id,
        "case_code": case.code,
        "group_id": case.group_id,
        "type": "case.created",
        "status": "new",
        "actor_kind": "system",
        "actor_name": "SOS",
        "data": {},
        "created_at": NOW,
    }
    held = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = 0 AND objid = :id"
    )
    engine = runtime.store.engine
    with engine.connect() as writer, engine.connect() as observer:
        with writer.begin():
            _event_insert(True).many(writer, [row, row])
            assert observer.execute(held, {"id": EVENT_LOCK_ID}).scalar() == 1
        assert observer.execute(held, {"id": EVENT_LOCK_ID}).scalar() == 0
        assert observer.execute(select(Event.type)).scalars().all() == ["case.created"] * 2
