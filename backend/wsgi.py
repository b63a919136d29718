"""WSGI entry point for gunicorn and other servers: ``gunicorn backend.wsgi:app``.

Builds the app from ``SOS_*`` settings and starts the background sweep and notification
delivery, as ``sos-backend serve`` does. Run ``sos-backend migrate`` once before starting
the workers.
"""

from __future__ import annotations

from backend.app import create_app
from backend.delivery import start_dispatcher
from backend.sweeper import start_sweeper

app = create_app()
start_sweeper(app.extensions["sos"])
start_dispatcher(app.extensions["sos"])
