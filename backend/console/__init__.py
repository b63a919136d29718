"""The web console for experts and admins, under ``/console``.

Pages are server-rendered templates; their live parts are a little plain JavaScript that talks
to the same JSON API as every other client, authenticated by the console's session cookie and
an ``X-CSRF-Token`` header. Forms posted to the console itself (log in, log out, new case)
carry a CSRF token too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, request, session, url_for

from backend.api.runtime import runtime
from backend.console.i18n import LANGUAGES, catalogue, choose_language, translate
from backend.csrf import csrf_matches, csrf_token
from backend.errors import SOSError
from backend.services.accounts import principal_for_user_id

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

PRODUCT = "SOS"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def check_csrf() -> None:
    """Refuse a form post whose token is missing or wrong (403)."""
    if not csrf_matches(request.form.get("csrf_token", "")):
        abort(
            403, description=_("The form expired or did not come from this site. Reload the page.")
        )


def _(text: str, **values: object) -> str:
    return translate(g.get("lang", "en"), text, **values)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run the view with ``g.principal`` set, or send the visitor to the login page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user_id = session.get("user_id")
        if user_id is None:
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        rt = runtime()
        try:
            with rt.store.read() as s:
                g.principal = principal_for_user_id(s, rt.context(), int(user_id))
        except SOSError:
            session.clear()
            return redirect(url_for("console.login"))
        return view(*args, **kwargs)

    return wrapper


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @login_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.principal.is_admin:
            abort(403, description=_("This page is for admins only."))
        return view(*args, **kwargs)

    return wrapper


@bp.before_request
def _pick_language() -> None:
    requested = request.args.get("lang")
    if requested in LANGUAGES:
        session["lang"] = requested
    g.lang = choose_language(session.get("lang"), list(request.accept_languages.values()))


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    lang = g.get("lang", "en")
    return {
        "_": _,
        "lang": lang,
        "languages": LANGUAGES,
        "product": PRODUCT,
        "csrf_token": csrf_token,
        "js_catalogue": catalogue(lang),
        "me": g.get("principal"),
    }


from backend.console import admin, auth, queue  # noqa: E402, F401
