"""Admin pages (users, groups, deployments) and everyone's own API tokens.

The pages list and edit through the JSON API from the browser; the server renders the frame
and hands over the reference data the forms need.
"""

from __future__ import annotations

from flask import g, render_template
from sqlalchemy import select

from backend.api.runtime import runtime
from backend.console import admin_required, bp, login_required
from backend.console.queue import page_settings
from backend.models import Group, User


def _reference_data() -> dict[str, list[dict[str, object]]]:
    with runtime().store.read() as s:
        groups = [
            {"id": x.id, "name": x.name} for x in s.scalars(select(Group).order_by(Group.name))
        ]
        users = [
            {"id": u.id, "username": u.username, "display_name": u.display_name}
            for u in s.scalars(select(User).order_by(User.username))
        ]
    return {"groups": groups, "users": users}


@bp.get("/admin/users")
@admin_required
def admin_users():
    ref = _reference_data()
    return render_template("console/admin_users.html", settings=page_settings(**ref), **ref)


@bp.get("/admin/groups")
@admin_required
def admin_groups():
    ref = _reference_data()
    return render_template("console/admin_groups.html", settings=page_settings(**ref), **ref)


@bp.get("/admin/deployments")
@admin_required
def admin_deployments():
    ref = _reference_data()
    return render_template("console/admin_deployments.html", settings=page_settings(**ref), **ref)


@bp.get("/me")
@login_required
def profile():
    return render_template(
        "console/profile.html", settings=page_settings(username=g.principal.username)
    )
