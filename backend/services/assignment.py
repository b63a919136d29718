"""Assigning cases to experts, and claims that only one expert can win."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.errors import AlreadyAssigned, ValidationFailed
from backend.models import Case, User
from backend.services.access import Actor, Principal, require_user, user_can_access_group
from backend.services.cases import ensure_not_final, get_case, user_ref
from backend.services.context import Context
from backend.services.events import append_event
from backend.services.status import is_present


def _resolve_assignee(s: Session, principal: Principal, assignee: str) -> User:
    if assignee == "me":
        user = s.get(User, principal.user_id)
    else:
        user = s.scalar(select(User).where(User.username == assignee))
    if user is None or not user.active:
        raise ValidationFailed(
            f"no active user named {assignee!r}",
            details=[{"field": "assignee", "message": "use me, a username, or null to unassign"}],
        )
    return user


def assign_case(
    s: Session,
    ctx: Context,
    principal: Principal,
    code: str,
    assignee: str | None,
    *,
    if_unassigned: bool = False,
) -> Case:
    """Assign ``code`` to a user (``"me"`` or a username) or unassign it (``None``).

    With ``if_unassigned`` it is a claim: it succeeds only while nobody has the case (or the
    claimer already has it). The case row is locked for the decision, so however many experts
    race, exactly one claim wins.
    """
    require_user(principal)
    case = get_case(s, principal, code, for_update=True)
    ensure_not_final(case, ctx)
    target = None if assignee is None else _resolve_assignee(s, principal, assignee)
    if target is not None and not user_can_access_group(target, case.group_id):
        raise ValidationFailed(
            f"{target.username} has no access to the group {case.group.name}; "
            "add them to it first or choose someone else",
            details=[{"field": "assignee", "message": "not a member of the case's group"}],
        )
    if if_unassigned:
        if target is None:
            raise ValidationFailed(
                "a claim needs an assignee",
                details=[{"field": "assignee", "message": "required with if_unassigned"}],
            )
        if case.assignee_id is not None and case.assignee_id != target.id:
            raise AlreadyAssigned(
                f"case {code} is already assigned to {case.assignee.display_name}"
            )
    if if_unassigned:
        reason = "claimed"
    elif target is None:
        reason = f"unassigned by {principal.username}"
    elif target.id == principal.user_id:
        reason = f"taken by {principal.username}"
    else:
        reason = f"assigned by {principal.username}"
    return set_assignee(s, ctx, principal.actor, case, target, reason)


def set_assignee(
    s: Session,
    ctx: Context,
    actor: Actor,
    case: Case,
    target: User | None,
    reason: str,
    *,
    policy: str | None = None,
) -> Case:
    """Give ``case`` to ``target`` (or nobody), log why, and notify the new assignee."""
    from backend.services.notifications import notify_assigned

    if case.assignee_id == (target.id if target else None):
        return case
    previous = user_ref(case.assignee)
    case.assignee = target
    case.assigned_at = ctx.now if target is not None else None
    case.assignee_connected = (
        target is not None
        and case.expert_id == target.id
        and is_present(case.expert_seen_at, ctx.now, ctx.presence_timeout)
    )
    case.updated_at = ctx.now
    data: dict[str, object] = {"assignee": user_ref(target), "previous": previous, "reason": reason}
    if policy is not None:
        data["policy"] = policy
    append_event(s, ctx, case, "case.assigned", actor, data)
    if target is not None:
        notify_assigned(s, ctx, case, target)
    return case


def take_on_connect(s: Session, ctx: Context, principal: Principal, case: Case) -> None:
    """An expert who connects to an unassigned case gets it."""
    if case.assignee_id is None:
        user = s.get(User, principal.user_id)
        set_assignee(s, ctx, principal.actor, case, user, "connected to an unassigned case")
