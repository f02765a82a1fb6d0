"""The rules of the settings that a field's type cannot say, checked when a ``Settings`` is
built (``shared.settings``); each message names its variable."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .redis_client import is_sentinel_url
from .settings_env import check_redis_url, is_host_port, must_be

if TYPE_CHECKING:
    from .settings import Settings

GPUS_PATTERN = re.compile(r"auto|none|\d+(\s*,\s*\d+)*")

PRESIGN_MAX_SECONDS = 7 * 86_400
"""SigV4's own ceiling for a presigned URL's lifetime."""

MAX_CLASSES = 10_000
"""Most classes a labelled upload may be allowed: generation's ``labels`` go up to 9,999."""


def check_rules(settings: Settings) -> None:
    """Raise ValueError naming the first variable that breaks a rule."""
    _check_services(settings)
    if settings.api_concurrent_uploads < 1:
        raise ValueError(
            must_be("api_concurrent_uploads", "1 or more", settings.api_concurrent_uploads)
        )
    if not 2 <= settings.max_upload_classes <= MAX_CLASSES:
        raise ValueError(
            must_be("max_upload_classes", f"2 to {MAX_CLASSES}", settings.max_upload_classes)
        )
    if settings.min_class_images < 1:
        raise ValueError(must_be("min_class_images", "1 or more", settings.min_class_images))
    if not GPUS_PATTERN.fullmatch(settings.gpus.strip()):
        raise ValueError(must_be("gpus", "auto, none or a comma list of indices", settings.gpus))
    if not 1 <= settings.s3_presign_expires_seconds <= PRESIGN_MAX_SECONDS:
        raise ValueError(
            must_be(
                "s3_presign_expires_seconds",
                f"1 to {PRESIGN_MAX_SECONDS} (7 days)",
                settings.s3_presign_expires_seconds,
            )
        )


def _check_services(settings: Settings) -> None:
    check_redis_url("redis_url", settings.redis_url)
    if settings.api_metrics_bind and not is_host_port(settings.api_metrics_bind):
        raise ValueError(
            "ATELIER_API_METRICS_BIND must be host:port (e.g. 0.0.0.0:9100); "
            f"got {settings.api_metrics_bind!r}"
        )
    if is_sentinel_url(settings.broker_url):  # other brokers (amqp://…) are kombu's to judge
        check_redis_url("broker_url", settings.broker_url)
    if settings.redis_min_replicas < 0:
        raise ValueError(must_be("redis_min_replicas", "0 or more", settings.redis_min_replicas))
