"""The application factory."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from backend.clock import Clock
from backend.db import Store, make_engine, sqlite_file
from backend.errors import SOSError
from backend.feedcache import FeedCache
from backend.ratelimit import init_rate_limits
from backend.services.context import Context
from backend.settings import Settings
from backend.wakeups import ChangeSignal, PeerWakeups, PostgresListener

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the views share: settings, the database, the clock, the change signals and feed."""

    settings: Settings
    store: Store
    clock: Clock
    signal: ChangeSignal
    feed_cache: FeedCache
    # Moves when this process queues notifications: the dispatcher sends them at once.
    outbox: ChangeSignal = field(default_factory=ChangeSignal)
    listener: PostgresListener | None = None
    peers: PeerWakeups | None = None
    openapi_cache: str | None = None
    sweeper: threading.Thread | None = field(default=None, repr=False)

    def context(self) -> Context:
        return Context(
            now=self.clock.now(),
            case_ttl=self.settings.case_ttl,
            presence_timeout=self.settings.presence_timeout,
            fast_password_hash=self.settings.password_hash_fast,
        )

    def close(self, wait: float = 0.0) -> None:
        """Stop the background threads (waiting up to ``wait`` s for the listener's) and
        close the database connections."""
        if self.listener is not None:
            self.listener.stop(wait)
        if self.peers is not None:
            self.peers.close()
        self.store.engine.dispose()


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Flask:
    """Build the app from ``SOS_*`` settings (or the ones given, in tests)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
    app.config.update(
        SECRET_KEY=settings.resolve_secret_key(),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SESSION_COOKIE_NAME="sos_session",
        PERMANENT_SESSION_LIFETIME=12 * 3600,  # a working day; then log in again
        JSON_SORT_KEYS=False,
    )
    if not settings.database_url:
        settings.instance_path.mkdir(parents=True, exist_ok=True)
    store = Store(make_engine(settings.resolved_database_url))
    signal = ChangeSignal()
    store.after_commit.append(("events_added", signal.notify))
    runtime = Runtime(
        settings=settings,
        store=store,
        clock=clock or Clock(),
        signal=signal,
        feed_cache=FeedCache(store, signal),
    )
    store.after_commit.append(("notifications_added", runtime.outbox.notify))
    if store.is_postgres:
        runtime.listener = PostgresListener(settings.resolved_database_url, signal)
        runtime.listener.start()
    elif (database := sqlite_file(store.engine)) and PeerWakeups.supported():
        runtime.peers = PeerWakeups(database, signal)  # listens once serving (start_background)
        store.after_commit.append(("events_added", runtime.peers.notify))
    app.extensions["sos"] = runtime

    from backend import api, health

    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    try:
        from backend import console
    except ImportError:  # pragma: no cover - the console is optional in slim installs
        console = None
    if console is not None:
        app.register_blueprint(console.bp)
    _register_error_handlers(app)
    init_rate_limits(app, settings)  # after every blueprint: it wraps the views that declare limits
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    return app


def _wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.path == "/healthz"
        or (request.accept_mimetypes.best == "application/json")
    )


def _register_error_handlers(app: Flask) -> None:
    from backend.api.framework import error_response

    @app.errorhandler(SOSError)
    def _domain_error(error: SOSError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        if not _wants_json():
            return error
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(error.code or 500, "bad_request")
        messages = {
            404: "no such resource; see /api/v1/openapi.json for the API",
            405: f"{request.method} is not allowed here",
            413: f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes",
        }
        domain = SOSError(messages.get(error.code or 500, error.description or "bad request"))
        domain.status, domain.code = error.code or 500, code
        response = error_response(domain)
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.path)
        domain = SOSError("the server hit an unexpected error; it has been logged")
        domain.status, domain.code = 500, "internal_error"
        return error_response(domain)
