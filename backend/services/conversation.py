"""Chat between the expert and the customer of a case."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.clock import isoformat_z
from backend.models import Message
from backend.services.access import Principal
from backend.services.cases import ensure_not_final, get_case
from backend.services.context import Context
from backend.services.events import append_event


def message_dict(message: Message) -> dict[str, object]:
    return {
        "id": message.id,
        "author": {"kind": message.author_kind, "name": message.author_name},
        "body": message.body,
        "created_at": message.created_at,
    }


def post_message(
    s: Session,
    ctx: Context,
    principal: Principal,
    code: str,
    body: str,
    *,
    idempotency_key: str | None = None,
) -> tuple[Message, bool]:
    """Add a message to the case's chat; returns it and whether it is new.

    A retry with the same ``idempotency_key`` returns the message stored the first time.
    """
    case = get_case(s, principal, code, for_update=True)
    if idempotency_key is not None:
        earlier = s.scalar(
            select(Message).where(
                Message.case_id == case.id, Message.idempotency_key == idempotency_key
            )
        )
        if earlier is not None:
            return earlier, False
    ensure_not_final(case, ctx)
    if principal.is_user:
        kind, name = "expert", principal.display_name or principal.username or "Expert"
    else:
        kind, name = "customer", case.customer_name or "Customer"
    message = Message(
        case_id=case.id,
        author_kind=kind,
        author_user_id=principal.user_id,
        author_name=name[:100],
        body=body,
        created_at=ctx.now,
        idempotency_key=idempotency_key,
    )
    s.add(message)
    s.flush()
    case.updated_at = ctx.now
    data = message_dict(message)
    data["created_at"] = isoformat_z(message.created_at)
    append_event(s, ctx, case, "case.message", principal.actor, {"message": data})
    return message, True


def list_messages(
    s: Session, principal: Principal, code: str, after: int = 0, limit: int = 500
) -> list[Message]:
    case = get_case(s, principal, code)
    query = (
        select(Message)
        .where(Message.case_id == case.id, Message.id > after)
        .order_by(Message.id)
        .limit(limit)
    )
    return list(s.scalars(query))
