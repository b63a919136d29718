"""The queue, the case page and opening a manual case."""

from __future__ import annotations

from typing import Any

from flask import abort, g, render_template, request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api import schemas as sc
from backend.api.runtime import runtime
from backend.api.serialize import case_out
from backend.console import _, bp, check_csrf, login_required
from backend.errors import SOSError
from backend.models import Group, User
from backend.services.access import Principal, user_can_access_group
from backend.services.cases import NewCase, create_manual_case, get_case


def visible_groups(s: Session, principal: Principal) -> list[dict[str, Any]]:
    """The groups whose cases this user sees: all for admins, their own for supporters."""
    query = select(Group).order_by(Group.name)
    if not principal.is_admin:
        query = query.where(Group.id.in_(principal.group_ids))
    return [{"id": group.id, "name": group.name} for group in s.scalars(query)]


def assignable_users(s: Session, group_id: int) -> list[dict[str, Any]]:
    """Active users with access to the group: its members and every admin."""
    users = s.scalars(select(User).where(User.active).order_by(User.display_name))
    return [
        {"username": u.username, "display_name": u.display_name}
        for u in users
        if user_can_access_group(u, group_id)
    ]


def page_settings(**extra: Any) -> dict[str, Any]:
    """Values the page's script needs, handed over as JSON in the page."""
    settings = runtime().settings
    principal: Principal = g.principal
    return {
        "api": "/api/v1",
        "me": {
            "username": principal.username,
            "display_name": principal.display_name,
            "admin": principal.is_admin,
        },
        "heartbeat_seconds": max(1.0, settings.presence_timeout / 3),
        **extra,
    }


@bp.get("/queue")
@login_required
def queue():
    rt = runtime()
    with rt.store.read() as s:
        groups = visible_groups(s, g.principal)
    return render_template(
        "console/queue.html", groups=groups, settings=page_settings(groups=groups)
    )


@bp.get("/cases/<code>")
@login_required
def case_page(code: str):
    rt = runtime()
    ctx = rt.context()
    try:
        with rt.store.read() as s:
            case = get_case(s, g.principal, code)
            data = case_out(case, ctx).model_dump(mode="json")
            users = assignable_users(s, case.group_id)
    except SOSError:
        abort(404, description=_("No case with the code {code} in your groups.", code=code))
    return render_template(
        "console/case.html",
        case=data,
        settings=page_settings(case=data, assignable=users),
    )


def _form_case(form: dict[str, str]) -> sc.CaseCreate:
    """The form's fields checked by the same definitions as the API's ``POST /cases``."""
    body: dict[str, Any] = {"group_id": form.get("group_id", "")}
    customer = {key: value for key in ("name", "email") if (value := form.get(key, "").strip())}
    if customer:
        body["customer"] = customer
    if form.get("description", "").strip():
        body["description"] = form["description"]
    try:
        body["group_id"] = int(body["group_id"])
    except ValueError:
        body["group_id"] = 0
    return sc.CaseCreate.model_validate(body)


FIELD_LABELS = {"group_id": "Group", "name": "Name", "email": "E-mail", "description": "Problem"}


@bp.route("/cases/new", methods=["GET", "POST"])
@login_required
def new_case():
    rt = runtime()
    with rt.store.read() as s:
        groups = visible_groups(s, g.principal)
    errors: list[str] = []
    form = request.form.to_dict() if request.method == "POST" else {}
    if request.method == "POST":
        check_csrf()
        try:
            body = _form_case(form)
            details = NewCase(
                customer_name=body.customer.name if body.customer else None,
                customer_email=body.customer.email if body.customer else None,
                description=body.description,
            )
            ctx = rt.context()
            with rt.store.write() as s:
                case = create_manual_case(
                    s, ctx, g.principal, group_id=body.group_id, details=details
                )
                created = case_out(case, ctx).model_dump(mode="json")
            return render_template("console/created.html", case=created), 201
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][-1]) if error["loc"] else ""
                label = _(FIELD_LABELS.get(field, field.title()))
                errors.append(f"{label}: {error['msg']}")
        except SOSError as exc:
            errors.append(exc.message)
    status = 422 if errors else 200
    return render_template("console/new_case.html", groups=groups, form=form, errors=errors), status
