"""Model code on tiny configs, in-process: shapes per size, checkpoint round trip, and the
mixed-precision path (exercised on CPU too; only on GPU hosts does the worker switch it
on). Every test leaves keras' global dtype policy as it found it."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from PIL import Image

from atelier.shared import images as shared_images
from atelier.shared.jobs import OutputRef
from atelier.shared.models import ModelRecord
from atelier.shared.settings import Settings
from atelier.workers.checkpoints import encode_checkpoint, restore_checkpoint
from atelier.workers.gpu import configure_tensorflow
from atelier.workers.kinds.dcgan.augment import cutout, diff_augment, pack_images, translate
from atelier.workers.kinds.dcgan.inference import (
    CompiledGenerator,
    generate_images,
    labels_in_turn,
)
from atelier.workers.kinds.dcgan.kind import DcganKind
from atelier.workers.kinds.dcgan.model import (
    DCGAN,
    DcganConfig,
    GanRecipe,
    build_generator,
    build_optimizer_state,
    training_state,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (32, 3), (64, 1)])
def test_networks_scale_to_the_dataset(size: int, channels: int) -> None:
    config = DcganConfig(image_size=size, channels=channels, latent_dim=4, base_filters=4)
    generator = build_generator(config)
    out = generator(np.zeros((2, 4), np.float32))
    assert tuple(out.shape) == (2, size, size, channels)


def _tiny_gan(ema_decay: float = 0.0) -> DCGAN:
    gan = DCGAN(DcganConfig.tiny(), GanRecipe(ema_decay=ema_decay))
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    return gan


@pytest.mark.parametrize("ema_decay", [0.0, 0.999])
def test_checkpoint_round_trip_restores_weights_and_optimizer_state(ema_decay: float) -> None:
    images = np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)
    first = _tiny_gan(ema_decay)
    first.fit(images, batch_size=8, epochs=1, verbose=0)
    data = encode_checkpoint(training_state(first), 4)
    second = _tiny_gan(ema_decay)
    build_optimizer_state(second)
    step = restore_checkpoint(training_state(second), data)
    assert step == 4
    z = np.ones((1, DcganConfig.tiny().latent_dim), np.float32)
    np.testing.assert_allclose(
        first.generator(z, training=False), second.generator(z, training=False), rtol=1e-6
    )
    assert int(second.g_optimizer.iterations) == int(first.g_optimizer.iterations) == 4
    np.testing.assert_allclose(
        first.averaged(z, training=False), second.averaged(z, training=False), rtol=1e-6
    )


def test_the_averaged_generator_follows_g_smoothly() -> None:
    """The moving average moves with G (warm-up decay) but is not G."""
    images = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)
    gan = _tiny_gan(0.999)
    start = [w.copy() for w in gan.averaged.get_weights()]
    gan.fit(images, batch_size=8, epochs=1, verbose=0)
    averaged, current = gan.averaged.get_weights(), gan.generator.get_weights()
    assert any(not np.allclose(a, s) for a, s in zip(averaged, start, strict=True))
    assert any(not np.allclose(a, c) for a, c in zip(averaged, current, strict=True))


@pytest.fixture()
def restore_policy() -> Iterator[None]:
    """Whatever a test does to keras' global dtype policy is undone after it."""
    before = keras.mixed_precision.global_policy().name
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


@pytest.fixture()
def mixed_precision(restore_policy: None) -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")


def test_mixed_precision_trains_with_loss_scaling(mixed_precision: None) -> None:
    gan = _tiny_gan()
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    history = gan.fit(images, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"][-1]) and np.isfinite(history["g_loss"][-1])
    out = gan.generator(np.zeros((1, DcganConfig.tiny().latent_dim), np.float32))
    assert out.dtype == "float32"  # the last layer stays float32 for tanh's range


def test_mixed_precision_is_switched_on_only_with_a_gpu(restore_policy: None) -> None:
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("float32")
    assert configure_tensorflow(False) is False
    assert keras.mixed_precision.global_policy().name == "float32"
    assert configure_tensorflow(True) is has_gpu
    expected = "mixed_float16" if has_gpu else "float32"
    assert keras.mixed_precision.global_policy().name == expected


def test_every_recipe_option_trains_with_finite_losses() -> None:
    """Hinge loss, spectral norm and minibatch spread together: one path, no NaNs."""
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    recipe = GanRecipe("hinge", spectral_norm=True, minibatch_std=True)
    gan = DCGAN(DcganConfig.tiny(), recipe)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    history = gan.fit(images, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"][-1]) and np.isfinite(history["g_loss"][-1])
    assert gan.averaged is gan.generator  # no average without ema_decay


def test_r1_and_diff_augment_train_with_a_real_penalty() -> None:
    """R1's slope reaches D's input (a None gradient once made it look impossible), also
    through augmentation and packing."""
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    recipe = GanRecipe(augment=("translation", "cutout", "brightness"), r1_gamma=1.0, pack=2)
    gan = DCGAN(DcganConfig.tiny(), recipe)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    history = gan.fit(images, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"][-1]) and np.isfinite(history["g_loss"][-1])
    assert 0 < history["r1"][-1] < np.inf


def _dark_and_bright(gan: DCGAN, steps: int, seed: int) -> dict[str, list[float]]:
    """Train ``gan`` on class 0 = dark images, class 1 = bright ones."""
    from atelier.workers.kinds.dcgan.training import image_batches

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    labels = np.tile(np.array([0, 1], np.int32), 64)
    brightness = np.where(labels == 1, 0.8, -0.8).astype(np.float32)
    images = brightness[:, None, None, None] + rng.normal(0, 0.05, (128, 28, 28, 1))
    gan.compile(keras.optimizers.Adam(5e-3, beta_1=0.5), keras.optimizers.Adam(5e-3, beta_1=0.5))
    batches = image_batches(images.astype(np.float32), labels, 16, seed=seed)
    history: dict[str, list[float]] = gan.fit(
        batches, steps_per_epoch=steps, epochs=1, verbose=0
    ).history
    return history


@pytest.mark.parametrize("seed", [0, 1])
def test_a_conditional_gan_learns_which_class_to_draw(seed: int) -> None:
    """After a short run G draws each class's brightness when asked for it, through R1 and
    packing (the pack's classes reach D)."""
    config = DcganConfig(latent_dim=8, base_filters=4, classes=2)
    gan = DCGAN(config, GanRecipe(r1_gamma=1.0, pack=2, ema_decay=0.9))
    history = _dark_and_bright(gan, 150, seed)
    assert np.isfinite(history["d_loss"][-1]) and 0 < history["r1"][-1] < np.inf

    z = np.random.default_rng(seed).standard_normal((64, 8)).astype(np.float32)
    drawn_as = labels_in_turn(64, 2)
    means = np.asarray(generate_images(gan.averaged, z, drawn_as)).mean(axis=(1, 2, 3))
    dark, bright = means[drawn_as == 0], means[drawn_as == 1]
    assert (dark < 0).mean() >= 0.9 and (bright > 0).mean() >= 0.9, (dark, bright)
    assert dark.mean() < -0.3 and bright.mean() > 0.3, (dark.mean(), bright.mean())
    with pytest.raises(ValueError, match="class"):
        generate_images(gan.averaged, z)


def test_mode_seeking_pairs_draws_of_one_class() -> None:
    """The term trains without NaNs and reports how far apart two draws of a class are;
    an unconditional GAN has no classes to pair and reports nothing."""
    config = DcganConfig(latent_dim=8, base_filters=4, classes=2)
    history = _dark_and_bright(DCGAN(config, GanRecipe(mode_seeking=0.25)), 10, 0)
    assert np.isfinite(history["g_loss"][-1]) and 0 < history["spread"][-1] < np.inf
    plain = DCGAN(DcganConfig.tiny(), GanRecipe(mode_seeking=0.25))
    plain.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    assert "spread" not in plain.fit(images, batch_size=8, epochs=1, verbose=0).history


def test_labels_in_turn_cycle_the_chosen_classes() -> None:
    assert labels_in_turn(5, 3).tolist() == [0, 1, 2, 0, 1]
    assert labels_in_turn(4, 10, [7]).tolist() == [7, 7, 7, 7]
    assert labels_in_turn(3, 10, [2, 5]).tolist() == [2, 5, 2]


def test_packing_stacks_consecutive_images_as_channels() -> None:
    images = np.arange(5 * 2 * 2 * 1, dtype=np.float32).reshape(5, 2, 2, 1)
    packed = np.asarray(pack_images(images, 2))
    assert packed.shape == (2, 2, 2, 2)  # the fifth image is left out
    np.testing.assert_array_equal(packed[1, ..., 0], images[2, ..., 0])
    np.testing.assert_array_equal(packed[1, ..., 1], images[3, ..., 0])


def test_translation_moves_a_digit_without_changing_it() -> None:
    """A blob away from the border is shifted whole (3 px at most), its pixels intact."""
    image = np.full((64, 28, 28, 1), -1.0, np.float32)
    image[:, 10:18, 12:16] = 1.0
    moved = np.asarray(translate(image))
    assert moved.shape == image.shape
    assert np.all((moved == 1.0).sum(axis=(1, 2, 3)) == 32)
    rows = np.argmax(moved[..., 0].max(axis=2) == 1.0, axis=1)
    assert set(rows) <= set(range(7, 14)) and len(set(rows)) > 1


def test_cutout_blanks_a_square_and_augments_pass_gradients() -> None:
    import tensorflow as tf

    images = tf.ones((8, 28, 28, 1))
    holed = np.asarray(cutout(images))
    blanked = (holed == -1.0).sum(axis=(1, 2, 3))
    assert np.all((blanked > 0) & (blanked <= 14 * 14))
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(diff_augment(images, ("translation", "cutout", "brightness")))
    assert tape.gradient(total, images) is not None


class _Outputs:
    """What a dcgan generate job on a cached model touches of its JobContext: an uploader
    that keeps each object it is given."""

    def __init__(self) -> None:
        self.uploader = self
        self.stored: dict[str, bytes] = {}

    def output_key(self, name: str) -> str:
        return name

    def put(self, name: str, key: str, data: bytes, content_type: str) -> None:
        self.stored[name] = data

    def wait(self) -> list[OutputRef]:
        return []


@pytest.fixture
def dcgan_kind(tmp_path: Path) -> Iterator[tuple[DcganKind, ModelRecord, _Outputs]]:
    """The worker's dcgan kind with a tiny conditional model cached in batches of 16."""
    config = DcganConfig(latent_dim=8, base_filters=4, classes=3)
    generator = build_generator(config)
    kind = DcganKind(Settings.from_env({}, data_dir=tmp_path))
    kind.setup()
    model = ModelRecord(
        id="model_t",
        owner="o",
        kind="dcgan",
        config=config.to_dict(),
        weights_key="w",
        source_job_id="job_t",
        dataset="digits",
        steps=1,
        created_at=0.0,
    )
    kind._generators.get_or_load(model.id, lambda: CompiledGenerator(generator, config, 16))
    yield kind, model, _Outputs()
    kind._encoders.shutdown()


def test_generate_encodes_batch_by_batch_the_pixels_it_draws(
    dcgan_kind: tuple[DcganKind, ModelRecord, _Outputs],
) -> None:
    """70 images in 5 batches of the forward pass, each encoded while the next is drawn:
    images.zip holds, in order, the pixels format=npy stores."""
    kind, model, ctx = dcgan_kind
    params = {"model_id": model.id, "n": 70, "seed": 4}
    kind.generate(model, {**params, "format": "npy"}, ctx)  # type: ignore[arg-type]
    pixels = np.load(io.BytesIO(ctx.stored.pop("images.npy")))
    kind.generate(model, params, ctx)  # type: ignore[arg-type]
    with zipfile.ZipFile(io.BytesIO(ctx.stored["images.zip"])) as archive:
        assert archive.namelist() == [f"{index:04d}.png" for index in range(70)]
        zipped = np.stack(
            [np.asarray(Image.open(archive.open(name))) for name in archive.namelist()]
        )
    assert pixels.shape == (70, 28, 28, 1) and np.array_equal(zipped, pixels[..., 0])


def test_an_encoding_failure_fails_generate_before_anything_is_stored(
    dcgan_kind: tuple[DcganKind, ModelRecord, _Outputs], monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, model, ctx = dcgan_kind

    def broken(images: np.ndarray) -> list[bytes]:
        raise OSError("encoder broke")

    monkeypatch.setattr(shared_images, "encode_pngs", broken)
    with pytest.raises(OSError, match="encoder broke"):
        kind.generate(model, {"model_id": model.id, "n": 70}, ctx)  # type: ignore[arg-type]
    assert ctx.stored == {}


# --- continuing a model (init_model): the parent's weights load into the child's network ---


def _parent_record(kind: str, config: dict[str, Any], steps: int) -> ModelRecord:
    return ModelRecord(
        id="model_parent",
        owner="o",
        kind=kind,
        config=config,
        weights_key="w",
        source_job_id="job_parent",
        dataset="d",
        steps=steps,
        created_at=0.0,
    )


def _same(first: list[Any], second: list[Any]) -> bool:
    return len(first) == len(second) and all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, second, strict=True)
    )


def test_a_textgen_child_keeps_its_parents_tokenizer_and_network() -> None:
    """On another corpus, the child tokenizes with the parent's learned vocabulary and
    starts from its network; its own n-gram is counted from its own corpus."""
    from atelier.shared.kinds.textgen import TextgenTrainParams
    from atelier.workers.kinds.textgen.kind import TextgenTrainer
    from atelier.workers.training import train_without_job

    tiny = {
        "steps": 2,
        "batch_size": 4,
        "sequence_length": 16,
        "num_layers": 1,
        "num_heads": 2,
        "hidden_dim": 16,
        "vocabulary_size": 300,
        "ngram_order": 2,
    }
    params = TextgenTrainParams.model_validate({**tiny, "dataset": "x"})
    parent = TextgenTrainer(params, "the fox and the crow share a piece of cheese. " * 80)
    train_without_job(parent)
    record = _parent_record("textgen", parent.config(), 2)
    child = TextgenTrainer(params.model_copy(update={"seed": 5}), "a lion wakes a mouse. " * 90)
    child.parent = record
    child.build()
    assert child.tokens.to_config() == parent.tokens.to_config()
    assert not _same(child.lm.weights, parent.lm.weights)  # another seed: another draw
    assert child.start_from(encode_checkpoint(parent.weights(), 2)) == "the network's weights"
    assert _same(child.lm.weights, parent.lm.weights)
    assert len(child.train_tokens) != len(parent.train_tokens)  # its own corpus


def test_a_melody_child_keeps_its_parents_vocabulary_and_network() -> None:
    """The child's tunes are encoded with the parent's vocabulary (a token it never saw is
    dropped) and its network starts from the parent's."""
    from atelier.shared.kinds.melody.abc import normalise
    from atelier.shared.kinds.melody.params import MelodyTrainParams
    from atelier.workers.kinds.melody.kind import MelodyTrainer
    from atelier.workers.training import train_without_job

    jigs = [
        normalise(f"X:{i}\nM:6/8\nL:1/8\nK:D\nA|dfa agf|e2d cBA|dfa agf|e3 d2:|") for i in range(24)
    ]
    reels = [normalise(f"X:{i}\nM:4/4\nL:1/8\nK:G\nGABc dBGB|cABG FGAB|G8|]") for i in range(24)]
    tiny = {
        "steps": 2,
        "batch_size": 4,
        "sequence_length": 32,
        "num_layers": 1,
        "num_heads": 2,
        "hidden_dim": 16,
        "dataset": "x",
    }
    params = MelodyTrainParams.model_validate(tiny)
    parent = MelodyTrainer(params, jigs)
    train_without_job(parent)
    record = _parent_record("melody", parent.config(), 2)
    child = MelodyTrainer(params.model_copy(update={"seed": 5}), reels)
    child.parent = record
    child.build()
    assert child.model_config.vocabulary == parent.model_config.vocabulary
    assert "M:4/4" not in child.model_config.vocabulary  # the reels' meter: unseen, dropped
    known = set(parent.model_config.vocabulary)
    assert all(t in known for header, _ in child.model_config.headers for t in header)
    child.start_from(encode_checkpoint(parent.weights(), 2))
    assert _same(child.lm.weights, parent.lm.weights)


@pytest.mark.parametrize("ema_decay", [0.0, 0.99])
def test_a_dcgan_child_starts_from_its_parents_g_average_and_d(ema_decay: float) -> None:
    """The weights file keeps what generation draws with (``g``) and what a child needs
    (D, and G beside its average); a file from before it kept them starts D afresh."""
    from atelier.shared.kinds.dcgan import DcganTrainParams
    from atelier.workers.kinds.dcgan.training import DcganTrainer, TrainingImages

    images = np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)
    tiny = {"steps": 2, "batch_size": 8, "latent_dim": 4, "base_filters": 4, "ema_decay": ema_decay}
    params = DcganTrainParams.model_validate(tiny)
    parent = DcganTrainer(params, TrainingImages(images, None))
    keras.utils.set_random_seed(0)
    parent.build().fit(parent.batches(0), steps_per_epoch=2, epochs=1, verbose=0)
    child = DcganTrainer(params, TrainingImages(images, None))
    keras.utils.set_random_seed(1)
    child.build()
    assert child.start_from(encode_checkpoint(parent.weights(), 2)) == "G and D"
    for network in ("generator", "averaged", "discriminator"):
        assert _same(getattr(child.gan, network).weights, getattr(parent.gan, network).weights)
    old_file = encode_checkpoint({"g": parent.gan.averaged.weights}, 2)
    fresh = DcganTrainer(params, TrainingImages(images, None))
    fresh.build()
    assert "D starts afresh" in fresh.start_from(old_file)
    assert _same(fresh.gan.generator.weights, parent.gan.averaged.weights)
    assert not _same(fresh.gan.discriminator.weights, parent.gan.discriminator.weights)
