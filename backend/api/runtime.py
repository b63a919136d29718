"""Access to the app's runtime (store, clock, rules) from views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from backend.app import Runtime


def runtime() -> Runtime:
    return current_app.extensions["sos"]
