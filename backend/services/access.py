"""Who is calling, and what they may see: the authorization rules in one place."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import ColumnElement, Row, bindparam, false, true

from backend.errors import Forbidden
from backend.models import Case, Deployment, Event, User

PrincipalKind = Literal["user", "case", "deployment"]


class ScopedEvent(Protocol):
    """What the feed's scope looks at: an :class:`Event` row or a cached copy of one."""

    @property
    def case_id(self) -> int: ...

    @property
    def group_id(self) -> int: ...


@dataclass(frozen=True)
class Actor:
    """Who did something, as recorded in the event log."""

    kind: Literal["user", "customer", "deployment", "system"]
    id: int | None
    name: str


SYSTEM = Actor("system", None, "system")


@dataclass(frozen=True)
class Topic:
    """A choice a deployment offers its customers, routed to a group."""

    name: str
    group_id: int


@dataclass(frozen=True)
class DeploymentInfo:
    """The deployment whose key made a call, as read when the key was checked.

    Opening a case needs nothing more, so the write that follows does not read it again.
    """

    id: int
    name: str
    group_id: int
    policy: str | None = None
    default_assignee_id: int | None = None
    topics: tuple[Topic, ...] = ()

    @classmethod
    def of(cls, deployment: Deployment | Row[Any]) -> DeploymentInfo:
        return cls(
            id=deployment.id,
            name=deployment.name,
            group_id=deployment.group_id,
            policy=deployment.policy,
            default_assignee_id=deployment.default_assignee_id,
            topics=tuple(Topic(t["name"], t["group_id"]) for t in deployment.topics or []),
        )


_ALL_EVENTS = true()
_NO_EVENTS = false()
_CASE_EVENTS = Event.case_id == bindparam("scope_case_id")


@functools.cache
def _groups_events(count: int) -> ColumnElement[bool]:
    """Events of ``count`` groups, one bound parameter each (``scope_group_0``…): a plain
    statement per count, which can be prepared, where an expanding ``IN`` is re-rendered for
    every list."""
    return Event.group_id.in_([bindparam(f"scope_group_{n}") for n in range(count)])


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, a case token's customer, or a deployment key."""

    kind: PrincipalKind
    user_id: int | None = None
    username: str | None = None
    display_name: str | None = None
    role: str | None = None
    group_ids: frozenset[int] = field(default_factory=frozenset)
    case_id: int | None = None
    deployment: DeploymentInfo | None = None
    token_id: int | None = None
    last_seen_at: datetime | None = None

    @classmethod
    def for_user(
        cls,
        user: User | Row[Any],
        token_id: int | None = None,
        group_ids: Iterable[int] | None = None,
    ) -> Principal:
        """The principal of ``user``: a model, or a row of its columns with ``group_ids``."""
        if group_ids is None:
            group_ids = (g.id for g in user.groups)
        return cls(
            kind="user",
            token_id=token_id,
            last_seen_at=user.last_seen_at,
            user_id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            group_ids=frozenset(group_ids),
        )

    @property
    def deployment_id(self) -> int | None:
        return self.deployment.id if self.deployment else None

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == "admin"

    @property
    def actor(self) -> Actor:
        if self.kind == "user":
            return Actor("user", self.user_id, self.username or "")
        if self.kind == "case":
            return Actor("customer", None, "customer")
        assert self.deployment is not None
        return Actor("deployment", self.deployment.id, self.deployment.name)

    def can_see_group(self, group_id: int) -> bool:
        return self.is_admin or (self.is_user and group_id in self.group_ids)

    def can_see_case(self, case: Case) -> bool:
        if case.deleted_at is not None:
            return False
        if self.kind == "case":
            return case.id == self.case_id
        return self.can_see_group(case.group_id)

    def case_scope(self) -> ColumnElement[bool]:
        """SQL condition limiting cases to those this caller may see."""
        if self.is_admin:
            return true()
        if self.kind == "user":
            return Case.group_id.in_(self.group_ids) if self.group_ids else false()
        if self.kind == "case":
            return Case.id == self.case_id
        return false()

    def event_scope(self) -> tuple[ColumnElement[bool], dict[str, Any]]:
        """SQL condition limiting feed events to those this caller may see, and its parameters.

        The conditions are built once (every long-poll runs one), the caller's values bound.
        """
        if self.is_admin:
            return _ALL_EVENTS, {}
        if self.kind == "user" and self.group_ids:
            ids = sorted(self.group_ids)
            return _groups_events(len(ids)), {f"scope_group_{n}": g for n, g in enumerate(ids)}
        if self.kind == "case":
            return _CASE_EVENTS, {"scope_case_id": self.case_id}
        return _NO_EVENTS, {}

    def can_see_event(self, event: ScopedEvent) -> bool:
        """In memory, the same rule as :meth:`event_scope` (the feed's shared cache uses it).

        Keep the two side by side and in agreement; ``tests/backend/test_feed_cache.py``
        checks them against each other.
        """
        if self.is_admin:
            return True
        if self.kind == "user":
            return event.group_id in self.group_ids
        if self.kind == "case":
            return self.case_id is not None and event.case_id == self.case_id
        return False


def require_user(principal: Principal) -> None:
    if not principal.is_user:
        raise Forbidden("this call needs an expert's or admin's credentials")


def require_admin(principal: Principal) -> None:
    require_user(principal)
    if not principal.is_admin:
        raise Forbidden("this call is for admins only")


def user_can_access_group(user: User, group_id: int) -> bool:
    return user.active and (user.is_admin or any(g.id == group_id for g in user.groups))
