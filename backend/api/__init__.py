"""The REST API under ``/api/v1``."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Importing the view modules registers their operations on ``bp``.
from backend.api import accounts, agent, cases, deployments, feed, openapi  # noqa: E402, F401
