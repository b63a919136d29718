"""WSGI entry point for gunicorn and other servers: ``gunicorn backend.wsgi:app``.

Builds the app from ``SOS_*`` settings and starts the background work (expiry sweep,
notification delivery, wake-ups from other processes), as ``sos-backend serve`` does. Run
``sos-backend migrate`` once before starting the workers.
"""

from __future__ import annotations

from backend.app import create_app
from backend.serving import start_background

app = create_app()
start_background(app.extensions["sos"])
