"""Deployments: registering branded agents, their settings and their keys (admins only)."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import select

from backend.api import bp
from backend.api import schemas as sc
from backend.api.framework import operation
from backend.api.runtime import runtime
from backend.api.serialize import deployment_out
from backend.models import Deployment
from backend.services import deployments
from backend.services.access import Principal

DEPLOYMENT = "/deployments/<int(max=2147483647):deployment_id>"


@operation(
    bp,
    "/deployments",
    summary="Registered branded agents",
    callers=("admin",),
    responses={200: sc.DeploymentList},
    tags=("admin",),
)
def list_deployments(principal: Principal) -> sc.DeploymentList:
    with runtime().store.read() as s:
        rows = s.scalars(select(Deployment).order_by(Deployment.name))
        return sc.DeploymentList(deployments=[deployment_out(d) for d in rows])


@operation(
    bp,
    "/deployments",
    "POST",
    summary="Register a branded agent (key shown once)",
    callers=("admin",),
    body=sc.DeploymentCreate,
    responses={201: sc.DeploymentCreated},
    tags=("admin",),
)
def create_deployment(principal: Principal, body: sc.DeploymentCreate):
    rt = runtime()
    with rt.store.write() as s:
        deployment, key = deployments.create_deployment(
            s,
            rt.context(),
            name=body.name,
            group_id=body.group_id,
            default_assignee_id=body.default_assignee_id,
            customer_fields=list(dict.fromkeys(body.customer_fields)),
            policy=body.policy,
            topics=[t.model_dump() for t in body.topics],
        )
        out = sc.DeploymentCreated(deployment=deployment_out(deployment), key=key)
    return out, 201, {"Location": url_for("api.get_deployment", deployment_id=out.deployment.id)}


@operation(
    bp,
    DEPLOYMENT,
    summary="A deployment",
    callers=("admin",),
    responses={200: sc.DeploymentOut},
    tags=("admin",),
)
def get_deployment(principal: Principal, deployment_id: int) -> sc.DeploymentOut:
    with runtime().store.read() as s:
        return deployment_out(deployments.get_deployment(s, deployment_id))


@operation(
    bp,
    DEPLOYMENT,
    "PATCH",
    summary="Change a deployment",
    callers=("admin",),
    body=sc.DeploymentPatch,
    responses={200: sc.DeploymentOut},
    tags=("admin",),
)
def patch_deployment(
    principal: Principal, deployment_id: int, body: sc.DeploymentPatch
) -> sc.DeploymentOut:
    changes = body.model_dump(exclude_unset=True)
    changes = {k: v for k, v in changes.items() if v is not None or k == "default_assignee_id"}
    if "customer_fields" in changes:
        changes["customer_fields"] = list(dict.fromkeys(changes["customer_fields"]))
    if "policy" in body.model_fields_set:
        changes["policy"] = body.policy
    with runtime().store.write() as s:
        deployment = deployments.get_deployment(s, deployment_id)
        return deployment_out(deployments.update_deployment(s, deployment, changes))


@operation(
    bp,
    DEPLOYMENT + "/rotate-key",
    "POST",
    summary="Replace the key (shown once)",
    callers=("admin",),
    responses={200: sc.DeploymentCreated},
    tags=("admin",),
)
def rotate_deployment_key(principal: Principal, deployment_id: int) -> sc.DeploymentCreated:
    with runtime().store.write() as s:
        deployment = deployments.get_deployment(s, deployment_id)
        key = deployments.rotate_key(s, deployment)
        return sc.DeploymentCreated(deployment=deployment_out(deployment), key=key)
