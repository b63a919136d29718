"""Accounts and administration: tokens, one's own profile, users and groups."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import select

from backend.api import bp
from backend.api import schemas as sc
from backend.api.framework import operation
from backend.api.runtime import runtime
from backend.api.serialize import group_out, token_out, user_out
from backend.errors import Forbidden, NotFound
from backend.models import Group, User
from backend.ratelimit import limit_login_attempts
from backend.services import accounts
from backend.services.access import Principal
from backend.services.routing import configure_routing

USER = "/users/<int(max=2147483647):user_id>"
GROUP = "/groups/<int(max=2147483647):group_id>"


# ---- tokens and profile ----------------------------------------------------------------------


@operation(
    bp,
    "/auth/token",
    "POST",
    summary="Exchange a username and password for an API token",
    callers=("anyone",),
    body=sc.TokenLogin,
    responses={201: sc.TokenCreated},
    tags=("auth",),
)
@limit_login_attempts
def login_token(principal: Principal | None, body: sc.TokenLogin):
    rt = runtime()
    ctx = rt.context()
    with rt.store.write() as s:
        user = accounts.check_password(s, body.username, body.password)
        token, secret = accounts.create_token(s, ctx, user, body.name)
        out = sc.TokenCreated(**token_out(token).model_dump(), token=secret)
    return out, 201, {"Location": url_for("api.list_tokens")}


@operation(
    bp,
    "/me",
    summary="Your profile",
    callers=("user",),
    responses={200: sc.UserOut},
    tags=("auth",),
)
def get_me(principal: Principal) -> sc.UserOut:
    rt = runtime()
    with rt.store.read() as s:
        return user_out(accounts.get_user(s, principal.user_id), rt.context())


@operation(
    bp,
    "/me",
    "PATCH",
    summary="Change your name, availability or password",
    callers=("user",),
    body=sc.MePatch,
    responses={200: sc.UserOut},
    tags=("auth",),
)
def patch_me(principal: Principal, body: sc.MePatch) -> sc.UserOut:
    rt = runtime()
    ctx = rt.context()
    with rt.store.write() as s:
        user = accounts.get_user(s, principal.user_id)
        accounts.update_user(s, ctx, user, _profile_changes(body))
        return user_out(user, ctx)


def _profile_changes(body: sc.MePatch | sc.UserPatch) -> dict[str, object]:
    """What a PATCH asks to change; ``schedule: null`` removes the schedule."""
    changes = body.model_dump(exclude_unset=True, exclude={"schedule", "notifications"})
    changes = {k: v for k, v in changes.items() if v is not None or k == "email"}
    if "schedule" in body.model_fields_set:
        changes["schedule"] = body.schedule.model_dump() if body.schedule else None
    notifications = getattr(body, "notifications", None)
    if notifications is not None:
        changes["notify_webhook_url"] = notifications.webhook_url
        changes["notify_email"] = notifications.email
    return changes


@operation(
    bp,
    "/me/webhook-secret",
    "POST",
    summary="Create or replace the secret that signs your webhooks (shown once)",
    callers=("user",),
    responses={200: sc.WebhookSecret},
    tags=("auth",),
)
def rotate_webhook_secret(principal: Principal) -> sc.WebhookSecret:
    with runtime().store.write() as s:
        secret = accounts.rotate_webhook_secret(s, accounts.get_user(s, principal.user_id))
        return sc.WebhookSecret(secret=secret)


@operation(
    bp,
    "/tokens",
    summary="Your API tokens",
    callers=("user",),
    responses={200: sc.TokenList},
    tags=("auth",),
)
def list_tokens(principal: Principal) -> sc.TokenList:
    with runtime().store.read() as s:
        return sc.TokenList(
            tokens=[token_out(t) for t in accounts.list_tokens(s, principal.user_id)]
        )


@operation(
    bp,
    "/tokens",
    "POST",
    summary="Create an API token (shown once)",
    callers=("user",),
    body=sc.TokenCreate,
    responses={201: sc.TokenCreated},
    tags=("auth",),
)
def create_token(principal: Principal, body: sc.TokenCreate):
    rt = runtime()
    with rt.store.write() as s:
        user = accounts.get_user(s, principal.user_id)
        token, secret = accounts.create_token(s, rt.context(), user, body.name)
        out = sc.TokenCreated(**token_out(token).model_dump(), token=secret)
    return out, 201, {"Location": url_for("api.list_tokens")}


@operation(
    bp,
    "/tokens/<int(max=2147483647):token_id>",
    "DELETE",
    summary="Revoke a token",
    callers=("user",),
    responses={204: None},
    tags=("auth",),
)
def delete_token(principal: Principal, token_id: int):
    with runtime().store.write() as s:
        accounts.delete_token(s, principal.user_id, token_id)
    return None, 204


# ---- users -------------------------------------------------------------------------------------


@operation(
    bp,
    "/users",
    summary="All users",
    callers=("admin",),
    responses={200: sc.UserList},
    tags=("admin",),
)
def list_users(principal: Principal) -> sc.UserList:
    rt = runtime()
    ctx = rt.context()
    with rt.store.read() as s:
        users = s.scalars(select(User).order_by(User.username))
        return sc.UserList(users=[user_out(u, ctx) for u in users])


@operation(
    bp,
    "/users",
    "POST",
    summary="Create a user",
    callers=("admin",),
    body=sc.UserCreate,
    responses={201: sc.UserOut},
    tags=("admin",),
)
def create_user(principal: Principal, body: sc.UserCreate):
    rt = runtime()
    ctx = rt.context()
    with rt.store.write() as s:
        user = accounts.create_user(
            s,
            ctx,
            username=body.username,
            password=body.password,
            role=body.role,
            display_name=body.display_name,
            email=body.email,
            group_ids=body.group_ids,
        )
        out = user_out(user, ctx)
    return out, 201, {"Location": url_for("api.get_user", user_id=out.id)}


@operation(
    bp, USER, summary="A user", callers=("admin",), responses={200: sc.UserOut}, tags=("admin",)
)
def get_user(principal: Principal, user_id: int) -> sc.UserOut:
    rt = runtime()
    with rt.store.read() as s:
        return user_out(accounts.get_user(s, user_id), rt.context())


@operation(
    bp,
    USER,
    "PATCH",
    summary="Change a user's name, role, password or activity",
    callers=("admin",),
    body=sc.UserPatch,
    responses={200: sc.UserOut},
    tags=("admin",),
)
def patch_user(principal: Principal, user_id: int, body: sc.UserPatch) -> sc.UserOut:
    rt = runtime()
    ctx = rt.context()
    changes = _profile_changes(body)
    if user_id == principal.user_id and (
        changes.get("active") is False or changes.get("role") == "supporter"
    ):
        raise Forbidden("you cannot deactivate or demote yourself; ask another admin")
    with rt.store.write() as s:
        user = accounts.get_user(s, user_id)
        accounts.update_user(s, ctx, user, changes)
        return user_out(user, ctx)


# ---- groups ------------------------------------------------------------------------------------


@operation(
    bp,
    "/groups",
    summary="Groups (admins: all; supporters: theirs)",
    callers=("user",),
    responses={200: sc.GroupList},
    tags=("admin",),
)
def list_groups(principal: Principal) -> sc.GroupList:
    with runtime().store.read() as s:
        query = select(Group).order_by(Group.name)
        if not principal.is_admin:
            query = query.where(Group.id.in_(principal.group_ids))
        return sc.GroupList(groups=[group_out(g) for g in s.scalars(query)])


@operation(
    bp,
    "/groups",
    "POST",
    summary="Create a group",
    callers=("admin",),
    body=sc.GroupCreate,
    responses={201: sc.GroupOut},
    tags=("admin",),
)
def create_group(principal: Principal, body: sc.GroupCreate):
    rt = runtime()
    with rt.store.write() as s:
        group = accounts.create_group(s, rt.context(), name=body.name, description=body.description)
        if body.routing is not None:
            configure_routing(s, group, body.routing.model_dump())
        out = group_out(group)
    return out, 201, {"Location": url_for("api.get_group", group_id=out.id)}


@operation(
    bp, GROUP, summary="A group", callers=("user",), responses={200: sc.GroupOut}, tags=("admin",)
)
def get_group(principal: Principal, group_id: int) -> sc.GroupOut:
    with runtime().store.read() as s:
        if not principal.can_see_group(group_id):
            raise NotFound(f"no group with id {group_id}")
        return group_out(accounts.get_group(s, group_id))


@operation(
    bp,
    GROUP,
    "PATCH",
    summary="Rename or describe a group",
    callers=("admin",),
    body=sc.GroupPatch,
    responses={200: sc.GroupOut},
    tags=("admin",),
)
def patch_group(principal: Principal, group_id: int, body: sc.GroupPatch) -> sc.GroupOut:
    with runtime().store.write() as s:
        group = accounts.get_group(s, group_id)
        changes = body.model_dump(exclude_unset=True, exclude={"routing"})
        accounts.update_group(
            s, group, {k: v for k, v in changes.items() if v is not None or k == "description"}
        )
        if body.routing is not None:
            configure_routing(s, group, body.routing.model_dump())
        return group_out(group)


@operation(
    bp,
    GROUP,
    "DELETE",
    summary="Delete an unused group",
    callers=("admin",),
    responses={204: None},
    tags=("admin",),
)
def delete_group(principal: Principal, group_id: int):
    with runtime().store.write() as s:
        accounts.delete_group(s, accounts.get_group(s, group_id))
    return None, 204


MEMBER = GROUP + "/members/<int(max=2147483647):user_id>"


@operation(
    bp,
    MEMBER,
    "PUT",
    summary="Add a user to a group",
    callers=("admin",),
    responses={204: None},
    tags=("admin",),
)
def add_member(principal: Principal, group_id: int, user_id: int):
    with runtime().store.write() as s:
        accounts.add_member(s, group_id, user_id)
    return None, 204


@operation(
    bp,
    MEMBER,
    "DELETE",
    summary="Remove a user from a group",
    callers=("admin",),
    responses={204: None},
    tags=("admin",),
)
def remove_member(principal: Principal, group_id: int, user_id: int):
    with runtime().store.write() as s:
        accounts.remove_member(s, group_id, user_id)
    return None, 204
