"""The round-trip baseline: the same generation work as a minimal `dcgan` generate job,
as a plain Celery task with a Redis result backend, and nothing else (no HTTP, no job
record, no lease, no storage). Started by `bench.roundtrip` as

    celery -A bench.raw_celery worker --queues bench-raw --pool prefork --concurrency 1

with the environment of an Atelier worker, so it shares the Redis and the Celery
settings (`shared.queue.make_celery`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from atelier.shared.queue import make_celery
from atelier.shared.settings import Settings

QUEUE = "bench-raw"
settings = Settings.from_env()
app = make_celery(settings)
app.conf.update(result_backend=settings.redis_url, task_ignore_result=False)

_generators: dict[str, Any] = {}


@app.task(name="bench.raw_generate")
def raw_generate(weights_path: str, config_json: str, n: int, seed: int) -> str:
    from atelier.shared.images import encode_png, grid, to_uint8
    from atelier.workers.checkpoints import restore_checkpoint
    from atelier.workers.kinds.dcgan.inference import CompiledGenerator
    from atelier.workers.kinds.dcgan.model import DcganConfig, build_generator

    config = DcganConfig(**json.loads(config_json))
    if weights_path not in _generators:  # the same per-process model cache a worker keeps
        generator = build_generator(config)
        with open(weights_path, "rb") as weights:
            restore_checkpoint({"g": generator.weights}, weights.read())
        _generators[weights_path] = CompiledGenerator(generator, config)
    z = np.random.default_rng(seed).standard_normal((n, config.latent_dim)).astype(np.float32)
    pixels = to_uint8(_generators[weights_path](z))
    return base64.b64encode(encode_png(grid(pixels))).decode()
