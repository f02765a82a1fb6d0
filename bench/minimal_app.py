"""The polling benchmark's baseline: the smallest Flask app that answers a job-status URL
with the same JSON document Atelier returned (read once from ``BENCH_STATUS_BODY``), served
by gunicorn with Atelier's own configuration. No auth, no Redis, no validation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flask import Flask

app = Flask(__name__)
_STATUS: dict[str, Any] = json.loads(Path(os.environ["BENCH_STATUS_BODY"]).read_text())


@app.get("/v1/jobs/<job_id>")
def job_status(job_id: str) -> dict[str, Any]:
    return _STATUS  # Flask serialises it, as a JSON route does
