"""Admission control (issue 12, point 4): jobs too large for a worker are refused at submit
with 422 ``too-large`` and nothing enqueued; ``*_every`` floors; default run-time limits;
the record's sample cap and the paginated samples route.

Fast tier: the app in this process (``inprocess_api``), a real Redis, no worker, no
TensorFlow (the estimates are arithmetic; ``test_estimates_real`` checks them against it).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from atelier.api.admission import MAX_PERIODIC_WRITES, smallest_period
from atelier.shared.datasets import DatasetInfo, DatasetStore
from atelier.shared.estimates import JobFacts
from atelier.shared.kinds.dcgan import DcganTrainParams, estimate_dcgan_train
from atelier.shared.kinds.textgen import TextgenTrainParams, estimate_textgen_train
from atelier.shared.settings import Settings
from tests.conftest import InProcessApi
from tests.test_api_errors import Api, assert_nothing_enqueued, assert_problem, post_job

GIB = 1 << 30
TEXTGEN_MAXIMA = {
    "num_layers": 24,
    "hidden_dim": 2048,
    "num_heads": 32,
    "sequence_length": 2048,
    "batch_size": 512,
}
DCGAN_MAXIMA = {"base_filters": 256, "latent_dim": 512, "batch_size": 1024}


@pytest.fixture()
def api(inprocess_api: InProcessApi) -> Api:
    key = inprocess_api.raw_key("erin")
    return inprocess_api, {"Authorization": f"Bearer {key}"}


def rgb64_dataset(app: InProcessApi) -> str:
    """An uploaded 64x64 RGB dataset's record (the largest images a dcgan trains on)."""
    info = DatasetInfo(
        name="ds_rgb64",
        description="test",
        modality="image",
        image_size=64,
        channels=3,
        count=2000,
        builtin=False,
        owner="erin",
        data_key="owners/erin/datasets/ds_rgb64/images.npz",
        created_at=time.time(),
    )
    DatasetStore(app.redis).save(info)
    return info.name


def train(kind: str, **params: Any) -> dict[str, Any]:
    return {"json": {"type": "train", "kind": kind, "params": params}}


def test_textgen_at_its_maxima_is_refused_with_the_estimate(api: Api) -> None:
    body = assert_problem(post_job(api, **train("textgen", **TEXTGEN_MAXIMA)), 422, "too-large")
    estimate, limits = body["estimate"], body["limits"]
    assert 1.2e9 < estimate["parameters"] < 1.25e9  # ~1.2 B, as the issue measured
    assert estimate["memory_bytes"] > 1000 * GIB  # attention activations: terabytes
    assert limits["memory_bytes"] == api[0].settings.worker_memory_bytes
    assert "memory_bytes" in body["exceeded"] and "GiB" in body["detail"]
    assert_nothing_enqueued(api[0])


def test_dcgan_at_its_maxima_is_refused(api: Api) -> None:
    dataset = rgb64_dataset(api[0])
    response = post_job(api, **train("dcgan", dataset=dataset, **DCGAN_MAXIMA))
    body = assert_problem(response, 422, "too-large")
    # ~254 M weights: a 2.8 GiB checkpoint (weights and Adam's two moments), as the issue saw.
    assert 2.7 * GIB < body["estimate"]["checkpoint_bytes"] < 2.9 * GIB
    assert body["estimate"]["memory_bytes"] > body["limits"]["memory_bytes"]
    assert_nothing_enqueued(api[0])


def test_defaults_are_accepted_with_room_to_spare(api: Api) -> None:
    assert post_job(api, **train("dcgan")).status_code == 202
    assert post_job(api, **train("textgen")).status_code == 202
    digits = estimate_dcgan_train(
        DcganTrainParams.model_validate({}), JobFacts(28, 1, 1797, classes=10)
    )
    fables = estimate_textgen_train(
        TextgenTrainParams.model_validate({}), JobFacts(dataset_count=300_000)
    )
    for found in (digits, fables):
        assert found.memory_bytes < 2.5 * GIB and found.output_bytes < 64 << 20


def test_list_params_are_taken_as_json_sends_them_and_types_stay_strict(api: Api) -> None:
    """dcgan's `augment` is a JSON array (a tuple in the params model): accepted as the
    document says. Strictness holds for the rest: a string is not a number, true not 1."""
    accepted = post_job(api, **train("dcgan", augment=["translation", "cutout"]))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["params"]["augment"] == ["translation", "cutout"]
    for params, field in (
        ({"augment": ["rotate"]}, "params.augment.0"),
        ({"augment": "translation"}, "params.augment"),
        ({"steps": "5"}, "params.steps"),
        ({"steps": True}, "params.steps"),
    ):
        body = assert_problem(post_job(api, **train("dcgan", **params)), 422, "validation-failed")
        assert field in body["detail"], (params, body["detail"])


def test_the_limit_is_a_setting(redis_base_url: str, tmp_path: Any) -> None:
    from tests.conftest import inprocess_api_for, inprocess_settings

    settings = inprocess_settings(redis_base_url, tmp_path).replace(worker_memory_bytes=GIB)
    for app in inprocess_api_for(settings):
        response = app.http.post(
            app.url("/v1/jobs"),
            headers={"Authorization": f"Bearer {app.raw_key('erin')}"},
            json={"type": "train", "kind": "dcgan"},
            timeout=10,
        )
        assert_problem(response, 422, "too-large")


def test_output_volume_has_its_own_limit(redis_base_url: str, tmp_path: Any) -> None:
    from tests.conftest import inprocess_api_for, inprocess_settings

    settings = inprocess_settings(redis_base_url, tmp_path).replace(max_job_output_bytes=1 << 20)
    for app in inprocess_api_for(settings):
        response = app.http.post(
            app.url("/v1/jobs"),
            headers={"Authorization": f"Bearer {app.raw_key('erin')}"},
            json={"type": "train", "kind": "textgen"},
            timeout=10,
        )
        body = assert_problem(response, 422, "too-large")
        assert body["exceeded"] == ["output_bytes"]


def test_gpu_workers_are_checked_against_the_gpu_memory(
    redis_base_url: str, tmp_path: Any
) -> None:
    """With ``worker_gpu_memory_bytes`` set, the device estimate meets the GPU's memory and
    host RAM is no longer the limit: a job too big for a 1 GiB host fits a 16 GiB GPU, and
    one too big for a 4 GiB GPU is refused naming the GPU."""
    from atelier.api.admission import check_fits
    from atelier.shared.errors import TooLarge
    from atelier.shared.estimates import GPU_RUNTIME_BYTES, device_memory
    from tests.conftest import inprocess_api_for, inprocess_settings

    settings = inprocess_settings(redis_base_url, tmp_path).replace(
        worker_memory_bytes=GIB, worker_gpu_memory_bytes=16 * GIB
    )
    wide = {"hidden_dim": 1024, "num_layers": 8, "batch_size": 32}
    found = estimate_textgen_train(
        TextgenTrainParams.model_validate(wide), JobFacts(dataset_count=300_000)
    )
    assert found.memory_bytes > GIB and 4 * GIB < device_memory(found) < 16 * GIB
    assert device_memory(found) > GPU_RUNTIME_BYTES
    for app in inprocess_api_for(settings):
        key = {"Authorization": f"Bearer {app.raw_key('erin')}"}
        fits = app.http.post(app.url("/v1/jobs"), headers=key, **train("textgen", **wide))
        assert fits.status_code == 202, fits.text
        small_gpu = settings.replace(worker_gpu_memory_bytes=4 * GIB)
        with pytest.raises(TooLarge) as refused:
            check_fits(found, small_gpu)
        assert refused.value.extensions["exceeded"] == ["gpu_memory_bytes"]
        assert refused.value.extensions["limits"]["gpu_memory_bytes"] == 4 * GIB
        assert "gpu memory" in str(refused.value)


@pytest.mark.parametrize("field", ["checkpoint_every", "sample_every"])
def test_periodic_writes_have_a_floor(api: Api, field: str) -> None:
    params = {"checkpoint_every": 1000, "sample_every": 1000, field: 1}
    response = post_job(api, **train("dcgan", steps=1_000_000, **params))
    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"] == [
        {
            "field": f"params.{field}",
            "message": f"at least 1000 for steps=1000000 (at most {MAX_PERIODIC_WRITES} per job)",
        }
    ]
    assert f"params.{field}" in body["detail"]
    assert_nothing_enqueued(api[0])


def test_the_floor_itself_and_short_runs_are_accepted(api: Api) -> None:
    assert smallest_period(1_000_000) == 1000 and smallest_period(1000) == 1
    assert smallest_period(1001) == 2
    ok = train("dcgan", steps=1_000_000, checkpoint_every=1000, sample_every=1000)
    assert post_job(api, **ok).status_code == 202
    assert post_job(api, **train("dcgan", steps=50, sample_every=1)).status_code == 202


def test_default_max_run_seconds_per_job_type(api: Api) -> None:
    app = api[0]
    settings: Settings = app.settings
    job = post_job(api, **train("dcgan")).json()
    assert job["max_run_seconds"] == settings.train_max_run_seconds == 3 * 86400
    own = post_job(api, json={"type": "train", "kind": "dcgan", "max_run_seconds": 60}).json()
    assert own["max_run_seconds"] == 60
    from tests.test_ownership import trained_model

    model_id = trained_model(app, "erin", "job_x")
    generate = {"type": "generate", "kind": "dcgan", "params": {"model_id": model_id}}
    job = post_job(api, json=generate).json()
    assert job["max_run_seconds"] == settings.generate_max_run_seconds == 600
