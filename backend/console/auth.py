"""Logging in and out of the console (password, session cookie, CSRF-protected forms)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import redirect, render_template, request, session, url_for
from flask_limiter import RateLimitExceeded

from backend.api.runtime import runtime
from backend.console import _, bp, check_csrf, login_required
from backend.csrf import csrf_token
from backend.errors import AccountDeactivated, Unauthorized
from backend.ratelimit import limit_login_attempts, retry_after_seconds
from backend.services.access import Principal
from backend.services.accounts import check_password, record_activity


def _safe_next(target: str | None) -> str:
    """Only local console paths: a login link must not redirect to another site."""
    if target and target.startswith("/console") and not urlsplit(target).netloc:
        return target
    return url_for("console.queue")


@bp.get("/")
def index():
    return redirect(url_for("console.queue"))


def _fresh_session() -> None:
    """Drop everything the session held but the chosen language."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _check_login(username: str, password: str) -> tuple[int | None, str | None]:
    """The user's id when the password is right, else what to tell them."""
    if not username or not password:
        return None, _("Enter your username and password.")
    rt = runtime()
    try:
        with rt.store.write() as s:
            user = check_password(s, username, password)
            record_activity(s, rt.context(), Principal.for_user(user))
            return user.id, None
    except AccountDeactivated:
        return None, _("This account is deactivated; ask an admin.")
    except Unauthorized:
        return None, _("Wrong username or password.")


@bp.route("/login", methods=["GET", "POST"])
@limit_login_attempts
def login():
    error = None
    username = ""
    if request.method == "POST":
        check_csrf()
        username = request.form.get("username", "").strip()
        user_id, error = _check_login(username, request.form.get("password", ""))
        if user_id is not None:
            _fresh_session()  # a new session on login: no fixation of an earlier cookie
            session.permanent = True
            session["user_id"] = user_id
            csrf_token()
            return redirect(_safe_next(request.form.get("next")))
    status = 401 if error else 200
    return (
        render_template(
            "console/login.html",
            error=error,
            username=username,
            next=request.values.get("next", ""),
        ),
        status,
    )


@bp.post("/logout")
@login_required
def logout():
    check_csrf()
    _fresh_session()
    return redirect(url_for("console.login"))


@bp.errorhandler(RateLimitExceeded)
def too_many_attempts(error: RateLimitExceeded):
    """The login form again, saying when to retry (shares the API's per-account counters)."""
    seconds = retry_after_seconds(error)
    page = render_template(
        "console/login.html",
        error=_("Too many login attempts; try again in {seconds} s.", seconds=seconds),
        username=request.form.get("username", ""),
        next=request.values.get("next", ""),
    )
    return page, 429, {"Retry-After": str(seconds)}
