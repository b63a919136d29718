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


def _admin_page(name: str) -> None:
    """Register ``/admin/<name>``: the page frame plus the groups and users its forms offer."""

    def view():
        ref = _reference_data()
        return render_template(f"console/admin_{name}.html", settings=page_settings(**ref), **ref)

    view.__name__ = f"admin_{name}"
    bp.get(f"/admin/{name}")(admin_required(view))


for _page in ("users", "groups", "deployments"):
    _admin_page(_page)


@bp.get("/me")
@login_required
def profile():
    return render_template(
        "console/profile.html", settings=page_settings(username=g.principal.username)
    )
