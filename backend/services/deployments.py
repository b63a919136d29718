"""Deployments: the registered branded agents and their secret keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.errors import Conflict, NotFound, ValidationFailed
from backend.models import Deployment, Group, User
from backend.security import DEPLOYMENT_KEY_PREFIX, hash_secret, new_secret, secret_hint
from backend.services.access import user_can_access_group
from backend.services.accounts import get_group
from backend.services.context import Context

CUSTOMER_FIELDS = ("name", "email", "description")


def _check_assignee(s: Session, user_id: int | None, group_id: int) -> None:
    if user_id is None:
        return
    user = s.get(User, user_id)
    if user is None or not user_can_access_group(user, group_id):
        raise ValidationFailed(
            f"user {user_id} cannot be the default assignee: not an active member of the group",
            details=[{"field": "default_assignee_id", "message": "choose a member of the group"}],
        )


def _check_topics(s: Session, topics: list[dict[str, Any]]) -> None:
    names = [t["name"] for t in topics]
    if len(set(names)) != len(names):
        raise ValidationFailed(
            "topic names must be different from each other",
            details=[{"field": "topics", "message": "duplicate name"}],
        )
    for index, topic in enumerate(topics):
        if s.get(Group, topic["group_id"]) is None:
            raise ValidationFailed(
                f"topic {topic['name']!r} routes to group {topic['group_id']}, "
                "which does not exist",
                details=[{"field": f"topics.{index}.group_id", "message": "no such group"}],
            )


def create_deployment(
    s: Session,
    ctx: Context,
    *,
    name: str,
    group_id: int,
    default_assignee_id: int | None = None,
    customer_fields: list[str] | None = None,
    policy: str | None = None,
    topics: list[dict[str, Any]] | None = None,
) -> tuple[Deployment, str]:
    """Register a branded agent; returns it and its key, which is never shown again."""
    if s.scalar(select(Deployment.id).where(Deployment.name == name)) is not None:
        raise Conflict(f"a deployment named {name!r} already exists; choose another name")
    get_group(s, group_id)
    _check_assignee(s, default_assignee_id, group_id)
    _check_topics(s, topics or [])
    key = new_secret(DEPLOYMENT_KEY_PREFIX)
    deployment = Deployment(
        name=name,
        group_id=group_id,
        default_assignee_id=default_assignee_id,
        customer_fields=list(customer_fields if customer_fields is not None else CUSTOMER_FIELDS),
        policy=policy,
        topics=list(topics or []),
        key_hash=hash_secret(key),
        key_hint=secret_hint(key),
        active=True,
        created_at=ctx.now,
    )
    s.add(deployment)
    s.flush()
    s.refresh(deployment)
    return deployment, key


def get_deployment(s: Session, deployment_id: int) -> Deployment:
    deployment = s.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFound(f"no deployment with id {deployment_id}")
    return deployment


def update_deployment(s: Session, deployment: Deployment, changes: dict[str, Any]) -> Deployment:
    group_id = changes.get("group_id", deployment.group_id)
    if "group_id" in changes:
        get_group(s, group_id)
    if "name" in changes and changes["name"] != deployment.name:
        if s.scalar(select(Deployment.id).where(Deployment.name == changes["name"])) is not None:
            raise Conflict(f"a deployment named {changes['name']!r} already exists")
    assignee = changes.get("default_assignee_id", deployment.default_assignee_id)
    _check_assignee(s, assignee, group_id)
    if "topics" in changes:
        _check_topics(s, changes["topics"])
    for name, value in changes.items():
        setattr(deployment, name, value)
    s.flush()
    s.refresh(deployment)
    return deployment


def rotate_key(s: Session, deployment: Deployment) -> str:
    """Replace the key: agents built with the old one stop working at once."""
    key = new_secret(DEPLOYMENT_KEY_PREFIX)
    deployment.key_hash = hash_secret(key)
    deployment.key_hint = secret_hint(key)
    return key
