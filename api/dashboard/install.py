"""Adds the dashboard to an app: its pages at ``/`` and ``GET /v1/system``."""

from __future__ import annotations

from flask import Flask


def install_dashboard(app: Flask) -> None:
    """Call after the ``v1`` views are imported and before ``v1`` is registered: importing
    ``system`` adds its route to ``v1`` (last, so the document lists it after the others)."""
    from . import compare, pages, sweeps, system  # noqa: F401
    from .blueprint import dashboard

    app.register_blueprint(dashboard)
