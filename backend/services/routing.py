"""Automatic assignment: who gets a case, and why.

A group's routing settings name a *policy* (who is next) and *filters* (who may be chosen):

- policies: ``none`` (the whole group sees the case), ``default_user``, ``round_robin``,
  ``least_active`` (fewest open cases); a deployment may override the group's policy;
- filters: only available experts (active recently and not set away), within their work
  schedule, under a maximum of open cases.

Every decision is recorded in the event log with its reason. Round-robin's position lives in
the group row, and the group row is locked while deciding, so decisions are consistent across
processes.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.orm import Session

from backend.errors import ValidationFailed
from backend.models import Case, Deployment, Group, Membership, User
from backend.services.access import Actor, DeploymentInfo, user_can_access_group
from backend.services.accounts import availability
from backend.services.context import Context
from backend.services.events import append_event
from backend.services.status import not_final_clause

POLICIES = ("none", "default_user", "round_robin", "least_active")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class RoutingSettings:
    policy: str = "none"
    default_user_id: int | None = None
    only_available: bool = False
    available_within_minutes: int = 15
    use_schedules: bool = False
    max_open_cases: int | None = None
    escalate_after_minutes: int | None = None

    @classmethod
    def of(cls, group: Group) -> RoutingSettings:
        return cls.from_dict(group.routing)

    @classmethod
    def from_dict(cls, routing: dict[str, Any] | None) -> RoutingSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (routing or {}).items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    assignee: User | None
    policy: str
    reason: str


def within_schedule(schedule: dict[str, Any] | None, now: datetime) -> bool:
    """Whether ``now`` falls in a weekly schedule ``{"timezone", "days", "start", "end"}``.

    A shift that ends before it starts runs past midnight. No schedule means always.
    """
    if not schedule:
        return True
    local = now.astimezone(ZoneInfo(schedule.get("timezone", "UTC")))
    start = time.fromisoformat(schedule.get("start", "00:00"))
    end = time.fromisoformat(schedule.get("end", "23:59"))
    days = schedule.get("days", list(DAYS))
    moment = local.time()
    if start <= end:
        return DAYS[local.weekday()] in days and start <= moment < end
    if moment >= start:
        return DAYS[local.weekday()] in days
    if moment < end:  # the early-morning part of a shift that began yesterday
        return DAYS[(local.weekday() - 1) % 7] in days
    return False


def open_case_counts(s: Session, ctx: Context, user_ids: list[int]) -> dict[int, int]:
    if not user_ids:
        return {}
    rows = s.execute(
        select(Case.assignee_id, func.count())
        .where(Case.assignee_id.in_(user_ids), not_final_clause(ctx.now))
        .group_by(Case.assignee_id)
    )
    counts = dict.fromkeys(user_ids, 0)
    counts.update({user_id: n for user_id, n in rows})
    return counts


def group_members(s: Session, group_id: int) -> list[User]:
    query = (
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.group_id == group_id, User.active.is_(True))
        .order_by(User.id)
    )
    return list(s.scalars(query))


def _available(user: User, ctx: Context, within_minutes: int) -> str | None:
    """None when available, else why not (the same rule the API shows as availability)."""
    state = availability(user, ctx, timedelta(minutes=within_minutes))
    return None if state == "online" else state


def why_not_eligible(
    user: User,
    ctx: Context,
    settings: RoutingSettings,
    exclude: frozenset[int],
    open_cases: int,
) -> str | None:
    """None when ``user`` passes every filter of the group's settings, else why not."""
    if not user.active:
        return "deactivated"
    if user.id in exclude:
        return "excluded"
    if settings.only_available and (
        why := _available(user, ctx, settings.available_within_minutes)
    ):
        return why
    if settings.use_schedules and not within_schedule(user.schedule, ctx.now):
        return "off schedule"
    if settings.max_open_cases is not None and open_cases >= settings.max_open_cases:
        return f"{open_cases} open cases"
    return None


def eligible_experts(
    s: Session, ctx: Context, group: Group, settings: RoutingSettings, exclude: frozenset[int]
) -> tuple[list[User], dict[str, str], dict[int, int]]:
    """Members who pass every filter; also why the others do not, and open-case counts."""
    members = group_members(s, group.id)
    counts = open_case_counts(s, ctx, [m.id for m in members])
    eligible, rejected = [], {}
    for user in members:
        why = why_not_eligible(user, ctx, settings, exclude, counts[user.id])
        if why is None:
            eligible.append(user)
        else:
            rejected[user.username] = why
    return eligible, rejected, counts


def _rotation(eligible: list[User], last_id: int | None) -> list[User]:
    """Eligible users in round-robin order, starting after the last one chosen."""
    ordered = sorted(eligible, key=lambda u: u.id)
    split = next((i for i, u in enumerate(ordered) if u.id > (last_id or 0)), 0)
    return ordered[split:] + ordered[:split]


def _why_nobody(rejected: dict[str, str]) -> str:
    if not rejected:
        return "no members"
    return ", ".join(f"{name} {why}" for name, why in rejected.items())


DeploymentLike = Deployment | DeploymentInfo


def effective_policy(
    settings: RoutingSettings, group_id: int, deployment: DeploymentLike | None
) -> tuple[str, int | None]:
    """The policy and default user that apply: a deployment of the group may override both."""
    policy, default_user_id = settings.policy, settings.default_user_id
    if deployment is not None and deployment.group_id == group_id:
        if deployment.policy:
            policy = deployment.policy
        elif deployment.default_assignee_id:
            policy = "default_user"
        if deployment.default_assignee_id and policy == "default_user":
            default_user_id = deployment.default_assignee_id
    return policy, default_user_id


def keeps_state(settings: RoutingSettings, policy: str) -> bool:
    """Whether a decision depends on earlier ones (a rotation, open-case counts or a cap).

    Only such decisions need the group row locked, so that concurrent ones follow each other.
    """
    if policy == "none":
        return False
    return policy in ("round_robin", "least_active") or settings.max_open_cases is not None


NO_ROUTING = Decision(None, "none", "none: the whole group sees it")


def decide(
    s: Session,
    ctx: Context,
    group: Group,
    deployment: DeploymentLike | None = None,
    exclude: frozenset[int] = frozenset(),
) -> Decision:
    """Choose an assignee for a case in ``group`` (or nobody), with the reason."""
    settings = RoutingSettings.of(group)
    policy, default_user_id = effective_policy(settings, group.id, deployment)
    if policy == "none":
        return NO_ROUTING
    eligible, rejected, counts = eligible_experts(s, ctx, group, settings, exclude)
    if policy == "default_user":
        user = s.get(User, default_user_id) if default_user_id else None
        if user is None:
            return Decision(None, policy, "default_user: none set → unassigned")
        if user in eligible:
            return Decision(user, policy, f"default_user → {user.username}")
        why = rejected.get(user.username)
        if why is None and user.is_admin:  # admins may take any group's cases, filters apply
            count = open_case_counts(s, ctx, [user.id])[user.id]
            why = why_not_eligible(user, ctx, settings, exclude, count)
            if why is None:
                return Decision(user, policy, f"default_user → {user.username}")
        why = why or "not an active member of the group"
        return Decision(None, policy, f"default_user: {user.username} {why} → unassigned")
    if not eligible:
        return Decision(
            None, policy, f"{policy}: nobody available ({_why_nobody(rejected)}) → unassigned"
        )
    rotation = _rotation(eligible, group.rr_last_user_id)
    if policy == "round_robin":
        chosen = rotation[0]
        reason = (
            f"round_robin → {chosen.username}: {len(eligible)} available, {chosen.username} next"
        )
    else:
        fewest = min(counts[u.id] for u in eligible)
        chosen = next(u for u in rotation if counts[u.id] == fewest)
        reason = (
            f"least_active → {chosen.username}: {fewest} open case(s), "
            f"fewest of {len(eligible)} available"
        )
    group.rr_last_user_id = chosen.id
    return Decision(chosen, policy, reason)


def configure_routing(s: Session, group: Group, settings: dict[str, Any]) -> None:
    """Store a group's routing settings after checking they can work."""
    routing = RoutingSettings(**settings)
    if routing.policy not in POLICIES:
        raise ValidationFailed(f"policy must be one of {', '.join(POLICIES)}")
    if routing.default_user_id is not None:
        user = s.get(User, routing.default_user_id)
        if user is None or not user_can_access_group(user, group.id):
            raise ValidationFailed(
                f"user {routing.default_user_id} cannot be the default user: "
                "not an active member of the group",
                details=[
                    {"field": "routing.default_user_id", "message": "choose a member of the group"}
                ],
            )
    if routing.policy == "default_user" and routing.default_user_id is None:
        raise ValidationFailed(
            "the default_user policy needs a default_user_id",
            details=[{"field": "routing.default_user_id", "message": "required for default_user"}],
        )
    group.routing = routing.as_dict()


@dataclass(frozen=True)
class GroupRouting:
    """What routing reads of a group before deciding: its settings, and whether any member
    would be told of an unassigned case."""

    settings: RoutingSettings
    subscribed: bool

    @classmethod
    def from_columns(cls, routing: dict[str, Any] | None, subscribed: Any) -> GroupRouting:
        return cls(RoutingSettings.from_dict(routing), bool(subscribed))


ROUTING_GROUP = "routing_group_id"  # the parameter naming the group in the columns below


@functools.cache
def group_routing_columns() -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """The two columns of :class:`GroupRouting`, for the group given as ``routing_group_id``.

    Read alone, or returned by the statement that inserts a case (one statement fewer for
    every new case). Most groups route nothing (policy ``none``) and so need no group object.
    """
    from backend.services.notifications import group_has_subscribers

    groups = Group.__table__.c
    group_id = bindparam(ROUTING_GROUP)
    settings = select(groups.routing).where(groups.id == group_id).scalar_subquery()
    return settings.label("routing"), group_has_subscribers(group_id).label("subscribed")


def _routing_of(s: Session, group_id: int) -> GroupRouting:
    query = _routing_query()
    return GroupRouting.from_columns(
        *s.connection().execute(query, {ROUTING_GROUP: group_id}).one()
    )


@functools.cache
def _routing_query() -> Select[tuple[Any, bool]]:
    return select(*group_routing_columns())


def route_case(
    s: Session,
    ctx: Context,
    case: Case,
    actor: Actor,
    *,
    deployment: DeploymentLike | None = None,
    exclude: frozenset[int] = frozenset(),
    reason_prefix: str = "",
    routing: GroupRouting | None = None,
) -> Decision:
    """Apply the routing decision to ``case`` and record it in the event log.

    ``routing`` is the case's group as read in this unit of work, when the caller has it.
    A decision that depends on earlier ones is taken with the group row locked (PostgreSQL;
    SQLite has a single writer), so concurrent ones follow each other; the others need no
    lock, and concurrent case creations in one group do not wait for each other.
    """
    from backend.services.assignment import set_assignee
    from backend.services.notifications import notify_unassigned

    routing = routing or _routing_of(s, case.group_id)
    settings, subscribed = routing.settings, routing.subscribed
    policy, _ = effective_policy(settings, case.group_id, deployment)
    if policy == "none":
        decision = NO_ROUTING
    else:
        # FOR NO KEY UPDATE: a plain FOR UPDATE would also wait for the key-share lock that
        # inserting a case into this group takes, and deadlock two concurrent case creations.
        lock = s.info["store"].is_postgres and keeps_state(settings, policy)
        group = s.get(
            Group,
            case.group_id,
            with_for_update={"key_share": True} if lock else None,
            populate_existing=lock,  # what the lock protects, read again under it
        )
        assert group is not None
        decision = decide(s, ctx, group, deployment, exclude)
    reason = reason_prefix + decision.reason
    if decision.assignee is not None or case.assignee_id is not None:
        set_assignee(s, ctx, actor, case, decision.assignee, reason, policy=decision.policy)
    elif decision.policy != "none":  # "none" is routing switched off: nothing was decided
        append_event(
            s, ctx, case, "case.routed", actor, {"policy": decision.policy, "reason": reason}
        )
    if decision.assignee is None and subscribed:
        notify_unassigned(s, ctx, case)
    return decision


def escalate(s: Session, ctx: Context, batch: int = 200) -> int:
    """Reassign (or return to the group) cases whose assignee has not connected in time."""
    from backend.services.access import SYSTEM
    from backend.services.cases import lock_cases

    count = 0
    for group in s.scalars(select(Group).order_by(Group.id)):
        minutes = RoutingSettings.of(group).escalate_after_minutes
        if not minutes:
            continue
        cutoff = ctx.now - timedelta(minutes=minutes)
        due = lock_cases(
            s,
            Case.group_id == group.id,
            Case.assignee_id.is_not(None),
            Case.assignee_connected.is_(False),
            Case.assigned_at <= cutoff,
            not_final_clause(ctx.now),
            order_limit=batch,
        )
        for case in due:
            previous = case.assignee.username if case.assignee else "the assignee"
            route_case(
                s,
                ctx,
                case,
                SYSTEM,
                deployment=case.deployment,
                exclude=frozenset({case.assignee_id}),
                reason_prefix=f"escalated: {previous} did not connect within {minutes} min; ",
            )
            count += 1
    return count
