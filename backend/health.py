"""Liveness and readiness for load balancers and monitoring."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    try:
        current_app.extensions["sos"].store.ping()
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return Response(
            '{"status": "error", "database": "unreachable"}',
            status=503,
            mimetype="application/json",
        )
    return Response('{"status": "ok", "database": "ok"}', mimetype="application/json")
