"""The worker's Celery app: ``celery -A workers.celery_app worker`` (``atelier worker``
builds that command). Importing this module must stay cheap and TensorFlow-free."""

from __future__ import annotations

import logging

from shared.queue import make_celery
from shared.settings import Settings
from workers.tasks import register_tasks

settings = Settings.from_env()
logging.basicConfig(
    level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
app = make_celery(settings)
register_tasks(app, settings)
