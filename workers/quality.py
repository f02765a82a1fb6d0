"""Is a digits GAN drawing digits? A classifier trained on the real 8x8 digits reads
generated 28x28 images scaled back down to 8x8 and says which digit each one is.

This is the honest check behind "recognisable digits of all ten classes": it reports how
many classes appear among confidently classified samples, how evenly, and how far the
classifier's view of the samples is from its view of real digits (a Fréchet distance
between Gaussians fitted to its ten class scores, as FID does with Inception features),
not a loss value. Each figure has the real digits' own beside it (``real_digits_report``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image
from pydantic import BaseModel


class DigitReport(BaseModel):
    samples: int
    confident_fraction: float
    """Share of samples the classifier labels with probability ≥ the threshold."""
    classes_seen: int
    """Distinct digits among the confident samples (10 is every class)."""
    class_counts: dict[int, int]
    rarest_class_share: float
    """The rarest digit's share of the confident samples over uniform's (1.0: even; 0.5:
    half as frequent as a uniform tenth)."""
    frechet_distance: float
    """Between the classifier's class scores of these images and of the real digits."""
    agreement: float | None = None
    """Share of the confident samples read as the class they were drawn as (for real
    digits: their label); None when the images were drawn without a class."""


@cache
def _classifier() -> object:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    # ~97% cross-validated accuracy on real digits; features are scaled to 0..1.
    return LogisticRegression(max_iter=5000, C=1.0).fit(digits.data / 16.0, digits.target)


def _scores(features: np.ndarray) -> np.ndarray:
    scores: np.ndarray = _classifier().decision_function(features)  # type: ignore[attr-defined]
    return scores


@cache
def _real_statistics() -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the classifier's scores of the real digits, as a job trains on
    them (upscaled to 28 px) and read back through the same downscaling."""
    return _gaussian(_scores(downscale_to_digits(_real_images()) / 16.0))


def _real_images() -> np.ndarray:
    from .datasets import load_builtin

    return load_builtin("digits")


def _gaussian(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return scores.mean(axis=0), np.cov(scores, rowvar=False)


def frechet_distance(scores: np.ndarray) -> float:
    """||μ1 - μ2||² + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½) against the real digits' scores."""
    from scipy import linalg

    mean, cov = _gaussian(scores)
    real_mean, real_cov = _real_statistics()
    root = linalg.sqrtm(cov @ real_cov).real
    return float(np.sum((mean - real_mean) ** 2) + np.trace(cov + real_cov - 2 * root))


def downscale_to_digits(images: np.ndarray) -> np.ndarray:
    """[-1, 1] (n, 28, 28, 1) → sklearn's (n, 64) features in 0..16."""
    pixels = np.clip((images[..., 0] + 1.0) * 127.5, 0, 255).astype(np.uint8)
    small = np.stack(
        [
            np.asarray(Image.fromarray(p).resize((8, 8), Image.Resampling.BOX), dtype=np.float32)
            for p in pixels
        ]
    )
    return (small / 255.0 * 16.0).reshape(len(images), 64)


def digit_report(
    images: np.ndarray, drawn_as: np.ndarray | None = None, threshold: float = 0.7
) -> DigitReport:
    """The figures for ``images``; ``drawn_as``: the class each was asked to be, if any."""
    model = _classifier()
    features = downscale_to_digits(images) / 16.0
    probabilities = model.predict_proba(features)  # type: ignore[attr-defined]
    confident = probabilities.max(axis=1) >= threshold
    labels = probabilities.argmax(axis=1)[confident]
    counts = {int(d): int((labels == d).sum()) for d in range(10)}
    agreement = None
    if drawn_as is not None and confident.any():
        agreement = float((labels == np.asarray(drawn_as)[confident]).mean())
    return DigitReport(
        samples=len(images),
        confident_fraction=float(confident.mean()),
        classes_seen=sum(1 for n in counts.values() if n > 0),
        class_counts=counts,
        rarest_class_share=min(counts.values()) * 10 / max(int(confident.sum()), 1),
        frechet_distance=frechet_distance(_scores(features)),
        agreement=agreement,
    )


def real_digits_report(samples: int = 1000, seed: int = 0) -> DigitReport:
    """The same figures for ``samples`` real digits: what a perfect generator would score
    (its Fréchet distance is the floor a sample of that size reaches, not zero)."""
    from .datasets import digit_labels

    images = _real_images()
    chosen = np.random.default_rng(seed).choice(len(images), samples, replace=False)
    return digit_report(images[chosen], digit_labels()[chosen])
