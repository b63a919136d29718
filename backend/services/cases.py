"""Opening, reading, editing and deleting cases (the queue's pages are in ``queue``)."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.orm import Session, lazyload

from backend.db import attach_inserted, insert_unless_conflict
from backend.errors import AlreadyJoined, CaseFinal, NotFound, ValidationFailed
from backend.models import Case, CaseToken, Group, User
from backend.prepared import Prepared
from backend.security import CASE_TOKEN_PREFIX, hash_secret, new_secret
from backend.services.access import (
    Actor,
    DeploymentInfo,
    Principal,
    require_admin,
    require_user,
)
from backend.services.context import Context
from backend.services.events import append_event
from backend.services.routing import (
    ROUTING_GROUP,
    GroupRouting,
    group_routing_columns,
    route_case,
)
from backend.services.status import CaseStatus, case_status

SOURCES = ("manual", "first_launch", "sos_button", "api")
CUSTOMER_EDITABLE = ("customer_name", "customer_email", "description")
EXPERT_EDITABLE = (*CUSTOMER_EDITABLE, "group_id")


def generate_code() -> str:
    digits = f"{secrets.randbelow(10**8):08d}"
    return f"s{digits[:2]}-{digits[2:5]}-{digits[5:]}"


@dataclass(frozen=True)
class NewCase:
    """What a caller may say about a case when opening it."""

    customer_name: str | None = None
    customer_email: str | None = None
    description: str | None = None
    device_hostname: str | None = None
    device_os: str | None = None
    device_agent_version: str | None = None
    device_id: str | None = None


def _insert_case(
    s: Session,
    ctx: Context,
    *,
    group_id: int,
    source: str,
    details: NewCase,
    deployment_id: int | None = None,
    idempotency_key: str | None = None,
    topic: str | None = None,
    token_hash: str | None = None,
) -> tuple[Case, GroupRouting] | None:
    """Insert a case under a fresh session code; None when the idempotency key is taken.

    The same statement returns what routing needs of the case's group and, on PostgreSQL,
    stores the case token whose hash is given (on SQLite, the next statement does).
    """
    values = {
        "group_id": group_id,
        "deployment_id": deployment_id,
        "source": source,
        "topic": topic,
        "idempotency_key": idempotency_key,
        "created_at": ctx.now,
        "updated_at": ctx.now,
        "expires_at": ctx.now + timedelta(seconds=ctx.case_ttl),
        "customer_joined": source != "manual",
        **vars(details),
    }
    postgres = s.info["store"].is_postgres
    statement = _case_insert(postgres, with_token=token_hash is not None)
    connection = s.connection()
    extra = {ROUTING_GROUP: group_id, "token_hash": token_hash}
    for _attempt in range(10):
        values["code"] = generate_code()
        row = statement.first(connection, {**values, **extra})
        if row is not None:
            if token_hash is not None and not postgres:
                _store_token(connection, ctx, row.id, token_hash)
            case = attach_inserted(s, Case, values, row.id)
            return case, GroupRouting.from_columns(row.routing, row.subscribed)
        # A unique constraint stopped it: the idempotency key, or (rarely) the session code.
        if idempotency_key is not None and _find_idempotent(s, deployment_id, idempotency_key):
            return None
    raise RuntimeError("could not draw a free session code")  # pragma: no cover


_CASE_KEYS = (
    "group_id",
    "deployment_id",
    "source",
    "topic",
    "idempotency_key",
    "created_at",
    "updated_at",
    "expires_at",
    "customer_joined",
    *(f.name for f in fields(NewCase)),
    "code",
)


@functools.cache
def _case_insert(postgres: bool, with_token: bool = False) -> Prepared:
    cases = Case.__table__
    if not (postgres and with_token):
        statement = insert_unless_conflict(postgres, cases).returning(
            cases.c.id, *group_routing_columns()
        )
        return Prepared(statement, keys=_CASE_KEYS)
    # PostgreSQL: the case and its token in one round trip. The token's insert reads the new
    # case's id from the first; a case not inserted (its idempotency key is taken) gets none.
    values: dict[str, Any] = {key: bindparam(key, type_=cases.c[key].type) for key in _CASE_KEYS}
    values |= {
        column.key: column.default.arg  # the plain defaults of the columns not given
        for column in cases.columns
        if column.default is not None and column.default.is_scalar and column.key not in values
    }
    new_case = (
        insert_unless_conflict(True, cases).values(values).returning(cases.c.id).cte("new_case")
    )
    tokens = CaseToken.__table__
    token_row = select(new_case.c.id, bindparam("token_hash", type_=tokens.c.token_hash.type))
    new_token = insert(tokens).from_select(
        ["case_id", "token_hash", "created_at"], token_row.add_columns(values["created_at"])
    )
    statement = select(new_case.c.id, *group_routing_columns()).add_cte(new_token.cte("new_token"))
    return Prepared(statement)


def _find_idempotent(s: Session, deployment_id: int | None, key: str) -> Case | None:
    return s.scalar(
        select(Case).where(Case.deployment_id == deployment_id, Case.idempotency_key == key)
    )


_TOKEN_INSERT = Prepared(insert(CaseToken.__table__), keys=("case_id", "token_hash", "created_at"))


def _store_token(connection: Connection, ctx: Context, case_id: int, token_hash: str) -> None:
    row = {"case_id": case_id, "token_hash": token_hash, "created_at": ctx.now}
    _TOKEN_INSERT.run(connection, row)  # nothing reads it back in this unit of work


def issue_case_token(s: Session, ctx: Context, case: Case) -> str:
    token = new_secret(CASE_TOKEN_PREFIX)
    _store_token(s.connection(), ctx, case.id, hash_secret(token))
    return token


def open_agent_case(
    s: Session,
    ctx: Context,
    deployment: DeploymentInfo,
    *,
    source: str,
    details: NewCase,
    idempotency_key: str | None,
    topic: str | None = None,
) -> tuple[Case, str, bool]:
    """Open a case for a branded agent; a repeated idempotency key returns the first case.

    Returns the case, a fresh case token and whether the case was created now. The insert
    comes first: a retry is rare, so it is found by its conflict rather than looked for.
    """
    token = new_secret(CASE_TOKEN_PREFIX)
    inserted = _insert_case(
        s,
        ctx,
        group_id=_topic_group(deployment, topic),
        source=source,
        details=details,
        deployment_id=deployment.id,
        idempotency_key=idempotency_key,
        topic=topic,
        token_hash=hash_secret(token),
    )
    if inserted is None:  # the key's first request (perhaps in another process) made the case
        existing = _find_idempotent(s, deployment.id, idempotency_key or "")
        assert existing is not None
        return existing, issue_case_token(s, ctx, existing), False
    case, routing = inserted
    actor = deployment_actor(deployment)
    append_event(s, ctx, case, "case.created", actor, {"source": source, "topic": topic})
    route_case(s, ctx, case, actor, deployment=deployment, routing=routing)
    return case, token, True


def _topic_group(deployment: DeploymentInfo, topic: str | None) -> int:
    """The group a customer's chosen topic routes to (the deployment's group without one)."""
    if topic is None:
        return deployment.group_id
    for offered in deployment.topics:
        if offered.name == topic:
            return offered.group_id
    names = ", ".join(t.name for t in deployment.topics) or "none are offered"
    raise ValidationFailed(
        f"unknown topic {topic!r}; choose one of: {names}",
        details=[{"field": "topic", "message": "not one of the deployment's topics"}],
    )


def deployment_actor(deployment: DeploymentInfo) -> Actor:
    return Actor("deployment", deployment.id, deployment.name)


def join_manual_case(
    s: Session,
    ctx: Context,
    deployment: DeploymentInfo,
    code: str,
    details: NewCase,
    *,
    join_key: str | None = None,
) -> tuple[Case, str]:
    """Let a customer's agent join a manual case by its code, once.

    A retry of the join that succeeded (same ``join_key``) gets the case again with a fresh
    token, so an agent whose first answer was lost is not locked out of its own case.
    """
    case = _lock_case(s, code)
    if case is None or case.group_id != deployment.group_id or case.source != "manual":
        raise NotFound(f"no open case with the code {code}; check the code with your expert")
    ensure_not_final(case, ctx)
    if case.customer_joined:
        if join_key is not None and case.join_key == join_key:
            return case, issue_case_token(s, ctx, case)
        raise AlreadyJoined(f"case {code} has already been joined by a customer")
    case.customer_joined = True
    case.join_key = join_key
    case.deployment_id = deployment.id
    changed = []
    for name, value in vars(details).items():
        if value is not None and getattr(case, name) != value:
            setattr(case, name, value)
            changed.append(name)
    case.updated_at = ctx.now
    if changed:
        append_event(
            s,
            ctx,
            case,
            "case.edited",
            deployment_actor(deployment),
            {"fields": _public_field_names(changed)},
        )
    return case, issue_case_token(s, ctx, case)


def create_manual_case(
    s: Session, ctx: Context, principal: Principal, *, group_id: int, details: NewCase
) -> Case:
    require_user(principal)
    group = s.get(Group, group_id)
    if group is None or not principal.can_see_group(group_id):
        raise ValidationFailed(
            f"group {group_id} does not exist or is not one of yours",
            details=[{"field": "group_id", "message": "choose one of your groups"}],
        )
    inserted = _insert_case(s, ctx, group_id=group_id, source="manual", details=details)
    assert inserted is not None  # no idempotency key, so never a conflict that returns nothing
    case, routing = inserted
    append_event(s, ctx, case, "case.created", principal.actor, {"source": "manual"})
    route_case(s, ctx, case, principal.actor, routing=routing)
    return case


def lock_cases(s: Session, *conditions: Any, order_limit: int | None = None) -> list[Case]:
    """Lock the matching case rows, then load them (with related rows) as now committed.

    Two statements on purpose: on PostgreSQL, a locking query that waited for another
    transaction re-reads the locked row but not the rows it outer-joins, so eager-loaded
    relations (the assignee) could be stale or missing.
    """
    query = select(Case.id).where(*conditions).order_by(Case.id).with_for_update()
    if order_limit is not None:
        query = query.limit(order_limit)
    ids = list(s.scalars(query))
    if not ids:
        return []
    fresh = select(Case).where(Case.id.in_(ids)).order_by(Case.id)
    return list(s.scalars(fresh.execution_options(populate_existing=True)))


def _lock_case(s: Session, code: str) -> Case | None:
    query = select(Case).where(Case.code == code, Case.deleted_at.is_(None))
    # No joined eager loads: after waiting for the lock, PostgreSQL re-reads the case row but
    # not the joined rows, so a just-set assignee would come back as None. Load them after.
    return s.scalar(query.with_for_update(of=Case).options(lazyload("*")))


def get_case(s: Session, principal: Principal, code: str, *, for_update: bool = False) -> Case:
    """The case with this code if the caller may see it; 404 otherwise (existence not revealed)."""
    if "\x00" in code:  # PostgreSQL refuses NUL in a query parameter; no code contains one
        raise NotFound("no case with that code")
    if for_update:
        case = _lock_case(s, code)
    else:
        case = s.scalar(select(Case).where(Case.code == code))
    if case is None or not principal.can_see_case(case):
        raise NotFound(f"no case with the code {code}")
    return case


def ensure_not_final(case: Case, ctx: Context) -> CaseStatus:
    status = case_status(case, ctx.now, ctx.presence_timeout)
    if status.is_final:
        raise CaseFinal(f"case {case.code} is {status.value}; it takes no further changes")
    return status


_PUBLIC_NAMES = {
    "customer_name": "customer.name",
    "customer_email": "customer.email",
    "description": "description",
    "group_id": "group",
    "device_hostname": "device.hostname",
    "device_os": "device.os",
    "device_agent_version": "device.agent_version",
    "device_id": "device.device_id",
}


def _public_field_names(names: list[str]) -> list[str]:
    return [_PUBLIC_NAMES.get(n, n) for n in names]


def edit_case(
    s: Session, ctx: Context, principal: Principal, code: str, changes: dict[str, Any]
) -> Case:
    """Change customer details, description or (experts only) the group."""
    case = get_case(s, principal, code, for_update=True)
    ensure_not_final(case, ctx)
    allowed = EXPERT_EDITABLE if principal.is_user else CUSTOMER_EDITABLE
    old_group = case.group
    changed = []
    for name, value in changes.items():
        if name not in allowed:
            raise ValidationFailed(
                f"{_PUBLIC_NAMES.get(name, name)} cannot be changed by this caller",
                details=[{"field": _PUBLIC_NAMES.get(name, name), "message": "not editable"}],
            )
        if name == "group_id":
            group = s.get(Group, value)
            if group is None or not principal.can_see_group(value):
                raise ValidationFailed(
                    f"group {value} does not exist or is not one of yours",
                    details=[{"field": "group_id", "message": "choose one of your groups"}],
                )
        if getattr(case, name) != value:
            setattr(case, name, value)
            changed.append(name)
    if changed:
        case.updated_at = ctx.now
        if "group_id" in changed:
            s.flush()
            s.refresh(case)
        append_event(
            s, ctx, case, "case.edited", principal.actor, {"fields": _public_field_names(changed)}
        )
        if "group_id" in changed:
            # Told to the group it left, whose experts no longer see it: their queues update.
            moved = {
                "from": {"id": old_group.id, "name": old_group.name},
                "to": {"id": case.group.id, "name": case.group.name},
            }
            append_event(s, ctx, case, "case.moved", principal.actor, moved, group_id=old_group.id)
        if (
            "group_id" in changed
            and case.assignee is not None
            and not _has_access(case.assignee, case.group_id)
        ):
            from backend.services.assignment import set_assignee

            reason = f"moved to {case.group.name}, where {case.assignee.username} has no access"
            set_assignee(s, ctx, principal.actor, case, None, reason)
        if "group_id" in changed and case.assignee_id is None:
            route_case(s, ctx, case, principal.actor, deployment=case.deployment)
    return case


def _has_access(user: User, group_id: int) -> bool:
    return user.is_admin or any(g.id == group_id for g in user.groups)


def delete_case(s: Session, ctx: Context, principal: Principal, code: str) -> None:
    require_admin(principal)
    case = get_case(s, principal, code, for_update=True)
    append_event(s, ctx, case, "case.deleted", principal.actor)
    case.deleted_at = ctx.now
    case.updated_at = ctx.now


def user_ref(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "display_name": user.display_name}
