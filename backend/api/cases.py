"""Case endpoints for experts (user tokens) and customers (case tokens)."""

from __future__ import annotations

from flask import url_for

from backend.api import bp
from backend.api import schemas as sc
from backend.api.framework import operation
from backend.api.idempotency import IDEMPOTENCY_HEADER, idempotency_key
from backend.api.runtime import runtime
from backend.api.serialize import case_for, case_out, event_out, message_out
from backend.services import assignment, conversation, presence
from backend.services.access import Principal
from backend.services.cases import NewCase, create_manual_case, delete_case, edit_case
from backend.services.cases import get_case as find_case
from backend.services.events import case_history
from backend.services.queue import CaseFilter, list_cases
from backend.services.status import CaseStatus

CASE = "/cases/<code>"
EITHER = ("user", "case")
CaseView = sc.CaseOut | sc.CustomerCaseOut


@operation(
    bp,
    "/cases",
    summary="List the queue (filters, search, cursor pagination)",
    callers=("user",),
    query=sc.CaseListQuery,
    responses={200: sc.CaseList},
    tags=("cases",),
)
def list_queue(principal: Principal, query: sc.CaseListQuery) -> sc.CaseList:
    rt = runtime()
    ctx = rt.context()
    filters = CaseFilter(
        statuses=tuple(CaseStatus(s) for s in query.status or ()),
        group_id=query.group,
        assignee=query.assignee,
        text=query.q,
        limit=query.limit,
        cursor=query.cursor,
    )
    with rt.store.read() as s:
        cases, next_cursor, counts = list_cases(s, ctx, principal, filters)
        return sc.CaseList(
            cases=[case_out(c, ctx) for c in cases], next_cursor=next_cursor, counts=counts
        )


@operation(
    bp,
    "/cases",
    "POST",
    summary="Open a manual case",
    callers=("user",),
    body=sc.CaseCreate,
    responses={201: sc.CaseOut},
    tags=("cases",),
)
def create_case(principal: Principal, body: sc.CaseCreate):
    rt = runtime()
    ctx = rt.context()
    details = NewCase(
        customer_name=body.customer.name if body.customer else None,
        customer_email=body.customer.email if body.customer else None,
        description=body.description,
    )
    with rt.store.write() as s:
        case = create_manual_case(s, ctx, principal, group_id=body.group_id, details=details)
        out = case_out(case, ctx)
    return out, 201, {"Location": url_for("api.get_case", code=out.code)}


@operation(
    bp,
    CASE,
    summary="Show a case (expert or customer view)",
    callers=EITHER,
    responses={200: CaseView},
    tags=("cases",),
)
def get_case(principal: Principal, code: str) -> CaseView:
    rt = runtime()
    with rt.store.read() as s:
        return case_for(principal, find_case(s, principal, code), rt.context())


def customer_changes(body: sc.CasePatch) -> dict[str, object]:
    """The fields a PATCH names, as case attributes (null clears a field)."""
    changes: dict[str, object] = {}
    if body.customer is not None:
        for name in body.customer.model_fields_set:
            changes[f"customer_{name}"] = getattr(body.customer, name)
    if "description" in body.model_fields_set:
        changes["description"] = body.description
    if body.group_id is not None:
        changes["group_id"] = body.group_id
    return changes


@operation(
    bp,
    CASE,
    "PATCH",
    summary="Edit customer details, description or group",
    callers=EITHER,
    body=sc.CasePatch,
    responses={200: CaseView},
    tags=("cases",),
)
def patch_case(principal: Principal, code: str, body: sc.CasePatch) -> CaseView:
    rt = runtime()
    ctx = rt.context()
    with rt.store.write() as s:
        case = edit_case(s, ctx, principal, code, customer_changes(body))
        return case_for(principal, case, ctx)


@operation(
    bp,
    CASE,
    "DELETE",
    summary="Delete a case (admins)",
    callers=("admin",),
    responses={204: None},
    tags=("cases",),
)
def remove_case(principal: Principal, code: str):
    rt = runtime()
    with rt.store.write() as s:
        delete_case(s, rt.context(), principal, code)
    return None, 204


@operation(
    bp,
    CASE + "/assign",
    "POST",
    summary="Assign, unassign, or claim (if_unassigned)",
    callers=("user",),
    body=sc.AssignBody,
    responses={200: sc.CaseOut},
    tags=("cases",),
)
def assign(principal: Principal, code: str, body: sc.AssignBody) -> sc.CaseOut:
    rt = runtime()
    ctx = rt.context()
    with rt.store.write() as s:
        case = assignment.assign_case(
            s, ctx, principal, code, body.assignee, if_unassigned=body.if_unassigned
        )
        return case_out(case, ctx)


@operation(
    bp,
    CASE + "/claim",
    "POST",
    summary="Take the case only if nobody has it",
    callers=("user",),
    responses={200: sc.CaseOut},
    tags=("cases",),
)
def claim(principal: Principal, code: str) -> sc.CaseOut:
    rt = runtime()
    ctx = rt.context()
    with rt.store.write() as s:
        case = assignment.assign_case(s, ctx, principal, code, "me", if_unassigned=True)
        return case_out(case, ctx)


def _presence_view(name: str, action, summary: str) -> None:  # noqa: ANN001
    def view(principal: Principal, code: str) -> CaseView:
        rt = runtime()
        ctx = rt.context()
        with rt.store.write() as s:
            return case_for(principal, action(s, ctx, principal, code), ctx)

    view.__name__ = name
    operation(
        bp,
        f"{CASE}/{name}",
        "POST",
        summary=summary,
        callers=EITHER,
        responses={200: CaseView},
        tags=("presence",),
    )(view)


_presence_view("connect", presence.connect, "Connect the caller's side to the session")
_presence_view("heartbeat", presence.heartbeat, "Keep the caller's side connected")
_presence_view("disconnect", presence.disconnect, "Disconnect the caller's side")
_presence_view("close", presence.close_case, "Close the case (expert or its customer)")


@operation(
    bp,
    CASE + "/messages",
    summary="The chat, oldest first",
    callers=EITHER,
    query=sc.MessageQuery,
    responses={200: sc.MessageList},
    tags=("messages",),
)
def list_messages(principal: Principal, code: str, query: sc.MessageQuery) -> sc.MessageList:
    with runtime().store.read() as s:
        messages = conversation.list_messages(s, principal, code, after=query.after)
        return sc.MessageList(messages=[message_out(m) for m in messages])


@operation(
    bp,
    CASE + "/messages",
    "POST",
    summary="Send a chat message",
    callers=EITHER,
    body=sc.MessageCreate,
    responses={200: sc.MessageOut, 201: sc.MessageOut},
    headers={
        IDEMPOTENCY_HEADER: "A key unique to this message; a retry with the same key returns "
        "the stored message (200) and adds nothing."
    },
    tags=("messages",),
)
def post_message(principal: Principal, code: str, body: sc.MessageCreate):
    rt = runtime()
    key = idempotency_key()
    with rt.store.write() as s:
        message, created = conversation.post_message(
            s, rt.context(), principal, code, body.body, idempotency_key=key
        )
        out = message_out(message)
    location = url_for("api.list_messages", code=code, after=out.id - 1)
    return out, 201 if created else 200, {"Location": location}


@operation(
    bp,
    CASE + "/events",
    summary="The case's history, oldest first",
    callers=EITHER,
    responses={200: sc.EventList},
    tags=("events",),
)
def case_events(principal: Principal, code: str) -> sc.EventList:
    with runtime().store.read() as s:
        case = find_case(s, principal, code)
        return sc.EventList(events=[event_out(e, principal) for e in case_history(s, case)])
