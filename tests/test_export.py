"""Taking a model away (issue 25, point 4): ``GET /v1/models/{id}/export``.

Fast tier: the app in this process, a real Redis, no worker, no TensorFlow. The first
request records the export as pending and sends one message (however many ask at once);
a ready export is served, a failed one answered and retried, a stale pending one sent
again; refusals (an unknown format, someone else's model, a deleted one) enqueue nothing;
deleting a model deletes its exports; the client and the CLI wait for and save the bundle.
The slow half, on a stack with real workers, is ``tests/test_export_stack.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from atelier.cli.main import main as cli_main
from atelier.shared.exports import PENDING_SECONDS, ExportFormat, ExportState, ExportStore
from atelier.shared.kinds import KINDS
from atelier.shared.models import ModelRecord
from atelier.shared.queue import EXPORT_MODEL_TASK
from atelier.shared.redis_keys import KEYS
from atelier.shared.storage import ObjectLayout, make_object_store
from tests.conftest import InProcessApi, inprocess_api_for, inprocess_settings, s3_settings
from tests.test_api_errors import Api, assert_problem
from tests.test_continue import record

BUNDLE = b"PK\x05\x06" + bytes(18)  # an empty zip: what the worker would have stored


@pytest.fixture()
def api(inprocess_api: InProcessApi) -> Api:
    key = inprocess_api.raw_key("erin")
    return inprocess_api, {"Authorization": f"Bearer {key}"}


def export(api: Api, ref: str, query: str = "format=keras") -> requests.Response:
    app, headers = api
    return app.http.get(app.url(f"/v1/models/{ref}/export?{query}"), headers=headers, timeout=10)


def export_messages(app: InProcessApi) -> list[list[Any]]:
    """The args of every export message waiting on the generate queue (kombu's JSON)."""
    raw = app.admin.lrange(app.settings.generate_queue, 0, -1)
    messages = [json.loads(item) for item in raw]
    assert all(m["headers"]["task"] == EXPORT_MODEL_TASK for m in messages), messages
    return [json.loads(base64.b64decode(m["body"]))[0] for m in messages]


def make_ready(app: InProcessApi, model: ModelRecord, fmt: ExportFormat) -> str:
    """The export as the worker leaves it: stored, and recorded ready."""
    exports = ExportStore(app.redis)
    state, _ = exports.request(model.id, fmt)
    key = ObjectLayout.model_export(model.owner, model.id, fmt.value)
    size = make_object_store(app.settings).put_bytes(key, BUNDLE, "application/zip")
    ready = state.model_copy(update={"status": "ready", "key": key, "size_bytes": size})
    assert exports.finish(model.id, fmt, ready)
    return key


def test_an_unknown_format_is_refused_naming_the_formats(api: Api) -> None:
    model = record(api[0])
    for query in ("format=onnx", "format=keras&format=savedmodel", "format="):
        problem = assert_problem(export(api, model.id, query), 422, "validation-failed")
        assert [e["field"] for e in problem["errors"]] == ["format"], problem
        assert "'keras'" in problem["detail"] and "'savedmodel'" in problem["detail"], problem
    assert export_messages(api[0]) == []
    assert ExportStore(api[0].redis).get(model.id, ExportFormat.KERAS) is None


def test_a_model_of_a_kind_without_an_export_is_refused_up_front(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plug-in kind that makes no export bundles (the test's toy, or a kind this API
    does not know) is a 422 naming the kinds that do, not a worker's failure later."""
    toy = dataclasses.replace(KINDS["dcgan"], name="toy", exportable=False)
    monkeypatch.setitem(KINDS, "toy", toy)
    for kind in ("toy", "retired"):
        model = record(api[0], kind=kind)
        problem = assert_problem(export(api, model.id), 422, "validation-failed")
        assert f"'{kind}' models cannot be exported" in problem["detail"], problem
        assert "dcgan, melody, textgen models can" in problem["detail"], problem
    assert export_messages(api[0]) == []


def test_someone_elses_or_a_deleted_model_is_not_found(api: Api) -> None:
    app, headers = api
    theirs = record(app, owner="finn", name="gan")
    gone = record(app)
    assert app.http.delete(app.url(f"/v1/models/{gone.id}"), headers=headers).status_code == 204
    for ref in (theirs.id, gone.id, "model_" + "0" * 32, "gan:latest", "gan:1"):
        problem = assert_problem(export(api, ref), 404, "not-found")
        assert ref in problem["detail"]
    assert export_messages(app) == []


def test_concurrent_first_requests_send_one_message(api: Api) -> None:
    """Eight at once, by name: each is told to come back; one message goes to a worker."""
    app = api[0]
    model = record(app, name="gan")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: export(api, "gan:latest"), range(8)))
    for answer in answers:
        assert answer.status_code == 202, answer.text
        assert answer.headers["Retry-After"] == "2"
        assert answer.headers["Location"] == "/v1/models/gan:latest/export?format=keras"
        body = answer.json()
        assert (body["model_id"], body["format"], body["status"]) == (model.id, "keras", "pending")
    assert export_messages(app) == [[model.id, "keras"]]
    # Asking again sends nothing more; another format is another export.
    assert export(api, model.id).status_code == 202
    assert export(api, model.id, "format=savedmodel").status_code == 202
    assert sorted(export_messages(app)) == [[model.id, "keras"], [model.id, "savedmodel"]]
    # The default format is keras.
    assert export(api, model.id, "").json()["format"] == "keras"
    assert len(export_messages(app)) == 2


def test_a_ready_export_is_served_as_a_zip(api: Api) -> None:
    model = record(api[0], name="gan")
    make_ready(api[0], model, ExportFormat.SAVEDMODEL)
    answer = export(api, "gan:1", "format=savedmodel")
    assert answer.status_code == 200, answer.text
    assert answer.content == BUNDLE
    assert answer.headers["Content-Type"] == "application/zip"
    assert answer.headers["Content-Disposition"] == "attachment; filename=gan-savedmodel.zip"
    assert export_messages(api[0]) == []


def test_a_failed_export_is_answered_once_then_made_again(api: Api) -> None:
    app = api[0]
    model = record(app)
    exports = ExportStore(app.redis)
    state, _ = exports.request(model.id, ExportFormat.KERAS)
    failed = state.model_copy(update={"status": "failed", "error": "no weights"})
    assert exports.finish(model.id, ExportFormat.KERAS, failed)
    problem = assert_problem(export(api, model.id), 500, "export-failed")
    assert "no weights" in problem["detail"] and "ask again" in problem["detail"]
    assert export(api, model.id).status_code == 202
    assert export_messages(app) == [[model.id, "keras"]]


def test_a_stale_pending_export_is_sent_again(api: Api) -> None:
    """Its message was lost with a worker: the next request after PENDING_SECONDS sends
    another; before that, none."""
    app = api[0]
    model = record(app)
    exports = ExportStore(app.redis)
    exports.request(model.id, ExportFormat.KERAS, now=time.time() - PENDING_SECONDS + 60)
    assert export(api, model.id).status_code == 202
    assert export_messages(app) == []
    app.admin.delete(app.settings.generate_queue)
    exports.forget(model.id, ExportFormat.KERAS)
    exports.request(model.id, ExportFormat.KERAS, now=time.time() - PENDING_SECONDS - 1)
    assert export(api, model.id).status_code == 202
    assert export_messages(app) == [[model.id, "keras"]]
    state = exports.get(model.id, ExportFormat.KERAS)
    assert state is not None and time.time() - state.requested_at < 60


@pytest.mark.slow  # imports TensorFlow (workers.export)
def test_a_worker_counts_an_export_it_could_not_make(api: Api) -> None:
    """``make_export`` with a kind that makes no bundles: the failure is recorded with its
    reason and counted in ``atelier_exports_total{outcome="failed"}``, once."""
    from prometheus_client import REGISTRY

    from atelier.shared.models import ModelStore
    from atelier.shared.settings import Settings
    from atelier.workers.export.job import make_export
    from atelier.workers.kinds.base import ModelKind

    class Unexportable(ModelKind):
        name = "dcgan"

        def train(self, params: Any, ctx: Any) -> Any:
            raise NotImplementedError

        def generate(self, model: Any, params: Any, ctx: Any) -> Any:
            raise NotImplementedError

    app = api[0]
    model = record(app)
    objects = make_object_store(app.settings)
    objects.put_bytes(model.weights_key, b"weights", "application/zip")
    exports = ExportStore(app.redis)
    exports.request(model.id, ExportFormat.KERAS)
    labels = {"kind": "dcgan", "format": "keras", "outcome": "failed"}
    before = REGISTRY.get_sample_value("atelier_exports_total", labels) or 0.0
    state = make_export(
        ModelStore(app.redis), exports, objects, lambda name: Unexportable(Settings()),
        model.id, ExportFormat.KERAS,
    )  # fmt: skip
    assert state is not None and state.status == "failed"
    assert state.error == "dcgan models cannot be exported"
    assert REGISTRY.get_sample_value("atelier_exports_total", labels) == before + 1


def test_deleting_a_model_deletes_its_exports(api: Api) -> None:
    app, headers = api
    model = record(app)
    store = make_object_store(app.settings)
    keys = [make_ready(app, model, fmt) for fmt in ExportFormat]
    assert all(store.exists(key) for key in keys)
    assert app.http.delete(app.url(f"/v1/models/{model.id}"), headers=headers).status_code == 204
    assert not any(store.exists(key) for key in keys)
    assert not app.admin.exists(KEYS.model_exports(model.id))
    # A worker finishing an export of the deleted model records nothing.
    late = ExportState(status="ready", requested_at=time.time(), key=keys[0])
    assert not ExportStore(app.redis).finish(model.id, ExportFormat.KERAS, late)
    assert not app.admin.exists(KEYS.model_exports(model.id))


def test_client_and_cli_wait_for_the_export_and_save_it(
    inprocess_api: InProcessApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = inprocess_api.client()
    model = record(inprocess_api, owner="alice", name="gan")
    # The first request finds it pending; a "worker" makes it a second later.
    worker = threading.Timer(1.0, make_ready, (inprocess_api, model, ExportFormat.KERAS))
    worker.start()
    started = time.monotonic()
    path = client.export_model("gan:latest", "keras", tmp_path / "gan.zip", timeout=30)
    worker.join()
    assert path == tmp_path / "gan.zip" and path.read_bytes() == BUNDLE
    assert 1.0 < time.monotonic() - started < 10
    with pytest.raises(TimeoutError):
        client.export_model(model.id, "savedmodel", tmp_path / "sm.zip", timeout=1)
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(cli_main, ["export", "gan:1"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "gan-1-keras.zip").read_bytes() == BUNDLE
    assert "gan-1-keras.zip" in done.output
    refused = CliRunner().invoke(cli_main, ["export", "gan:1", "--format", "onnx"])
    assert refused.exit_code == 2 and "onnx" in refused.output
    missing = CliRunner().invoke(cli_main, ["export", "nothing:latest", "-o", "x.zip"])
    assert missing.exit_code == 1 and "404" in missing.output


@pytest.fixture()
def s3_api(redis_base_url: str, tmp_path: Path, s3_endpoint: str) -> Iterator[InProcessApi]:
    settings = inprocess_settings(redis_base_url, tmp_path, **s3_settings(s3_endpoint, "exports"))
    yield from inprocess_api_for(settings)


def test_an_export_on_s3_is_a_presigned_redirect(s3_api: InProcessApi, tmp_path: Path) -> None:
    """Never through API memory; the client follows it without its key; deleting the
    model deletes the object."""
    model = record(s3_api, owner="alice")
    key = make_ready(s3_api, model, ExportFormat.KERAS)
    headers = {"Authorization": f"Bearer {s3_api.raw_key()}"}
    answer = s3_api.http.get(
        s3_api.url(f"/v1/models/{model.id}/export"), headers=headers, allow_redirects=False
    )
    assert answer.status_code == 302 and "X-Amz-Signature" in answer.headers["Location"]
    fetched = requests.get(answer.headers["Location"], timeout=10)
    assert fetched.content == BUNDLE
    # A browser saves it under the model's name, not the object key's last part.
    saved_as = f'filename="{model.id}-keras.zip"'
    assert saved_as in fetched.headers.get("Content-Disposition", ""), fetched.headers
    client = s3_api.client()
    assert client.export_model(model.id, path=tmp_path / "m.zip").read_bytes() == BUNDLE
    client.delete_model(model.id)
    assert not make_object_store(s3_api.settings).exists(key)


def test_generate_py_encodes_and_decodes_as_the_tokenizers_library(tmp_path: Path) -> None:
    """The bundle's plain-Python byte-pair tokenizer (``generate.py`` without the
    ``tokenizers`` library) against the library, on the corpus and on text that tests the
    word split: accents, other scripts, digits, contractions, runs of spaces."""
    from atelier.workers.corpus import fables
    from atelier.workers.export.standalone import Tokenizer
    from atelier.workers.kinds.textgen.tokens import BytePairTokens

    text = fables()
    library = BytePairTokens.train(text, 600)
    (tmp_path / "tokenizer.json").write_text(library.to_config()["tokenizer"])
    plain = Tokenizer(tmp_path)
    samples = [
        text[:3000],
        "naïve café — 42½ _under_score\n\n  tabs\tend  ",
        "Ünïcödé ½ ² ⅷ 日本語 🙂 it's they'll DON'T",
        "a  b   c\n \n",
    ]
    for sample in samples:
        ids = plain.encode(sample)
        assert ids == library.encode(sample).tolist(), sample
        assert plain.decode(ids) == sample
    assert Tokenizer(tmp_path / "none").encode("é!") == [195, 169, 33]  # bytes: no file
    assert Tokenizer(tmp_path / "none").decode([195, 169, 33]) == "é!"
