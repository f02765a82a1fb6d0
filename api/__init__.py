"""Atelier's HTTP API: a Flask app factory; run it under gunicorn (``atelier api``)."""

from atelier.api.app import create_app

__all__ = ["create_app"]
