"""gunicorn entry point: ``gunicorn -c python:atelier.api.gunicorn_conf atelier.api.wsgi:app``."""

from .app import create_app

app = create_app()
