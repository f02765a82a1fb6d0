"""Labelled uploads (issue 25, point 5): a zip with a folder per class, or an .npz with a
``labels`` array, becomes a labelled dataset (its classes, names and counts shown by
``GET /v1/datasets/{id}``, its labels stored beside its images); a layout or labels that
cannot be read as classes are refused with a problem+json 4xx naming what is wrong, and
nothing is stored; a conditional job on an unlabelled dataset, class names an
unconditional or unnamed model cannot draw, and a continuation across class counts are
422s at submit.

Fast tier: the app in this process, a real Redis, no worker, no TensorFlow. The upload
goes through the real HTTP API. (A labelled upload trained and drawn from, end to end, is
in ``test_datasets``.)"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from atelier.cli.main import main as cli_main
from atelier.shared.models import ModelRecord, ModelStore
from tests.conftest import UPLOAD_LIMITS, InProcessApi
from tests.payloads import png, zip_of
from tests.test_api_errors import Api, assert_problem, post_job
from tests.test_dashboard import _sign_in

GAN = {"image_size": 28, "channels": 1, "latent_dim": 8, "base_filters": 4}


def folders(**counts: int) -> dict[str, bytes]:
    """``counts`` images (8x8 PNGs) in a folder per class name."""
    return {
        f"{name}/{i:03d}.png": png((8, 8), seed=i) for name, n in counts.items() for i in range(n)
    }


def npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


IMAGES = np.zeros((30, 8, 8), np.uint8)
THIRDS = np.arange(30) % 3


def upload(api: InProcessApi, owner: str, filename: str, data: bytes) -> requests.Response:
    return api.http.post(
        api.url("/v1/datasets"),
        headers={"Authorization": f"Bearer {api.raw_key(owner)}"},
        files={"file": (filename, data)},
        timeout=60,
    )


def stored_arrays(api: InProcessApi, owner: str, name: str) -> dict[str, np.ndarray]:
    """The dataset's stored ``images.npz``, as a training job reads it."""
    path = api.settings.local_storage_dir / "owners" / owner / "datasets" / name / "images.npz"
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


# --- labelled uploads -------------------------------------------------------------------------
def test_a_zip_with_a_folder_per_class_is_labelled(inprocess_api: InProcessApi) -> None:
    """The wrapper folder zipping a folder makes is looked through; a README and macOS's
    resource forks are no classes; classes are numbered by name."""
    entries = {f"pets/{k}": v for k, v in folders(dogs=12, cats=10, birds=11).items()}
    junk = {"pets/README.md": b"my pets", "__MACOSX/pets/._x.png": b"junk", "pets/.DS_Store": b""}
    answer = upload(inprocess_api, "uma", "pets.zip", zip_of({**entries, **junk}))
    assert answer.status_code == 201, answer.text
    dataset = answer.json()
    shown = inprocess_api.client("uma").dataset(dataset["name"])
    for body in (dataset, shown):
        assert body["count"] == 33 and body["classes"] == 3
        assert body["class_names"] == ["birds", "cats", "dogs"]
        assert body["class_counts"] == [11, 10, 12]
    arrays = stored_arrays(inprocess_api, "uma", dataset["name"])
    assert arrays["images"].shape == (33, 28, 28, 1)
    assert np.bincount(arrays["labels"]).tolist() == [11, 10, 12]
    assert arrays["class_names"].tolist() == ["birds", "cats", "dogs"]


def test_numbered_folders_are_classes_in_number_order(inprocess_api: InProcessApi) -> None:
    counts = {str(digit): 10 + digit for digit in range(11)}
    answer = upload(inprocess_api, "uma", "digits.zip", zip_of(folders(**counts)))
    assert answer.status_code == 201, answer.text
    assert answer.json()["class_names"] == [str(d) for d in range(11)]
    assert answer.json()["class_counts"] == [10 + d for d in range(11)]


@pytest.mark.parametrize(
    ("labels", "names", "counts"),
    [
        (THIRDS, ["0", "1", "2"], [10, 10, 10]),
        (THIRDS.astype(np.uint8), ["0", "1", "2"], [10, 10, 10]),
        (np.array(["zebra", "ant", "moth"] * 10), ["ant", "moth", "zebra"], [10, 10, 10]),
        (np.array(["chat 🐱", "Hund"] * 15), ["Hund", "chat 🐱"], [15, 15]),
    ],
    ids=["integers", "uint8", "names", "unicode-names"],
)
def test_an_npz_with_labels_is_labelled(
    inprocess_api: InProcessApi, labels: np.ndarray, names: list[str], counts: list[int]
) -> None:
    answer = upload(inprocess_api, "uma", "mine.npz", npz(images=IMAGES, labels=labels))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["classes"], body["class_names"], body["class_counts"]) == (
        len(names),
        names,
        counts,
    )
    arrays = stored_arrays(inprocess_api, "uma", body["name"])
    assert [names[i] for i in arrays["labels"][:2]] == [str(v) for v in labels[:2]]


def test_unlabelled_layouts_stay_unlabelled(inprocess_api: InProcessApi) -> None:
    """Images at the top, in one folder, or an .npz without labels: as before."""
    flat = {f"{i}.png": png((8, 8), seed=i) for i in range(12)}
    for filename, data in (
        ("flat.zip", zip_of(flat)),
        ("wrapped.zip", zip_of({f"photos/{k}": v for k, v in flat.items()})),
        ("plain.npz", npz(images=IMAGES)),
    ):
        answer = upload(inprocess_api, "uma", filename, data)
        assert answer.status_code == 201, answer.text
        assert (answer.json()["classes"], answer.json()["class_names"]) == (0, [])
        assert "labels" not in stored_arrays(inprocess_api, "uma", answer.json()["name"])


# --- refused uploads --------------------------------------------------------------------------
def _bomb_in_a_class() -> bytes:
    return zip_of({**folders(cats=10), "dogs/0.png": b"\0" * (UPLOAD_LIMITS["uncompressed"] + 1)})


REFUSED: dict[str, tuple[Callable[[], tuple[str, bytes]], int, str]] = {
    "loose files beside folders": (
        lambda: ("m.zip", zip_of({**folders(cats=10, dogs=10), "x.png": png((8, 8))})),
        422,
        "at its top level ('x.png') beside class folders",
    ),
    "nested folders": (
        lambda: ("n.zip", zip_of({**folders(cats=10), **folders(**{"dogs/pups": 10})})),
        422,
        "'dogs/pups/000.png' is in a folder inside a folder",
    ),
    "an empty class folder": (
        lambda: ("e.zip", zip_of({**folders(cats=10, dogs=10), "birds/": b""})),
        422,
        "'birds' hold no images",
    ),
    "a class folder without images": (
        lambda: ("t.zip", zip_of({**folders(cats=10, dogs=10), "birds/notes.txt": b"x"})),
        422,
        "'birds' hold no images",
    ),
    "a class with too few images": (
        lambda: ("f.zip", zip_of(folders(cats=10, dogs=3))),
        422,
        "fewer than 10 images (ATELIER_MIN_CLASS_IMAGES): 'dogs': 3",
    ),
    "one class": (
        lambda: ("o.zip", zip_of({f"data/{k}": v for k, v in folders(cats=12).items()})),
        422,
        "one class",
    ),
    "path traversal in a class": (
        lambda: ("p.zip", zip_of({**folders(cats=10), "../dogs/1.png": png((8, 8))})),
        422,
        "outside the archive",
    ),
    "a zip bomb in a class": (lambda: ("b.zip", _bomb_in_a_class()), 413, "zip bomb"),
    "a right-to-left override": (
        lambda: ("r.zip", zip_of(folders(**{"cat\u202egnp.exe": 10, "dogs": 10}))),
        422,
        "control or invisible characters (U+202E)",
    ),
    "a very long class name": (
        lambda: ("l.zip", zip_of(folders(**{"c" * 200: 10, "dogs": 10}))),
        422,
        "a class name may have at most 64",
    ),
    "names equal once normalised": (
        lambda: ("u.zip", zip_of(folders(**{"caf\u00e9": 10, "cafe\u0301": 10}))),
        422,
        "the same name once normalised",
    ),
    "a name with spaces around it": (
        lambda: ("s.npz", npz(images=IMAGES, labels=np.array([" cat", "dog"] * 15))),
        422,
        "starts or ends with spaces",
    ),
    "labels not one per image": (
        lambda: ("c.npz", npz(images=IMAGES, labels=THIRDS[:29])),
        422,
        "send one label per image: (30,)",
    ),
    "labels of the wrong shape": (
        lambda: ("c.npz", npz(images=IMAGES, labels=THIRDS.reshape(30, 1))),
        422,
        "send one label per image",
    ),
    "negative labels": (
        lambda: ("n.npz", npz(images=IMAGES, labels=THIRDS - 1)),
        422,
        "include -1: classes are numbered from 0",
    ),
    "float labels": (
        lambda: ("f.npz", npz(images=IMAGES, labels=THIRDS.astype(float))),
        422,
        "labels are float64; save whole numbers as integers",
    ),
    "boolean labels": (
        lambda: ("b.npz", npz(images=IMAGES, labels=THIRDS == 0)),
        422,
        "not booleans",
    ),
    "object labels": (
        lambda: ("o.npz", npz(images=IMAGES, labels=np.array(["a", 1] * 15, dtype=object))),
        422,
        "need pickle, which is refused",
    ),
    "byte-string labels": (
        lambda: ("y.npz", npz(images=IMAGES, labels=np.array([b"a", b"b", b"c"] * 10))),
        422,
        "save names as text",
    ),
    "labels with a missing class": (
        lambda: ("g.npz", npz(images=IMAGES, labels=THIRDS * 2)),
        422,
        "'1': 0, '3': 0",
    ),
    "labels past the class limit": (
        lambda: ("x.npz", npz(images=IMAGES, labels=THIRDS * 100)),
        422,
        "at most 100 classes",
    ),
    "over-long string labels": (
        lambda: ("w.npz", npz(images=IMAGES, labels=np.array(["x" * 100, "y", "z"] * 10))),
        422,
        "strings of up to 100 characters",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_labelled_upload_is_refused_and_nothing_is_stored(
    inprocess_api: InProcessApi, case: str
) -> None:
    make, status, mentions = REFUSED[case]
    filename, data = make()
    answer = upload(inprocess_api, "mallory", filename, data)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert mentions in answer.json()["detail"], answer.json()
    assert inprocess_api.redis.zcard("atelier:owner:mallory:datasets") == 0
    stored = inprocess_api.settings.local_storage_dir / "owners" / "mallory"
    assert not stored.exists() or not any(stored.rglob("*"))


def test_the_class_bounds_are_settings(make_api: Callable[..., InProcessApi]) -> None:
    api = make_api(max_upload_classes=3, min_class_images=2)
    few = upload(api, "uma", "few.zip", zip_of(folders(a=2, b=2, c=2)))
    assert few.status_code == 201 and few.json()["class_counts"] == [2, 2, 2], few.text
    many = upload(api, "uma", "many.zip", zip_of(folders(a=2, b=2, c=2, d=2)))
    assert many.status_code == 422
    assert "4 classes; the limit is 3 (ATELIER_MAX_UPLOAD_CLASSES)" in many.json()["detail"]


# --- submit-time checks -----------------------------------------------------------------------
@pytest.fixture()
def api(inprocess_api: InProcessApi) -> Api:
    return inprocess_api, {"Authorization": f"Bearer {inprocess_api.raw_key('erin')}"}


def uploaded(api: Api, filename: str, data: bytes) -> str:
    answer = api[0].http.post(
        api[0].url("/v1/datasets"), headers=api[1], files={"file": (filename, data)}, timeout=60
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["name"])


def model(api: Api, config: dict[str, Any], params: dict[str, Any] | None = None) -> str:
    """A dcgan model record of erin's (no weights: only submit reads it)."""
    record = ModelRecord(
        id=ModelStore.new_id(),
        owner="erin",
        kind="dcgan",
        config={**GAN, **config},
        weights_key="owners/erin/models/x/weights.npz",
        source_job_id=f"job_{time.monotonic_ns()}",
        dataset="digits",
        steps=10,
        created_at=time.time(),
        params=params or {},
    )
    return ModelStore(api[0].redis).save(record).id


def job(job_type: str, **params: Any) -> dict[str, Any]:
    return {"json": {"type": job_type, "kind": "dcgan", "params": params}}


def refused(api: Api, body: dict[str, Any], field: str) -> str:
    """The submit's 422 naming ``field``; no job was recorded or enqueued."""
    jobs = api[0].redis.zcard("atelier:owner:erin:jobs")
    problem = assert_problem(post_job(api, **body), 422, "validation-failed")
    assert [e["field"] for e in problem["errors"]] == [field], problem
    assert api[0].redis.zcard("atelier:owner:erin:jobs") == jobs
    return str(problem["detail"])


def accepted(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    answer = post_job(api, **body)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def test_a_conditional_job_needs_a_labelled_dataset(api: Api) -> None:
    flat = uploaded(api, "flat.zip", zip_of({f"{i}.png": png((8, 8), seed=i) for i in range(12)}))
    detail = refused(api, job("train", dataset=flat, conditional=True), "params.conditional")
    assert f"true needs a labelled dataset, and {flat!r} has no classes" in detail
    labelled = uploaded(api, "pets.zip", zip_of(folders(cats=10, dogs=10)))
    for params in ({"dataset": labelled, "conditional": True}, {"dataset": flat}):
        accepted(api, job("train", steps=10, **params))


def test_generation_takes_class_names(api: Api) -> None:
    pets = model(api, {"classes": 2, "class_names": ["cats", "dogs"]})
    for params in ({"label_names": ["dogs"]}, {"label_names": ["cats", "dogs"]}, {"labels": [1]}):
        accepted(api, job("generate", model_id=pets, **params))
    detail = refused(
        api, job("generate", model_id=pets, label_names=["cows"]), "params.label_names"
    )
    assert "['cows'] are not classes of this model (its classes: 'cats', 'dogs')" in detail
    both = job("generate", model_id=pets, labels=[0], label_names=["dogs"])
    assert "not both" in refused(api, both, "params.label_names")
    unnamed = model(api, {"classes": 10})
    detail = refused(
        api, job("generate", model_id=unnamed, label_names=["7"]), "params.label_names"
    )
    assert "no names" in detail
    unconditional = model(api, {"classes": 0})
    for params in ({"labels": [0]}, {"label_names": ["cats"]}):
        field = f"params.{next(iter(params))}"
        detail = refused(api, job("generate", model_id=unconditional, **params), field)
        assert "learned no classes (its dataset was unlabelled)" in detail


def test_a_labelled_upload_continues_a_model_of_as_many_classes(api: Api) -> None:
    parent = model(api, {"classes": 3, "class_names": ["a", "b", "c"]}, {"conditional": True})
    three = uploaded(api, "three.npz", npz(images=IMAGES, labels=THIRDS))
    two = uploaded(api, "two.zip", zip_of(folders(cats=10, dogs=10)))
    flat = uploaded(api, "flat.npz", npz(images=IMAGES))
    accepted(api, job("train", init_model=parent, dataset=three, steps=10))
    for dataset, has in ((two, 2), (flat, 0)):
        detail = refused(api, job("train", init_model=parent, dataset=dataset), "params.dataset")
        assert f"it has {has} classes; the model learned 3" in detail


def test_an_unconditional_model_continues_on_a_labelled_upload(api: Api) -> None:
    """Its network has no classes, so the labels are left aside (conditional: false)."""
    parent = model(api, {"classes": 0}, {"conditional": False})
    labelled = uploaded(api, "pets.zip", zip_of(folders(cats=10, dogs=10)))
    submitted = accepted(api, job("train", init_model=parent, dataset=labelled, steps=10))
    assert submitted["params"]["conditional"] is False


def test_the_cli_uploads_and_lists_a_labelled_dataset(
    inprocess_api: InProcessApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "pets.zip"
    archive.write_bytes(zip_of(folders(cats=10, dogs=11)))
    client = inprocess_api.client("uma")
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    uploaded = CliRunner().invoke(cli_main, ["datasets", "upload", str(archive)])
    assert uploaded.exit_code == 0, uploaded.output
    name = uploaded.stdout.strip()
    assert client.dataset(name)["class_counts"] == [10, 11]
    listed = CliRunner().invoke(cli_main, ["datasets", "list"])
    assert listed.exit_code == 0, listed.output
    line = next(row for row in listed.output.splitlines() if row.startswith(name))
    assert line.endswith("(2 classes)")


def test_the_dashboard_shows_a_datasets_classes(inprocess_api: InProcessApi) -> None:
    """Escaped like any text: a class name is the uploader's own words."""
    data = zip_of(folders(**{"<script>cats": 10, "dogs": 11}))
    assert upload(inprocess_api, "alice", "pets.zip", data).status_code == 201
    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key()).status_code == 302  # type: ignore[attr-defined]
    text = browser.get("/datasets").get_data(as_text=True)
    assert "2 classes: &lt;script&gt;cats (10), dogs (11)" in text and "<script>cats" not in text
    assert "10 classes: 0 (178), 1 (182)" in text  # the built-in digits


def test_an_exported_models_script_takes_class_names() -> None:
    """A model taken away keeps its class names (``atelier.json``, from its config), and its
    ``generate.py --labels`` takes them as well as indices."""
    from atelier.workers.export.standalone import class_index

    manifest = {"classes": 2, "class_names": ["cats", "dogs"]}
    assert [class_index(manifest, label) for label in ("dogs", "cats", "1")] == [1, 0, 1]
    with pytest.raises(SystemExit, match="no class 'cows': the classes are"):
        class_index(manifest, "cows")
    with pytest.raises(SystemExit, match="unnamed"):
        class_index({"classes": 10}, "seven")
