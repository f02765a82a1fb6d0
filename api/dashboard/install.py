"""Adds the dashboard to an app: its pages at ``/`` and ``GET /v1/system``."""

from __future__ import annotations

from flask import Flask

# Importing the modules attaches their routes (pages to the dashboard, system to /v1).
from atelier.api.dashboard import pages, system  # noqa: F401
from atelier.api.dashboard.blueprint import dashboard


def install_dashboard(app: Flask) -> None:
    """Call before the ``v1`` blueprint is registered (``system`` adds a route to it)."""
    app.register_blueprint(dashboard)
