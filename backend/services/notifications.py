"""Notifications, opt-in per user: queued in the same transaction as the change that causes
them, delivered later by a background worker, so sending never slows or fails a request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Exists, and_, exists, or_, select
from sqlalchemy.orm import Session

from backend.models import Case, Membership, Notification, User
from backend.services.context import Context

MAX_ATTEMPTS = 8


def _wants(user: User) -> list[str]:
    channels = []
    if user.notify_webhook_url and user.notify_webhook_secret:
        channels.append("webhook")
    if user.notify_email and user.email:
        channels.append("email")
    return channels


def _payload(case: Case, reason: str, user: User) -> dict[str, Any]:
    who = case.customer_name or "a customer"
    about = f": {case.description[:200]}" if case.description else ""
    if reason == "assigned":
        text = f"Case {case.code} from {who} is assigned to you{about}"
    else:
        text = f"New unassigned case {case.code} from {who} in {case.group.name}{about}"
    return {
        # "text" makes the body a valid Slack (and Mattermost, Teams-compatible) message.
        "text": text,
        "event": f"case.{reason}",
        "recipient": user.username,
        "case": {
            "code": case.code,
            "group": case.group.name,
            "customer": {"name": case.customer_name, "email": case.customer_email},
            "description": case.description,
            "topic": case.topic,
        },
    }


def _queue(s: Session, ctx: Context, case: Case, user: User, reason: str) -> None:
    for channel in _wants(user):
        s.info["notifications_added"] = True  # wakes this process's dispatcher after commit
        s.add(
            Notification(
                user_id=user.id,
                channel=channel,
                case_code=case.code,
                reason=reason,
                payload=_payload(case, reason, user),
                status="pending",
                attempts=0,
                next_attempt_at=ctx.now,
                created_at=ctx.now,
            )
        )


def notify_assigned(s: Session, ctx: Context, case: Case, user: User) -> None:
    _queue(s, ctx, case, user, "assigned")


def _subscribed_members(group_id: Any) -> list[ColumnElement[bool]]:
    """Conditions for the active members of a group who opted in to a channel."""
    opted_in = or_(
        and_(User.notify_webhook_url.is_not(None), User.notify_webhook_secret.is_not(None)),
        and_(User.notify_email.is_(True), User.email.is_not(None)),
    )
    return [
        Membership.user_id == User.id,
        Membership.group_id == group_id,
        User.active.is_(True),
        opted_in,
    ]


def group_has_subscribers(group_id: Any) -> Exists:
    """Whether anybody would be told of an unassigned case in the group (a SQL condition).

    Most cases arrive in groups where nobody opted in; routing reads this with the group
    row and skips :func:`notify_unassigned` for them.
    """
    return exists().where(*_subscribed_members(group_id))


def notify_unassigned(s: Session, ctx: Context, case: Case) -> None:
    """Tell the group's members who opted in that an unassigned case arrived."""
    members = s.scalars(select(User).where(*_subscribed_members(case.group_id)).order_by(User.id))
    for user in members:
        _queue(s, ctx, case, user, "unassigned_in_group")


def backoff(attempts: int) -> timedelta:
    """Delay before the next try: 5 s, 10 s, 20 s … capped at 30 minutes."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 1800))


# The longest one sending may take: a webhook's connect and read time-outs (10 s each) or an
# SMTP conversation (15 s per step), with room to spare.
WORST_SEND_SECONDS = 60


def claim_due(
    s: Session, ctx: Context, limit: int = 5, lease: float | None = None
) -> list[Notification]:
    """Take due notifications for sending; a lease keeps other workers off them meanwhile.

    The lease covers the whole batch sent one after another at its slowest, so another
    process never takes over (and sends again) a notification still being sent.
    """
    lease = lease if lease is not None else limit * WORST_SEND_SECONDS
    query = (
        select(Notification)
        .where(Notification.status == "pending", Notification.next_attempt_at <= ctx.now)
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    due = list(s.scalars(query))
    for item in due:
        item.attempts += 1
        item.next_attempt_at = ctx.now + timedelta(seconds=lease)
    return due


def record_result(
    s: Session, ctx: Context, notification_id: int, error: str | None, *, permanent: bool = False
) -> None:
    item = s.get(Notification, notification_id)
    if item is None:
        return
    if error is None:
        item.status, item.sent_at, item.last_error = "sent", ctx.now, None
        return
    item.last_error = error[:1000]
    if permanent or item.attempts >= MAX_ATTEMPTS:
        item.status = "failed"
    else:
        item.next_attempt_at = ctx.now + backoff(item.attempts)
