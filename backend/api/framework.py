"""Declaring API operations once: routing, authentication, validation and the OpenAPI entry.

Each view is registered with :func:`operation`, which records the request and response models.
The same records validate requests at run time and generate ``/api/v1/openapi.json``, and
the authorization test matrix is generated from them too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, g, request, session
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from backend.api import schemas as sc
from backend.csrf import csrf_matches
from backend.errors import (
    BadRequest,
    Forbidden,
    InvalidJSON,
    SOSError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from backend.ratelimit import CALLS_PER_TOKEN, rate_limited
from backend.services.access import Principal
from backend.services.accounts import (
    needs_activity_record,
    principal_for_user_id,
    record_activity,
    resolve_secret,
)

# Who may call: "user" (expert or admin), "admin", "case" (case token), "deployment", "anyone".
CallerKind = str
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    callers: tuple[CallerKind, ...]
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", self.rule)


OPERATIONS: list[Operation] = []
PATTERN_MESSAGES = {
    sc.TEXT_PATTERN: "must not contain control characters",
    sc.LINE_PATTERN: "must be one line without control characters",
    sc.NONBLANK_LINE_PATTERN: "must not be blank, and be one line without control characters",
    sc.NONBLANK_TEXT_PATTERN: "must not be blank or contain control characters",
    sc.USERNAME_PATTERN: "use letters, digits and . _ @ - (at most 64), starting with a letter "
    "or digit",
    sc.CODE_PATTERN: "a session code looks like s12-345-678",
    sc.CURSOR_PATTERN: "use the cursor from the previous answer (digits only)",
}


def _error_details(exc: ValidationError) -> list[dict[str, str]]:
    details = []
    for err in exc.errors(include_url=False):
        location = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field; remove it"
        elif err["type"] == "string_pattern_mismatch":
            message = PATTERN_MESSAGES.get(err.get("ctx", {}).get("pattern"), message)
        details.append({"field": location, "message": message})
    return details


def _validation_failed(exc: ValidationError, where: str) -> ValidationFailed:
    details = _error_details(exc)
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return ValidationFailed(f"{where} {first['field']}: {first['message']}{more}", details=details)


def parse_body(model: type[BaseModel]) -> BaseModel:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raw = b"{}"
    elif request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise InvalidJSON(
                "the body is not valid JSON; check quotes, commas and braces"
            ) from None
        raise _validation_failed(exc, "body field") from None


def parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise _validation_failed(exc, "query parameter") from None


def authenticate(
    callers: tuple[CallerKind, ...], unit: Session | None = None, *, unit_writes: bool = True
) -> Principal | None:
    """Find the caller from a bearer secret or the console's session cookie.

    Reads in ``unit`` when the operation runs in one, else in a read of its own; records the
    user's activity in ``unit`` only when it is a write (``unit_writes``).
    """
    header = request.headers.get("Authorization", "")
    store = current_app.extensions["sos"].store
    ctx = current_app.extensions["sos"].context()
    principal: Principal | None = None
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("use the header Authorization: Bearer <token>")
        with _session(store.read, unit) as s:
            principal = resolve_secret(s, ctx, secret.strip())
    elif session.get("user_id"):
        if request.method in UNSAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token", "")
            if not csrf_matches(sent):
                raise Forbidden("missing or wrong X-CSRF-Token header; reload the page")
        with _session(store.read, unit) as s:
            principal = principal_for_user_id(s, ctx, int(session["user_id"]))
    if (
        principal is not None
        and principal.is_user
        and needs_activity_record(principal.last_seen_at, ctx)
    ):
        with _session(store.write, unit if unit_writes else None) as s:
            record_activity(s, ctx, principal)
    if "anyone" in callers:
        return principal
    if principal is None:
        raise Unauthorized("sign in: send Authorization: Bearer <token>")
    allowed = set(callers)
    if "admin" in allowed and principal.is_admin:
        return principal
    if principal.kind in allowed:
        return principal
    raise Forbidden(_forbidden_message(principal, allowed))


def _session(
    open_one: Callable[[], AbstractContextManager[Session]], unit: Session | None
) -> AbstractContextManager[Session]:
    return open_one() if unit is None else nullcontext(unit)


def _forbidden_message(principal: Principal, allowed: set[str]) -> str:
    if allowed == {"admin"}:
        return "this call is for admins only"
    if allowed == {"deployment"}:
        return "this call needs a deployment key (sosd_...)"
    if principal.kind == "deployment":
        return "a deployment key can only open and join cases"
    return "these credentials cannot make this call"


def operation(
    bp: Blueprint,
    rule: str,
    method: str = "GET",
    *,
    summary: str,
    callers: tuple[CallerKind, ...],
    responses: dict[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    headers: dict[str, str] | None = None,
    tags: tuple[str, ...] = (),
    unit_of_work: bool = False,
    read_unit: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view: it gets ``principal`` and, when declared, ``body`` and ``query``.

    With ``unit_of_work`` the whole call, authentication included, is one write transaction
    (``Store.write``), which the view gets as ``unit`` and which commits when it returns: a
    hot write path then pays for one session, not a read and a write. With ``read_unit`` the
    authentication and the view's reads share one read session (``Store.read``), likewise
    given as ``unit``; a view that then waits closes it first, which hands its connection back.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(
            method=method,
            rule=bp.url_prefix + rule if bp.url_prefix else rule,
            endpoint=f"{bp.name}.{func.__name__}",
            summary=summary,
            callers=callers,
            responses=responses,
            body=body,
            query=query,
            headers=headers or {},
            tags=tags,
        )

        def arguments() -> dict[str, Any]:
            kwargs: dict[str, Any] = {}
            if query is not None:
                kwargs["query"] = parse_query(query)
            elif request.args:
                raise BadRequest(f"this call takes no query parameters: {', '.join(request.args)}")
            if body is not None:
                kwargs["body"] = parse_body(body)
            return kwargs

        def call(path_args: dict[str, Any]) -> Response:
            principal = authenticate(callers)
            g.principal = principal
            return render(func(principal, **path_args, **arguments()))

        def call_in_unit(path_args: dict[str, Any], writes: bool) -> Response:
            # A write unit's transaction is the only writer on SQLite: validation and rendering
            # happen outside it. A bad request still answers 401/403 before 400, as elsewhere.
            try:
                parsed: dict[str, Any] | SOSError = arguments()
            except SOSError as exc:
                parsed = exc
            store = current_app.extensions["sos"].store
            with (store.write if writes else store.read)() as unit:
                principal = authenticate(callers, unit, unit_writes=writes)
                g.principal = principal
                if isinstance(parsed, SOSError):
                    raise parsed
                result = func(principal, **path_args, **parsed, unit=unit)
            return render(result)

        @functools.wraps(func)
        def view(**path_args: Any) -> Response:
            if unit_of_work or read_unit:
                return call_in_unit(path_args, writes=unit_of_work)
            return call(path_args)

        # Every API call counts against its bearer token's limit; views may declare more.
        rate_limited(CALLS_PER_TOKEN)(view)
        bp.add_url_rule(rule, endpoint=func.__name__, view_func=view, methods=[method])
        OPERATIONS.append(op)
        return view

    return decorator


def render(result: Any) -> Response:
    status, headers = 200, {}
    if isinstance(result, tuple):
        result, status, *rest = result
        headers = rest[0] if rest else {}
    if result is None:
        return Response(status=status, headers=headers)
    if isinstance(result, BaseModel):
        payload = result.model_dump_json()
    else:
        raise TypeError(f"views return pydantic models, not {type(result).__name__}")
    return Response(payload, status=status, headers=headers, mimetype="application/json")


def error_response(error: SOSError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    return Response(
        current_app.json.dumps({"error": body}),
        status=error.status,
        headers=error.response_headers(),
        mimetype="application/json",
    )
