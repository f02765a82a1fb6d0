"""The polling benchmark's baseline: the smallest Flask app that answers a job-status URL
with the same JSON document Atelier returned for that job (read once from the
``{job_id}.json`` files in ``BENCH_STATUS_DIR``), served by gunicorn with Atelier's own
configuration. No auth, no Redis, no validation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flask import Flask

app = Flask(__name__)
_STATUS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text())
    for path in Path(os.environ["BENCH_STATUS_DIR"]).glob("*.json")
}


@app.get("/v1/jobs/<job_id>")
def job_status(job_id: str) -> dict[str, Any]:
    return _STATUS[job_id]  # Flask serialises it, as a JSON route does
