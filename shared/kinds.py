"""The table of model kinds. The API validates params with it; the worker dispatches on it.

A kind's parameter schemas live here (pure pydantic, cheap to import); its implementation
is named by import path and loaded only inside a worker process, so neither the API nor
a Celery parent ever imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from shared.datasets import BUILTIN_DATASETS


class StrictParams(BaseModel):
    """Unknown parameters are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid")


class DcganTrainParams(StrictParams):
    dataset: str = Field("digits", description="Dataset name; see GET /v1/datasets.")
    steps: int = Field(1500, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(64, ge=8, le=1024)
    generator_lr: float = Field(1e-3, gt=0, le=0.1, description="Adam learning rate of G.")
    discriminator_lr: float = Field(5e-4, gt=0, le=0.1, description="Adam learning rate of D.")
    beta_1: float = Field(0.5, ge=0.0, lt=1.0, description="Adam beta_1 for both networks.")
    latent_dim: int = Field(64, ge=2, le=512)
    base_filters: int = Field(32, ge=4, le=256, description="Width of the smallest conv layer.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    sample_every: int = Field(200, ge=1, le=1_000_000, description="Steps between sample grids.")
    checkpoint_every: int = Field(500, ge=1, le=1_000_000, description="Steps between checkpoints.")


class DcganGenerateParams(StrictParams):
    model_id: str = Field(description="A model produced by a dcgan training job.")
    n: int = Field(16, ge=1, le=1000, description="Images to generate.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Same seed, same images.")


@dataclass(frozen=True)
class KindSpec:
    name: str
    description: str
    train_params: type[StrictParams]
    generate_params: type[StrictParams]
    implementation: str
    """``module:Class`` of the worker-side plug-in."""
    modality: str


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec(
            name="dcgan",
            description="Deep convolutional GAN for small images (28-64 px, grey or RGB).",
            train_params=DcganTrainParams,
            generate_params=DcganGenerateParams,
            implementation="workers.kinds.dcgan:DcganKind",
            modality="image",
        ),
    )
}


def dataset_exists(name: str) -> bool:
    return name in BUILTIN_DATASETS
