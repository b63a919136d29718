"""Users, groups, memberships, API tokens and resolving a caller's credentials."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from backend.errors import AccountDeactivated, Conflict, NotFound, Unauthorized, ValidationFailed
from backend.models import ApiToken, Case, CaseToken, Deployment, Group, Membership, User
from backend.prepared import Prepared
from backend.security import (
    CASE_TOKEN_PREFIX,
    DEPLOYMENT_KEY_PREFIX,
    USER_TOKEN_PREFIX,
    WEBHOOK_SECRET_PREFIX,
    hash_password,
    hash_secret,
    new_secret,
    secret_hint,
    verify_password,
)
from backend.services.access import DeploymentInfo, Principal
from backend.services.context import Context

ROLES = ("admin", "supporter")
ONLINE_WINDOW = timedelta(minutes=5)
# Recording activity on every request would make each read a write.
ACTIVITY_RESOLUTION = timedelta(seconds=60)


def availability(user: User, ctx: Context, window: timedelta = ONLINE_WINDOW) -> str:
    """``away`` when set so, else ``online`` when active within ``window``, else ``offline``.

    The one definition of availability: the API shows it with the default window, and
    routing's "only available experts" filter applies it with the group's own window.
    """
    if user.away:
        return "away"
    recent = user.last_seen_at is not None and user.last_seen_at > ctx.now - window
    return "online" if recent else "offline"


def _unique_violation(s: Session, model: type, field: str, value: Any, what: str) -> None:
    if s.scalar(select(func.count()).select_from(model).where(getattr(model, field) == value)):
        raise Conflict(f"{what} {value!r} already exists; choose another {field}")


def create_user(
    s: Session,
    ctx: Context,
    *,
    username: str,
    password: str | None,
    role: str = "supporter",
    display_name: str | None = None,
    email: str | None = None,
    group_ids: list[int] | tuple[int, ...] = (),
) -> User:
    if role not in ROLES:
        raise ValidationFailed(f"role must be admin or supporter, not {role!r}")
    _unique_violation(s, User, "username", username, "a user named")
    user = User(
        username=username,
        display_name=display_name or username,
        email=email,
        role=role,
        password_hash=hash_password(password, fast=ctx.fast_password_hash) if password else None,
        active=True,
        away=False,
        created_at=ctx.now,
    )
    s.add(user)
    s.flush()
    for group_id in group_ids:
        add_member(s, group_id, user.id)
    s.refresh(user)
    return user


def update_user(s: Session, ctx: Context, user: User, changes: dict[str, Any]) -> User:
    for name, value in changes.items():
        if name == "password":
            user.password_hash = hash_password(value, fast=ctx.fast_password_hash)
        elif name == "availability":
            user.away = value == "away"
            user.last_seen_at = ctx.now
        elif name == "role" and value not in ROLES:
            raise ValidationFailed(f"role must be admin or supporter, not {value!r}")
        else:
            setattr(user, name, value)
    if user.notify_webhook_url and not user.notify_webhook_secret:
        # Webhooks are always signed: a URL given without a secret gets one, which its owner
        # reads (by rotating it) with POST /me/webhook-secret.
        user.notify_webhook_secret = new_secret(WEBHOOK_SECRET_PREFIX)
    return user


def get_user(s: Session, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def find_user(s: Session, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def check_password(s: Session, username: str, password: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None or not verify_password(user.password_hash if user else None, password):
        raise Unauthorized("wrong username or password")
    if not user.active:
        raise AccountDeactivated("this account is deactivated; ask an admin")
    return user


def create_group(s: Session, ctx: Context, *, name: str, description: str | None = None) -> Group:
    _unique_violation(s, Group, "name", name, "a group named")
    group = Group(name=name, description=description, created_at=ctx.now)
    s.add(group)
    s.flush()
    return group


def update_group(s: Session, group: Group, changes: dict[str, Any]) -> Group:
    if changes.get("name") and changes["name"] != group.name:
        _unique_violation(s, Group, "name", changes["name"], "a group named")
    for name, value in changes.items():
        setattr(group, name, value)
    return group


def rotate_webhook_secret(s: Session, user: User) -> str:
    """A new secret for signing the user's webhooks; shown once to the user."""
    user.notify_webhook_secret = new_secret(WEBHOOK_SECRET_PREFIX)
    return user.notify_webhook_secret


def get_group(s: Session, group_id: int) -> Group:
    group = s.get(Group, group_id)
    if group is None:
        raise NotFound(f"no group with id {group_id}")
    return group


def find_group(s: Session, name: str) -> Group:
    group = s.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise NotFound(f"no group named {name!r}")
    return group


def delete_group(s: Session, group: Group) -> None:
    in_use = s.scalar(select(func.count()).select_from(Case).where(Case.group_id == group.id))
    in_use = in_use or s.scalar(
        select(func.count()).select_from(Deployment).where(Deployment.group_id == group.id)
    )
    if in_use:
        raise Conflict(
            f"group {group.name!r} still has cases or deployments; move them to another group first"
        )
    s.delete(group)


def add_member(s: Session, group_id: int, user_id: int) -> None:
    get_group(s, group_id)
    get_user(s, user_id)
    if s.get(Membership, (user_id, group_id)) is None:
        s.add(Membership(user_id=user_id, group_id=group_id))
        s.flush()


def remove_member(s: Session, group_id: int, user_id: int) -> None:
    membership = s.get(Membership, (user_id, group_id))
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of group {group_id}")
    s.delete(membership)


def create_token(s: Session, ctx: Context, user: User, name: str) -> tuple[ApiToken, str]:
    secret = new_secret(USER_TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_secret(secret),
        hint=secret_hint(secret),
        created_at=ctx.now,
    )
    s.add(token)
    s.flush()
    return token, secret


def list_tokens(s: Session, user_id: int) -> list[ApiToken]:
    return list(
        s.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))
    )


def delete_token(s: Session, user_id: int, token_id: int) -> None:
    token = s.get(ApiToken, token_id)
    if token is None or token.user_id != user_id:
        raise NotFound(f"no token with id {token_id}")
    s.delete(token)


def needs_activity_record(last_seen_at: datetime | None, ctx: Context) -> bool:
    return last_seen_at is None or last_seen_at < ctx.now - ACTIVITY_RESOLUTION


def record_activity(s: Session, ctx: Context, principal: Principal) -> None:
    """Note that a user is active (keeps them online), at most once a minute."""
    user = s.get(User, principal.user_id)
    if user is not None and needs_activity_record(user.last_seen_at, ctx):
        user.last_seen_at = ctx.now
        if principal.token_id is not None:
            token = s.get(ApiToken, principal.token_id)
            if token is not None:
                token.last_used_at = ctx.now


# Every agent request starts with it: the columns alone, read without the ORM's bookkeeping.
_deployments = Deployment.__table__.c
DEPLOYMENT_BY_KEY = Prepared(
    select(
        _deployments.id,
        _deployments.name,
        _deployments.group_id,
        _deployments.policy,
        _deployments.default_assignee_id,
        _deployments.topics,
    ).where(_deployments.key_hash == bindparam("digest"), _deployments.active.is_(True))
)


# Every expert request starts with one of these: the user's columns and, one row each, the
# groups they belong to (none: one row with a NULL group), in one statement without the ORM.
_users, _tokens, _members = User.__table__.c, ApiToken.__table__.c, Membership.__table__.c
_USER_AND_GROUPS = (
    select(
        _users.id,
        _users.username,
        _users.display_name,
        _users.role,
        _users.last_seen_at,
        _members.group_id,
    )
    .select_from(User.__table__)
    .outerjoin(Membership.__table__, _members.user_id == _users.id)
    .where(_users.active.is_(True))
)
USER_BY_TOKEN = Prepared(
    _USER_AND_GROUPS.add_columns(_tokens.id.label("token_id"))
    .join(ApiToken.__table__, _tokens.user_id == _users.id)
    .where(_tokens.token_hash == bindparam("digest"))
)
USER_BY_ID = Prepared(_USER_AND_GROUPS.where(_users.id == bindparam("user_id")))


def _user_principal(rows: list[Any], token_id: int | None = None) -> Principal:
    groups = (row.group_id for row in rows if row.group_id is not None)
    return Principal.for_user(rows[0], token_id, group_ids=groups)


def resolve_secret(s: Session, ctx: Context, secret: str) -> Principal:
    """Turn a bearer secret into a principal; 401 when it is unknown or revoked."""
    digest = hash_secret(secret)
    if secret.startswith(USER_TOKEN_PREFIX):
        rows = USER_BY_TOKEN.all(s.connection(), {"digest": digest})
        if rows:
            return _user_principal(rows, token_id=rows[0].token_id)
    elif secret.startswith(CASE_TOKEN_PREFIX):
        case_id = s.scalar(select(CaseToken.case_id).where(CaseToken.token_hash == digest))
        if case_id is not None:
            return Principal(kind="case", case_id=case_id)
    elif secret.startswith(DEPLOYMENT_KEY_PREFIX):
        row = DEPLOYMENT_BY_KEY.first(s.connection(), {"digest": digest})
        if row is not None:
            return Principal(kind="deployment", deployment=DeploymentInfo.of(row))
    raise Unauthorized("the credentials are unknown or have been revoked")


def principal_for_user_id(s: Session, ctx: Context, user_id: int) -> Principal:
    rows = USER_BY_ID.all(s.connection(), {"user_id": user_id})
    if not rows:  # deleted or deactivated since the session began
        raise Unauthorized("your session has ended; log in again")
    return _user_principal(rows)
