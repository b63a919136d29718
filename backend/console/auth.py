"""Logging in and out of the console (password, session cookie, CSRF-protected forms)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import redirect, render_template, request, session, url_for
from flask_limiter import RateLimitExceeded

from backend.api.runtime import runtime
from backend.console import _, bp, check_csrf, csrf_token, login_required
from backend.errors import SOSError
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


@bp.route("/login", methods=["GET", "POST"])
@limit_login_attempts
def login():
    error = None
    username = ""
    if request.method == "POST":
        check_csrf()
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        rt = runtime()
        ctx = rt.context()
        try:
            if not username or not password:
                raise SOSError(_("Enter your username and password."))
            with rt.store.write() as s:
                user = check_password(s, username, password)
                record_activity(s, ctx, Principal.for_user(user))
                user_id = user.id
        except SOSError as exc:
            error = exc.message if exc.status == 400 else _("Wrong username or password.")
            if "deactivated" in exc.message:
                error = _("This account is deactivated; ask an admin.")
        else:
            lang = session.get("lang")
            session.clear()  # a new session on login: no fixation of an earlier cookie
            session.permanent = True
            session["user_id"] = user_id
            if lang:
                session["lang"] = lang
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
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
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
