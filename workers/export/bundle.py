"""An export bundle: one zip a user takes away.

::

    model.keras            (format keras)      keras.saving.load_model opens it
    saved_model/           (format savedmodel) tf.saved_model.load / TF Serving
    atelier.json           what the model is: kind, shape, inputs, where it came from
    tokenizer.json         textgen with a byte-pair vocabulary (the tokenizers format)
    vocabulary.json        melody: the ABC tokens by id, and the corpus's headers
    generate.py            plain Python (NumPy + TensorFlow) that generates from it
    README.md              how to use it outside Atelier
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

from ...shared.exports import ExportFormat
from ...shared.models import ModelRecord
from ..kinds.base import Exportable
from .readme import readme

GENERATE_SCRIPT = Path(__file__).with_name("standalone.py")
NETWORK_FILES = {ExportFormat.KERAS: "model.keras", ExportFormat.SAVEDMODEL: "saved_model"}
MANIFEST_VERSION = 1


@contextlib.contextmanager
def float32_policy() -> Iterator[None]:
    """Build in float32 whatever the worker trains in: an export must not carry a
    mixed-precision policy that a CPU install runs slowly or not at all."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def manifest(
    model: ModelRecord, exportable: Exportable, fmt: ExportFormat, version: int | None
) -> dict[str, Any]:
    network = exportable.network
    return {
        "atelier_export": MANIFEST_VERSION,
        "kind": model.kind,
        "format": fmt.value,
        "file": NETWORK_FILES[fmt],
        "model_id": model.id,
        "name": model.name,
        "version": version,
        "dataset": model.dataset,
        "steps": model.steps,
        # The SavedModel signature's argument names too.
        "inputs": [tensor.name for tensor in network.inputs],
        **exportable.details,
    }


def export_bundle(
    model: ModelRecord, exportable: Exportable, fmt: ExportFormat, version: int | None = None
) -> bytes:
    """The bundle's bytes (deflated zip)."""
    described = manifest(model, exportable, fmt, version)
    files: dict[str, bytes] = {
        "atelier.json": json.dumps(described, indent=1).encode(),
        "README.md": readme(described, sorted(exportable.files)).encode(),
        "generate.py": GENERATE_SCRIPT.read_bytes(),
        **exportable.files,
    }
    buffer = io.BytesIO()
    with (
        tempfile.TemporaryDirectory(prefix="export-") as scratch,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        root = Path(scratch)
        save_network(exportable.network, fmt, root / NETWORK_FILES[fmt])
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def save_network(network: keras.Model, fmt: ExportFormat, path: Path) -> None:
    if fmt is ExportFormat.KERAS:
        network.save(path)
    else:
        # A ``serve`` endpoint, also the ``serving_default`` signature, with the inputs'
        # names: what TF Serving and ``tf.saved_model.load`` call, no Python classes.
        network.export(str(path), format="tf_saved_model", verbose=False)
