"""GPU discovery without TensorFlow (for the worker launcher) and TF set-up inside the
process that runs models."""

from __future__ import annotations

import logging
import shutil
import subprocess

log = logging.getLogger(__name__)


def visible_gpus(setting: str) -> list[str]:
    """GPU indices for ``ATELIER_GPUS``: ``auto`` asks nvidia-smi, ``none`` means CPU."""
    if setting == "none":
        return []
    if setting != "auto":
        return [index.strip() for index in setting.split(",") if index.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]


def configure_tensorflow(mixed_precision: bool = False) -> bool:
    """Grow GPU memory on demand instead of grabbing it all at start (tensorflow #17048);
    switch on float16 compute when asked and a GPU is there. Returns whether it did."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: nothing to change
            log.debug("memory growth already fixed for %s", gpu)
    mixed = mixed_precision and bool(gpus)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    log.info("TensorFlow %s, GPUs: %s, mixed precision: %s", tf.__version__, gpus, mixed)
    return mixed


def gpu_memory_used() -> dict[str, int]:
    """Bytes in use per GPU, as TensorFlow sees them; empty on CPU hosts, and in processes
    that have not loaded TensorFlow (the check must never be what imports it)."""
    import sys

    if "tensorflow" not in sys.modules:
        return {}
    import tensorflow as tf

    used = {}
    for index, _ in enumerate(tf.config.list_logical_devices("GPU")):
        used[str(index)] = int(tf.config.experimental.get_memory_info(f"GPU:{index}")["current"])
    return used
