"""The ``dcgan`` kind's TF-free half: its parameters, estimates, submit-time checks and its
row in the table (pure pydantic: the API imports it; the worker half is
``workers/kinds/dcgan/``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..estimates import (
    ConvNetShape,
    Estimate,
    JobFacts,
    inference_memory,
    kept_checkpoint_bytes,
    samples_written,
    training_memory,
)
from .base import Continuation, KindSpec, StrictParams, TrainParams, model_id_field


class DcganTrainParams(TrainParams):
    """The defaults are the recipe measured by ``bench/digits_quality.py`` (its figures:
    bench/results/digits-quality.md): on a labelled dataset a conditional G and projection
    D, with a mode-seeking term (without it each digit collapsed to one drawing) and a
    moving average of G, for 1,300 steps: less CPU time than the earlier unconditional
    1,500."""

    dataset: str = Field("digits", description="Dataset name; see GET /v1/datasets.")
    steps: int = Field(1300, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(64, ge=8, le=1024, description="Real images per step.")
    generator_lr: float = Field(1e-3, gt=0, le=0.1, description="Adam learning rate of G.")
    discriminator_lr: float = Field(5e-4, gt=0, le=0.1, description="Adam learning rate of D.")
    beta_1: float = Field(0.5, ge=0.0, lt=1.0, description="Adam beta_1 for both networks.")
    latent_dim: int = Field(64, ge=2, le=512, description="Noise vector size.")
    base_filters: int = Field(32, ge=4, le=256, description="Width of the smallest conv layer.")
    loss: Literal["bce", "hinge"] = Field(
        "bce", description="bce: non-saturating cross-entropy; hinge: the SNGAN hinge loss."
    )
    spectral_norm: bool = Field(False, description="Spectral normalisation of D's layers.")
    minibatch_std: bool = Field(
        False, description="D sees each batch's feature spread (against too few kinds of image)."
    )
    ema_decay: float = Field(
        0.99,
        ge=0.0,
        lt=1.0,
        description="Generation uses a moving average of G's weights with this decay; 0: G itself.",
    )
    augment: tuple[Literal["translation", "cutout", "brightness"], ...] = Field(
        (),
        max_length=3,
        description="DiffAugment: random changes applied to every image D sees, real and fake.",
    )
    r1_gamma: float = Field(
        0.0, ge=0.0, le=100.0, description="Weight of the R1 penalty on D's slope at real images."
    )
    label_smoothing: float = Field(
        0.1, ge=0.0, lt=1.0, description="bce's real label is 1 - this (one-sided smoothing)."
    )
    pack: int = Field(
        1, ge=1, le=8, description="D judges this many images at once (PacGAN; 1: one at a time)."
    )
    mode_seeking: float = Field(
        0.25,
        ge=0.0,
        le=100.0,
        description=(
            "Conditional models: weight of the mode-seeking term (G keeps two draws of one "
            "class apart)."
        ),
    )
    conditional: bool | None = Field(
        None,
        description=(
            "Learn each class of a labelled dataset (digits, shapes, an upload with a folder "
            "per class or a labels array): generation then draws the classes it is asked "
            "for. Null: when the dataset is labelled; true: refuse an unlabelled dataset; "
            "false: ignore the labels."
        ),
    )
    sample_every: int = Field(200, ge=1, le=1_000_000, description="Steps between sample grids.")
    checkpoint_every: int = Field(500, ge=1, le=1_000_000, description="Steps between checkpoints.")


def estimate_dcgan_train(params: DcganTrainParams, facts: JobFacts) -> Estimate:
    """G and D with Adam; activations of G once and of D on the real and the fake batch
    (the real one twice with R1, whose gradient of D's gradient keeps a second pass);
    the dataset as float32, twice (the array and tf.data's copy)."""
    classes = facts.classes if params.conditional is not False else 0
    shape = ConvNetShape(
        facts.image_size, facts.channels, params.latent_dim, params.base_filters, classes
    )
    generator, discriminator = shape.generator(), shape.discriminator()
    size = generator + discriminator
    pixels = facts.image_size**2 * facts.channels
    d_passes = 3 if params.r1_gamma > 0 else 2
    per_image = shape.generator_activations() + d_passes * shape.discriminator_activations()
    activations = params.batch_size * per_image + 2 * facts.dataset_count * pixels
    samples = samples_written(params.steps, params.sample_every)
    grid_bytes = 64 * pixels + 1024  # an 8x8 PNG grid, never larger than its raw pixels
    checkpoint = size.checkpoint_bytes()
    kept = kept_checkpoint_bytes(
        checkpoint, params.steps, params.checkpoint_every, facts.checkpoints_kept
    )
    # The model's weights file: G (its average and G itself), and D to continue from.
    copies = 2 if params.ema_decay > 0 else 1
    weights = copies * generator.checkpoint_bytes(False) + discriminator.checkpoint_bytes(False)
    return Estimate(
        parameters=size.total,
        memory_bytes=training_memory(size, activations),
        checkpoint_bytes=checkpoint,
        output_bytes=kept + samples * grid_bytes + weights,
        samples=samples,
    )


ClassIndex = Annotated[int, Field(ge=0, le=9999)]
ClassName = Annotated[str, Field(min_length=1, max_length=64)]
"""A class by its name, as the dataset's ``class_names`` spell it (at most 64 characters:
``api.labelled``)."""

# Up to this many images are stored one object each; more go into one archive (a job
# record listing 1,000 URLs, and 1,000 storage writes, help no one).
SINGLE_IMAGE_OUTPUTS_MAX = 64


class DcganGenerateParams(StrictParams):
    model_id: str = model_id_field("dcgan")
    n: int = Field(16, ge=1, le=1000, description="Images to generate.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Same seed, same images.")
    format: Literal["png", "npy"] = Field(
        "png",
        description=(
            f"png: one PNG per image up to {SINGLE_IMAGE_OUTPUTS_MAX}, else images.zip of "
            "PNGs; npy: images.npy, one (n, h, w, c) uint8 array. Always grid.png too."
        ),
    )
    labels: list[ClassIndex] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description=(
            "A conditional model's classes to draw, in turn over the n images, by index "
            "(digits: [7] for sevens, [0, 1] for zeros and ones alternately); default: every "
            "class in turn."
        ),
    )
    label_names: list[ClassName] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description=(
            "The same by name, as the dataset's `class_names` spell them (an upload's "
            'folders: ["cats", "dogs"]; digits: ["7"]); give labels or label_names, not both.'
        ),
    )


def class_indices(
    params: DcganGenerateParams, config: dict[str, Any]
) -> tuple[list[int] | None, list[tuple[str, str]]]:
    """The classes ``params`` ask for (``labels``, or ``label_names`` looked up in the
    model's ``class_names``) as indices of the model of ``config``, and why they cannot be:
    (param, message) pairs, empty when they can. None: every class in turn."""
    asked: list[int] | list[str] | None = params.labels or params.label_names
    field = "labels" if params.labels else "label_names"
    if params.labels and params.label_names:
        return None, [("label_names", "give labels (indices) or label_names, not both")]
    classes = config.get("classes", 0)
    if asked is None:
        return None, []
    if not isinstance(classes, int) or classes < 1:
        return None, [
            (
                field,
                "this model learned no classes (its dataset was unlabelled); train on a "
                "labelled dataset to draw classes",
            )
        ]
    names = [str(name) for name in config.get("class_names") or []]
    index = {name: i for i, name in enumerate(names)}
    found = [label if isinstance(label, int) else index.get(label, -1) for label in asked]
    missing = {label for label, i in zip(asked, found, strict=True) if not 0 <= i < classes}
    unknown = [repr(label) for label in sorted(missing, key=lambda v: (str(v).zfill(12), v))]
    if unknown:
        known = f"0 to {classes - 1}" if field == "labels" else _names_shown(names)
        return None, [(field, f"{_shown(unknown)} are not classes of this model ({known})")]
    return found, []


def _shown(shown: list[str], most: int = 10) -> str:
    more = f" and {len(shown) - most} more" if len(shown) > most else ""
    return "[" + ", ".join(shown[:most]) + "]" + more


def _names_shown(names: list[str], most: int = 10) -> str:
    if not names:
        return "its classes have no names: a model trained before names were kept; use labels"
    more = f", … ({len(names)} in all)" if len(names) > most else ""
    return "its classes: " + ", ".join(repr(n) for n in names[:most]) + more


def check_dcgan_generate(
    params: DcganGenerateParams, config: dict[str, Any]
) -> list[tuple[str, str]]:
    """Labels only for a conditional model, and only classes it learned."""
    return class_indices(params, config)[1]


def check_dcgan_train(params: DcganTrainParams, facts: JobFacts) -> list[tuple[str, str]]:
    """``conditional: true`` asks for classes: an unlabelled dataset cannot give them."""
    if params.conditional and not facts.classes:
        return [
            (
                "conditional",
                f"true needs a labelled dataset, and {params.dataset!r} has no classes "
                "(upload a .zip with a folder per class or a .npz with a labels array; "
                "leave conditional out to train unconditionally)",
            )
        ]
    return []


def estimate_dcgan_generate(params: DcganGenerateParams, facts: JobFacts) -> Estimate:
    """G in inference, 500 images a pass; the images as floats and as encoded files."""
    config = facts.model_config or {}
    shape = ConvNetShape(
        config.get("image_size", 28),
        config.get("channels", 1),
        config.get("latent_dim", 64),
        config.get("base_filters", 32),
        config.get("classes", 0),
    )
    generator = shape.generator()
    pixels = shape.image_size**2 * shape.channels
    activations = min(params.n, 500) * shape.generator_activations() + 2 * params.n * pixels
    return Estimate(
        parameters=generator.total,
        memory_bytes=inference_memory(generator, activations),
        checkpoint_bytes=0,
        output_bytes=(params.n + 64) * pixels + 1024,
        samples=0,
    )


D_SHAPE = ("spectral_norm", "minibatch_std", "pack")
"""The params that shape D beyond the image size, width and classes."""


def dcgan_shape(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """G's shape as the model's config records it (conditional: it learned classes), D's
    as its training params say (records without them: D is trained afresh)."""
    d_shape = {name: params.get(name) for name in D_SHAPE}
    return {
        "latent_dim": config.get("latent_dim"),
        "base_filters": config.get("base_filters"),
        "conditional": bool(config.get("classes", 0)),
        **(d_shape if all(n in params for n in D_SHAPE) else {}),
    }


def check_dcgan_continue(
    params: DcganTrainParams, facts: JobFacts, config: dict[str, Any]
) -> list[tuple[str, str]]:
    """The dataset's images are the model's size and channels and, for a conditional
    model, carry as many classes as it learned."""
    size, channels = config.get("image_size"), config.get("channels")
    problems = []
    if (facts.image_size, facts.channels) != (size, channels):
        problems.append(
            (
                "dataset",
                f"its images are {facts.image_size} px with {facts.channels} channel(s); "
                f"the model draws {size} px with {channels}",
            )
        )
    classes = config.get("classes", 0)
    if params.conditional is not False and facts.classes != classes:
        problems.append(("dataset", f"it has {facts.classes} classes; the model learned {classes}"))
    return problems


DCGAN_CONTINUATION = Continuation(shape=dcgan_shape, check=check_dcgan_continue)


KIND = KindSpec(
    name="dcgan",
    description="Deep convolutional GAN for small images (28-64 px, grey or RGB).",
    train_params=DcganTrainParams,
    generate_params=DcganGenerateParams,
    implementation="atelier.workers.kinds.dcgan.kind:DcganKind",
    modality="image",
    estimate_train=estimate_dcgan_train,
    estimate_generate=estimate_dcgan_generate,
    check_generate=check_dcgan_generate,
    check_train=check_dcgan_train,
    continuation=DCGAN_CONTINUATION,
    exportable=True,
)
