"""Turning models into the API's response shapes."""

from __future__ import annotations

from typing import Any

from backend.feedcache import FeedEvent
from backend.models import ApiToken, Case, Deployment, Event, Group, Message, User
from backend.services.access import Principal
from backend.services.accounts import availability
from backend.services.context import Context
from backend.services.routing import RoutingSettings
from backend.services.status import case_status, is_present

from . import schemas as sc


def _user_ref(user: User | None) -> sc.UserRef | None:
    return None if user is None else sc.UserRef.model_validate(user)


def case_out(case: Case, ctx: Context) -> sc.CaseOut:
    expert_present = is_present(case.expert_seen_at, ctx.now, ctx.presence_timeout)
    return sc.CaseOut(
        code=case.code,
        status=case_status(case, ctx.now, ctx.presence_timeout).value,
        source=case.source,
        topic=case.topic,
        group=sc.Ref(id=case.group.id, name=case.group.name),
        assignee=_user_ref(case.assignee),
        deployment=None
        if case.deployment is None
        else sc.Ref(id=case.deployment.id, name=case.deployment.name),
        customer=sc.CustomerOut(name=case.customer_name, email=case.customer_email),
        description=case.description,
        device=sc.DeviceOut(
            hostname=case.device_hostname,
            os=case.device_os,
            agent_version=case.device_agent_version,
            device_id=case.device_id,
        ),
        expert_connected=expert_present,
        customer_connected=is_present(case.customer_seen_at, ctx.now, ctx.presence_timeout),
        connected_expert=_user_ref(case.expert) if expert_present else None,
        closed_by=case.closed_by,
        created_at=case.created_at,
        updated_at=case.updated_at,
        expires_at=case.expires_at,
        closed_at=case.closed_at,
    )


def customer_case_out(case: Case, ctx: Context) -> sc.CustomerCaseOut:
    expert_present = is_present(case.expert_seen_at, ctx.now, ctx.presence_timeout)
    expert = case.expert if expert_present and case.expert is not None else case.assignee
    return sc.CustomerCaseOut(
        code=case.code,
        status=case_status(case, ctx.now, ctx.presence_timeout).value,
        source=case.source,
        customer=sc.CustomerOut(name=case.customer_name, email=case.customer_email),
        description=case.description,
        expert=None if expert is None else sc.ExpertName(display_name=expert.display_name),
        expert_connected=expert_present,
        customer_connected=is_present(case.customer_seen_at, ctx.now, ctx.presence_timeout),
        created_at=case.created_at,
        expires_at=case.expires_at,
        closed_at=case.closed_at,
    )


def case_for(principal: Principal, case: Case, ctx: Context) -> sc.CaseOut | sc.CustomerCaseOut:
    return case_out(case, ctx) if principal.is_user else customer_case_out(case, ctx)


# What of each event's data a customer may see; anything not listed stays internal
# (user ids, usernames, routing reasons and policies, previous assignees).
_CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "case.created": ("source", "topic"),
    "case.connected": ("side",),
    "case.disconnected": ("side", "reason"),
    "case.message": ("message",),
    "case.closed": ("by",),
}


def _customer_data(event: Event | FeedEvent) -> dict[str, Any]:
    """Event data as a customer may see it: no user ids, usernames or internal reasons."""
    data = event.data
    if event.type == "case.assigned":
        assignee = data.get("assignee")
        return {"assignee": None if not assignee else {"display_name": assignee["display_name"]}}
    if event.type == "case.edited":
        return {"fields": [f for f in data.get("fields", []) if not f.startswith(("group",))]}
    return {k: data[k] for k in _CUSTOMER_FIELDS.get(event.type, ()) if k in data}


def event_out(event: Event | FeedEvent, principal: Principal) -> sc.EventOut:
    customer = principal.kind == "case"
    return sc.EventOut(
        id=event.id,
        cursor=str(event.id),
        type=event.type,
        case_code=event.case_code,
        status=event.status,
        actor=sc.EventActor(
            kind=event.actor_kind,
            id=None if customer else event.actor_id,
            name="expert" if customer and event.actor_kind == "user" else event.actor_name,
        ),
        data=_customer_data(event) if customer else event.data,
        created_at=event.created_at,
    )


def message_out(message: Message) -> sc.MessageOut:
    return sc.MessageOut(
        id=message.id,
        author=sc.Author(kind=message.author_kind, name=message.author_name),
        body=message.body,
        created_at=message.created_at,
    )


def user_out(user: User, ctx: Context) -> sc.UserOut:
    return sc.UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        role=user.role,
        active=user.active,
        availability=availability(user, ctx),
        groups=[sc.Ref(id=g.id, name=g.name) for g in user.groups],
        last_seen_at=user.last_seen_at,
        schedule=sc.ScheduleOut.model_validate(user.schedule) if user.schedule else None,
        notifications=sc.NotificationsOut(
            webhook_url=user.notify_webhook_url,
            webhook_secret_set=bool(user.notify_webhook_secret),
            email=user.notify_email,
        ),
    )


def group_out(group: Group) -> sc.GroupOut:
    return sc.GroupOut(
        id=group.id,
        name=group.name,
        description=group.description,
        routing=sc.RoutingOut(**RoutingSettings.of(group).as_dict()),
    )


def deployment_out(deployment: Deployment) -> sc.DeploymentOut:
    return sc.DeploymentOut(
        id=deployment.id,
        name=deployment.name,
        group=sc.Ref(id=deployment.group.id, name=deployment.group.name),
        default_assignee=_user_ref(deployment.default_assignee),
        customer_fields=deployment.customer_fields,
        policy=deployment.policy,
        topics=[sc.TopicOut(**t) for t in deployment.topics or []],
        key_hint=deployment.key_hint,
        active=deployment.active,
        created_at=deployment.created_at,
    )


def token_out(token: ApiToken) -> sc.TokenOut:
    return sc.TokenOut.model_validate(token)
