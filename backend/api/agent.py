"""Endpoints for branded agents, authenticated with a deployment key."""

from __future__ import annotations

from flask import url_for
from sqlalchemy.orm import Session

from backend.api import bp
from backend.api import schemas as sc
from backend.api.framework import operation
from backend.api.idempotency import IDEMPOTENCY_HEADER, idempotency_key
from backend.api.runtime import runtime
from backend.api.serialize import customer_case_out
from backend.ratelimit import limit_case_creation
from backend.services.access import Principal
from backend.services.cases import NewCase, join_manual_case, open_agent_case
from backend.services.deployments import get_deployment


def new_case_details(
    customer: sc.CustomerIn | None, description: str | None, device: sc.DeviceIn | None
) -> NewCase:
    return NewCase(
        customer_name=customer.name if customer else None,
        customer_email=customer.email if customer else None,
        description=description,
        device_hostname=device.hostname if device else None,
        device_os=device.os if device else None,
        device_agent_version=device.agent_version if device else None,
        device_id=device.device_id if device else None,
    )


@operation(
    bp,
    "/agent/config",
    summary="The deployment's public settings",
    callers=("deployment",),
    responses={200: sc.AgentConfigOut},
    tags=("agent",),
)
def agent_config(principal: Principal) -> sc.AgentConfigOut:
    assert principal.deployment is not None
    with runtime().store.read() as s:
        deployment = get_deployment(s, principal.deployment.id)
        return sc.AgentConfigOut(
            deployment=sc.Ref(id=deployment.id, name=deployment.name),
            group={"name": deployment.group.name},
            customer_fields=deployment.customer_fields,
            topics=[t["name"] for t in deployment.topics or []],
        )


@operation(
    bp,
    "/agent/cases",
    "POST",
    summary="Open a case from a branded agent (idempotent)",
    callers=("deployment",),
    body=sc.AgentCaseCreate,
    responses={200: sc.AgentCaseOut, 201: sc.AgentCaseOut},
    headers={
        IDEMPOTENCY_HEADER: "A key unique to this request, e.g. a UUID; a retry with the "
        "same key returns the first case and creates nothing."
    },
    tags=("agent",),
    unit_of_work=True,  # the busiest write: the key is checked where the case is stored
)
@limit_case_creation
def agent_open_case(principal: Principal, body: sc.AgentCaseCreate, unit: Session):
    ctx = runtime().context()
    assert principal.deployment is not None
    case, token, created = open_agent_case(
        unit,
        ctx,
        principal.deployment,
        source=body.source,
        details=new_case_details(body.customer, body.description, body.device),
        idempotency_key=idempotency_key(),
        topic=body.topic,
    )
    out = sc.AgentCaseOut(case=customer_case_out(case, ctx), case_token=token)
    location = url_for("api.get_case", code=out.case.code)
    return out, 201 if created else 200, {"Location": location}


@operation(
    bp,
    "/agent/join",
    "POST",
    summary="Join a manual case by its code",
    callers=("deployment",),
    body=sc.AgentJoin,
    responses={200: sc.AgentCaseOut},
    headers={
        IDEMPOTENCY_HEADER: "A key unique to this join; a retry with the same key returns the "
        "case again (with a fresh case token) instead of 409 already_joined."
    },
    tags=("agent",),
    unit_of_work=True,  # like opening a case: the key is checked where the join is stored
)
def agent_join(principal: Principal, body: sc.AgentJoin, unit: Session) -> sc.AgentCaseOut:
    ctx = runtime().context()
    assert principal.deployment is not None
    case, token = join_manual_case(
        unit,
        ctx,
        principal.deployment,
        body.code,
        new_case_details(body.customer, None, body.device),
        join_key=idempotency_key(),
    )
    return sc.AgentCaseOut(case=customer_case_out(case, ctx), case_token=token)
