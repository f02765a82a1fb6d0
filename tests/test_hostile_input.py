"""A hostile-input corpus: every decoder (JSON, PNG, JPEG, zip, npz, text), every limit and
length, lying headers, malformed UTF-8, NUL bytes, huge headers, non-finite numbers, wrong
content types, empty and chunked bodies. Each case gets a problem+json 4xx with its type,
stores nothing (no dataset, job, object or message) and leaves ``/readyz`` answering.

Fast tier: the app in this process (``inprocess_api``), a real Redis, no worker."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from tests.conftest import UPLOAD_LIMITS, InProcessApi
from tests.hostile import (
    OWNER,
    abc_of_tunes,
    assert_nothing_stored,
    assert_problem,
    gif_named_png,
    jpeg_declaring,
    npy_bytes,
    npz_compressed,
    npz_declaring,
    npz_of_members,
    npz_of_objects,
    png_declaring,
    upload,
    zip64_claiming,
    zip_bomb_of_empty_entries,
    zip_of_empty_entries,
    zip_pointing_many_names_at_one_blob,
    zip_repeating_a_name,
)
from tests.payloads import npz_of, png, zip_of

JSON = {"Content-Type": "application/json"}
TRAIN = {"type": "train", "kind": "dcgan"}


def _nested(depth: int) -> bytes:
    params = "[" * depth + "]" * depth
    return b'{"type": "train", "kind": "dcgan", "params": {"x": ' + params.encode() + b"}}"


# (raw body, headers, status, problem type) posted to /v1/jobs
JSON_BODIES: dict[str, tuple[bytes, dict[str, str], int, str]] = {
    "arrays nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, JSON, 400, "malformed-request"),
    "params nested 40 deep": (_nested(40), JSON, 400, "malformed-request"),
    "NaN": (b'{"type": "train", "kind": "dcgan", "priority": NaN}', JSON, 400, "malformed-request"),
    "Infinity": (
        b'{"type": "train", "kind": "dcgan", "priority": -Infinity}',
        JSON,
        400,
        "malformed-request",
    ),
    "1e999": (
        b'{"type": "train", "kind": "dcgan", "priority": 1e999}',
        JSON,
        400,
        "malformed-request",
    ),
    "a 5,000-digit integer": (
        b'{"type": "train", "kind": "dcgan", "priority": ' + b"9" * 5000 + b"}",
        JSON,
        400,
        "malformed-request",
    ),
    "UTF-16": (json.dumps(TRAIN).encode("utf-16"), JSON, 400, "malformed-request"),
    "a UTF-8 byte-order mark": (
        b"\xef\xbb\xbf" + json.dumps(TRAIN).encode(),
        JSON,
        400,
        "malformed-request",
    ),
    "a lone surrogate": (b'{"type": "train", "kind": "\\ud800"}', JSON, 422, "validation-failed"),
    "a NUL in a name": (
        b'{"type": "train", "kind": "dcgan", "params": {"dataset": "a\\u0000b"}}',
        JSON,
        422,
        "unknown-dataset",
    ),
    "a 10,000-character key": (
        json.dumps({**TRAIN, "params": {"k" * 10_000: 1}}).encode(),
        JSON,
        422,
        "validation-failed",
    ),
    "a 300-character stop string": (
        json.dumps(
            {
                "type": "generate",
                "kind": "textgen",
                "params": {"model_id": "m", "stop": ["s" * 300]},
            }
        ).encode(),
        JSON,
        422,
        "validation-failed",
    ),
    "10,000 stop strings": (
        json.dumps(
            {
                "type": "generate",
                "kind": "textgen",
                "params": {"model_id": "m", "stop": ["s"] * 10_000},
            }
        ).encode(),
        JSON,
        422,
        "validation-failed",
    ),
    "text/plain": (
        json.dumps(TRAIN).encode(),
        {"Content-Type": "text/plain"},
        400,
        "malformed-request",
    ),
    "no content type": (json.dumps(TRAIN).encode(), {"Content-Type": ""}, 400, "malformed-request"),
    "XML": (b"<job/>", {"Content-Type": "application/xml"}, 400, "malformed-request"),
    "invalid UTF-8": (b'{"type": "\xff\xfe"}', JSON, 400, "malformed-request"),
    "an empty body": (b"", JSON, 422, "validation-failed"),
    "over the body limit": (
        json.dumps({**TRAIN, "params": {"stop": ["x" * 200] * 6000}}).encode(),
        JSON,
        413,
        "payload-too-large",
    ),
}


@pytest.mark.parametrize("case", list(JSON_BODIES))
def test_hostile_json_bodies(inprocess_api: InProcessApi, case: str) -> None:
    body, headers, status, slug = JSON_BODIES[case]
    key = inprocess_api.raw_key(OWNER)
    response = inprocess_api.http.post(
        inprocess_api.url("/v1/jobs"),
        data=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=30,
    )
    assert_problem(response, status, slug)
    assert_nothing_stored(inprocess_api, OWNER)


def test_a_body_of_many_wrong_fields_gets_a_short_answer(inprocess_api: InProcessApi) -> None:
    """80,000 unknown keys (1 MiB) were answered with 9.6 MB naming each: now the first 20."""
    params = {f"k{i}": 1 for i in range(80_000)}
    response = inprocess_api.http.post(
        inprocess_api.url("/v1/jobs"),
        json={**TRAIN, "params": params},
        headers={"Authorization": f"Bearer {inprocess_api.raw_key(OWNER)}"},
        timeout=30,
    )
    assert_problem(response, 422, "validation-failed")
    assert len(response.content) < 10_000 and len(response.json()["errors"]) == 20
    assert "and 79980 more errors" in response.json()["detail"]
    assert_nothing_stored(inprocess_api, OWNER)


def post_chunked(api: InProcessApi, path: str, body: bytes, headers: dict[str, str]) -> Any:
    """A body sent without Content-Length, as gunicorn hands on a chunked request."""
    return api.app.test_client().post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Authorization": f"Bearer {api.raw_key(OWNER)}", **headers},
        environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"},
    )


@pytest.mark.parametrize("megabytes", [2, 8])
def test_chunked_json_is_held_to_the_body_limit(
    inprocess_api: InProcessApi, megabytes: int
) -> None:
    stops = ["s" * 250] * (megabytes * 4200)
    body = json.dumps({"type": "generate", "kind": "textgen", "params": {"stop": stops}})
    answer = post_chunked(inprocess_api, "/v1/jobs", body.encode(), JSON)
    assert answer.status_code == 413 and answer.mimetype == "application/problem+json"
    assert answer.json["type"].endswith(":payload-too-large")
    assert "1048576-byte limit" in answer.json["detail"]
    assert_nothing_stored(inprocess_api, OWNER)


def test_chunked_json_under_the_limit_is_read(inprocess_api: InProcessApi) -> None:
    answer = post_chunked(inprocess_api, "/v1/jobs", json.dumps(TRAIN).encode(), JSON)
    assert answer.status_code == 202, answer.json


def test_chunked_upload_is_held_to_the_upload_limit(inprocess_api: InProcessApi) -> None:
    limit = inprocess_api.settings.max_upload_bytes
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.txt"\r\n\r\n'
        ).encode()
        + b"a" * (limit + 200_000)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = post_chunked(inprocess_api, "/v1/datasets", body, content_type)
    assert answer.status_code == 413 and answer.json["type"].endswith(":payload-too-large")
    assert_nothing_stored(inprocess_api, OWNER)


# (method, path, headers) that must answer 4xx whatever they carry
ODD_REQUESTS: dict[str, tuple[str, str, dict[str, str], int, str]] = {
    "a 64 KB Authorization header": (
        "GET",
        "/v1/jobs",
        {"Authorization": "Bearer " + "a" * 65536},
        401,
        "unauthorized",
    ),
    "limit=1e999": ("GET", "/v1/jobs?limit=1e999", {}, 422, "validation-failed"),
    "limit=NaN": ("GET", "/v1/jobs?limit=NaN", {}, 422, "validation-failed"),
    "limit=-1": ("GET", "/v1/jobs?limit=-1", {}, 422, "validation-failed"),
    "a 30-digit limit": ("GET", "/v1/jobs?limit=" + "9" * 30, {}, 422, "validation-failed"),
    "a 10,000-character id": ("GET", "/v1/jobs/" + "j" * 10_000, {}, 414, "uri-too-long"),
    "a NUL in an id": ("GET", "/v1/jobs/job_%00", {}, 404, "not-found"),
    "a 10,000-character Idempotency-Key": (
        "POST",
        "/v1/jobs",
        {"Idempotency-Key": "k" * 10_000},
        422,
        "validation-failed",
    ),
}


@pytest.mark.parametrize("case", list(ODD_REQUESTS))
def test_odd_requests(inprocess_api: InProcessApi, case: str) -> None:
    method, path, headers, status, slug = ODD_REQUESTS[case]
    key = inprocess_api.raw_key(OWNER)
    response = inprocess_api.http.request(
        method,
        inprocess_api.url(path),
        headers={"Authorization": f"Bearer {key}", **headers},
        json=TRAIN if method == "POST" else None,
        timeout=30,
    )
    assert_problem(response, status, slug)
    assert_nothing_stored(inprocess_api, OWNER)


TOO_LARGE, INVALID = (413, "payload-too-large"), (422, "invalid-upload")
ONE_BLOB = png((64, 64))  # a real image: read 20 times over if the names are believed
# filename, bytes, form fields, (status, problem type)
UPLOADS: dict[str, tuple[str, bytes, dict[str, Any], tuple[int, str]]] = {
    "a PNG declaring 30000x30000": (
        "a.zip",
        zip_of({"a.png": png_declaring(30000, 30000)}),
        {},
        TOO_LARGE,
    ),
    "a PNG over the per-image limit": (
        "a.zip",
        zip_of({"a.png": png_declaring(2500, 2500)}),
        {},
        TOO_LARGE,
    ),
    "a JPEG declaring 60000x50000": (
        "a.zip",
        zip_of({"a.jpg": jpeg_declaring(60000, 50000)}),
        {},
        TOO_LARGE,
    ),
    "a JPEG over the per-image limit": (
        "a.zip",
        zip_of({"a.jpeg": jpeg_declaring(5000, 5000)}),
        {},
        TOO_LARGE,
    ),
    "a PNG header and no pixels": ("a.zip", zip_of({"a.png": png_declaring(64, 64)}), {}, INVALID),
    "a GIF named .png": ("a.zip", zip_of({"a.png": gif_named_png()}), {}, INVALID),
    "20 names, one blob": ("a.zip", zip_pointing_many_names_at_one_blob(ONE_BLOB, 20), {}, INVALID),
    "20 same names, one blob": (
        "a.zip",
        zip_pointing_many_names_at_one_blob(ONE_BLOB, 20, same=True),
        {},
        INVALID,
    ),
    "a repeated name": ("a.zip", zip_repeating_a_name(png((8, 8))), {}, INVALID),
    "an empty zip file": ("a.zip", b"", {}, INVALID),
    "an empty npz file": ("a.npz", b"", {}, INVALID),
    "an empty text file": ("a.txt", b"", {}, INVALID),
    "npz of 50,000 1x1 zeros": (
        "z.npz",
        npz_compressed(np.zeros((50_000, 1, 1), np.uint8)),
        {"image_size": 64, "channels": 3},
        TOO_LARGE,
    ),
    "npz declaring 10^12 images": ("z.npz", npz_declaring((10**12, 1, 1)), {}, TOO_LARGE),
    "npz declaring a 10^6-square image": ("z.npz", npz_declaring((1, 10**6, 10**6)), {}, TOO_LARGE),
    "npz declaring more than it holds": ("z.npz", npz_declaring((10, 8, 8)), {}, INVALID),
    "npz with a zero side": ("z.npz", npz_declaring((4, 0, 8), b""), {}, INVALID),
    "npz of Python objects": ("z.npz", npz_of_objects(), {}, INVALID),
    "npz of junk": ("z.npz", zip_of({"images.npy": b"not an array"}), {}, INVALID),
    "npz without images": ("z.npz", npz_of(np.zeros((0, 8, 8), np.uint8)), {}, INVALID),
    "a zip of 46,000 empty entries": (
        "a.zip",
        zip_bomb_of_empty_entries(UPLOAD_LIMITS["bytes"]),
        {},
        TOO_LARGE,
    ),
    "a zip64 end record claiming 2^40 entries": (
        "a.zip",
        zip64_claiming(2**40, {"a.png": png((8, 8))}),
        {},
        TOO_LARGE,
    ),
    "a zip64 end record claiming 1 entry of 300": (
        "a.zip",
        zip_of_empty_entries(300, declared=1, zip64=True),
        {},
        INVALID,
    ),
    "an end record claiming 1 entry of 300": (
        "a.zip",
        zip_of_empty_entries(300, declared=1),
        {},
        INVALID,
    ),
    "npz declaring 100 MB of 1000x1000 images": (
        "z.npz",
        npz_declaring((100, 1000, 1000)),
        {},
        TOO_LARGE,
    ),
    "npz holding a member that is not .npy": (
        "z.npz",
        npz_of_members({"images.npy": npy_bytes(np.zeros((4, 8, 8), np.uint8)), "run.sh": b"#!"}),
        {},
        INVALID,
    ),
    "npz whose only member is a PNG": (
        "z.npz",
        npz_of_members({"images": png((8, 8))}),
        {},
        INVALID,
    ),
    "npz in Fortran order": (
        "z.npz",
        npz_compressed(np.asfortranarray(np.zeros((4, 8, 8), np.uint8))),
        {},
        INVALID,
    ),
    "ABC of 2,001 tunes": ("t.abc", abc_of_tunes(2001), {}, TOO_LARGE),
    "text with bad UTF-8 midway": (
        "t.txt",
        b"fine words " * 100 + b"\xc3\x28" + b" more",
        {},
        INVALID,
    ),
    "text encoding a surrogate": ("t.txt", b"text \xed\xa0\x80 text", {}, INVALID),
    "text in UTF-16": ("t.txt", "some words\n".encode("utf-16") * 50, {}, INVALID),
    "text of C1 controls": ("t.txt", "\x85\x9f".encode() * 100 + b"words", {}, INVALID),
    "text of C0 controls": ("t.txt", b"\x01\x1b\x7f" * 100 + b"words", {}, INVALID),
    "a 300-character file name": ("n" * 296 + ".txt", b"words " * 20, {}, INVALID),
    "a file name without a suffix": ("corpus", b"words " * 20, {}, INVALID),
    "image_size=1e999": (
        "a.zip",
        zip_of({"a.png": png((8, 8))}),
        {"image_size": "1e999"},
        (422, "validation-failed"),
    ),
    "channels=NaN": (
        "a.zip",
        zip_of({"a.png": png((8, 8))}),
        {"channels": "NaN"},
        (422, "validation-failed"),
    ),
}


@pytest.mark.parametrize("case", list(UPLOADS))
def test_hostile_uploads(inprocess_api: InProcessApi, case: str) -> None:
    filename, data, fields, (status, slug) = UPLOADS[case]
    assert_problem(upload(inprocess_api, filename, data, **fields), status, slug)
    assert_nothing_stored(inprocess_api, OWNER)


def test_a_form_of_many_parts_is_refused(inprocess_api: InProcessApi) -> None:
    parts: dict[str, tuple[str | None, bytes]] = {f"f{i}": (None, b"x") for i in range(2000)}
    response = inprocess_api.http.post(
        inprocess_api.url("/v1/datasets"),
        headers={"Authorization": f"Bearer {inprocess_api.raw_key(OWNER)}"},
        files={**parts, "file": ("c.txt", b"words " * 20)},
        timeout=60,
    )
    assert_problem(response, 413, "payload-too-large")
    assert_nothing_stored(inprocess_api, OWNER)


def test_a_json_body_where_an_upload_belongs(inprocess_api: InProcessApi) -> None:
    response = inprocess_api.http.post(
        inprocess_api.url("/v1/datasets"),
        headers={"Authorization": f"Bearer {inprocess_api.raw_key(OWNER)}"},
        json={"file": "a.txt"},
        timeout=30,
    )
    assert_problem(response, 422, "invalid-upload")
    assert_nothing_stored(inprocess_api, OWNER)
