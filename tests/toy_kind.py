"""A third model kind that exists only for the tests, written by the recipe in
docs/kinds.md ("Adding a model kind"): this module is its TF-free half, the parameters and
``KIND``, its row in the table (no TensorFlow, so the API can import it);
``tests/toy_kind_plugin.py`` is its worker half, the plug-in, which trains through the shared
loop. Loaded with ``ATELIER_KIND_PLUGINS=tests.toy_kind:KIND``.

``toy`` learns the mean pixel of an image dataset with one Dense unit, and generates
that mean."""

from __future__ import annotations

from pydantic import Field

from atelier.shared.kinds import KindSpec, StrictParams, TrainParams


class ToyTrainParams(TrainParams):
    dataset: str = "digits"
    steps: int = Field(6, ge=1, le=100)
    learning_rate: float = Field(0.1, gt=0, le=1)


class ToyGenerateParams(StrictParams):
    model_id: str
    n: int = Field(1, ge=1, le=4)


KIND = KindSpec(
    name="toy",
    description="Learns the mean pixel of an image dataset (tests only).",
    train_params=ToyTrainParams,
    generate_params=ToyGenerateParams,
    implementation="tests.toy_kind_plugin:ToyKind",
    modality="image",
)
