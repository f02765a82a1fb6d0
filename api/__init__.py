"""Atelier's HTTP API: a Flask app factory; run it under gunicorn (``atelier api``)."""

from .app import create_app

__all__ = ["create_app"]
