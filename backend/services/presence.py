"""Presence of each side (connect, heartbeat, disconnect), closing, and the sweep."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_
from sqlalchemy.orm import Session

from backend.errors import AlreadyClosed, CaseFinal, Conflict
from backend.models import Case
from backend.services.access import SYSTEM, Principal
from backend.services.assignment import take_on_connect
from backend.services.cases import ensure_not_final, get_case, lock_cases
from backend.services.context import Context
from backend.services.events import append_event
from backend.services.status import CaseStatus, case_status, is_present


def connect(s: Session, ctx: Context, principal: Principal, code: str) -> Case:
    """Mark the caller's side connected; a heartbeat is the same call made again."""
    case = get_case(s, principal, code, for_update=True)
    ensure_not_final(case, ctx)
    if principal.is_user:
        present = is_present(case.expert_seen_at, ctx.now, ctx.presence_timeout)
        if present and case.expert_id != principal.user_id:
            raise Conflict(
                f"{case.expert.display_name} is already connected to case {code}; "
                "ask them to disconnect first"
            )
        case.expert_id = principal.user_id
        case.expert_seen_at = ctx.now
        s.flush()
        s.refresh(case)
        take_on_connect(s, ctx, principal, case)
        if case.assignee_id == principal.user_id:
            case.assignee_connected = True
        side = "expert"
    else:
        present = is_present(case.customer_seen_at, ctx.now, ctx.presence_timeout)
        case.customer_seen_at = ctx.now
        side = "customer"
    if not present:
        case.updated_at = ctx.now
        append_event(s, ctx, case, "case.connected", principal.actor, {"side": side})
    return case


heartbeat = connect


def disconnect(s: Session, ctx: Context, principal: Principal, code: str) -> Case:
    case = get_case(s, principal, code, for_update=True)
    if principal.is_user:
        if case.expert_id != principal.user_id or case.expert_seen_at is None:
            return case
        present = is_present(case.expert_seen_at, ctx.now, ctx.presence_timeout)
        case.expert_seen_at = None
        case.expert_id = None
        side = "expert"
    else:
        if case.customer_seen_at is None:
            return case
        present = is_present(case.customer_seen_at, ctx.now, ctx.presence_timeout)
        case.customer_seen_at = None
        side = "customer"
    case.updated_at = ctx.now
    append_event(
        s,
        ctx,
        case,
        "case.disconnected",
        principal.actor,
        {"side": side, "reason": "disconnect" if present else "timeout"},
    )
    return case


def close_case(s: Session, ctx: Context, principal: Principal, code: str) -> Case:
    """Close a case: an expert with access, or the customer who raised it."""
    case = get_case(s, principal, code, for_update=True)
    status = case_status(case, ctx.now, ctx.presence_timeout)
    if status is CaseStatus.CLOSED:
        raise AlreadyClosed(f"case {code} is already closed")
    if status is CaseStatus.EXPIRED:
        raise CaseFinal(f"case {code} has expired; it cannot be closed any more")
    by = "expert" if principal.is_user else "customer"
    case.closed_at = ctx.now
    case.closed_by = by
    case.updated_at = ctx.now
    append_event(s, ctx, case, "case.closed", principal.actor, {"by": by})
    return case


def sweep(s: Session, ctx: Context, batch: int = 500) -> dict[str, int]:
    """Record expiries and presence time-outs as events. Idempotent and safe to run anywhere.

    Status is already right without it; the sweep only makes these changes visible in the log
    and the feed. Rows are locked and re-checked, so concurrent sweeps record each change once.
    """
    cutoff = ctx.now - timedelta(seconds=ctx.presence_timeout)
    open_ = and_(Case.closed_at.is_(None), Case.deleted_at.is_(None))
    due = lock_cases(
        s,
        open_,
        or_(
            and_(Case.expires_at <= ctx.now, Case.expiry_recorded.is_(False)),
            and_(Case.expert_seen_at.is_not(None), Case.expert_seen_at <= cutoff),
            and_(Case.customer_seen_at.is_not(None), Case.customer_seen_at <= cutoff),
        ),
        order_limit=batch,
    )
    counts = {"expired": 0, "timed_out": 0}
    for case in due:
        for side in ("expert", "customer"):
            seen = getattr(case, f"{side}_seen_at")
            if seen is not None and seen <= cutoff:
                setattr(case, f"{side}_seen_at", None)
                if side == "expert":
                    case.expert_id = None
                append_event(
                    s, ctx, case, "case.disconnected", SYSTEM, {"side": side, "reason": "timeout"}
                )
                counts["timed_out"] += 1
        if case.expires_at <= ctx.now and not case.expiry_recorded:
            case.expiry_recorded = True
            append_event(s, ctx, case, "case.expired", SYSTEM)
            counts["expired"] += 1
    return counts
