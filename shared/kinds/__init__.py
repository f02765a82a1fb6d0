"""The table of model kinds. The API validates params with it; the worker dispatches on it.

A kind is two slices. Its TF-free half is a module or package here (``dcgan``, ``textgen``,
``melody/``): parameter schemas, estimates, submit-time checks, ingest rules, and ``KIND``,
its row in this table (pure pydantic, cheap to import). Its worker half is a package under
``workers/kinds/``, named by ``KIND.implementation`` and loaded only inside a worker
process, so neither the API nor a Celery parent ever imports TensorFlow. What two kinds
share is written once beneath them (``base``, ``causal_lm``).
"""

from __future__ import annotations

import importlib

from . import dcgan, melody, textgen
from .base import Estimator as Estimator
from .base import KindSpec as KindSpec
from .base import StrictParams as StrictParams
from .base import TrainParams as TrainParams
from .dcgan import DcganGenerateParams as DcganGenerateParams
from .dcgan import DcganTrainParams as DcganTrainParams
from .textgen import TextgenGenerateParams as TextgenGenerateParams
from .textgen import TextgenTrainParams as TextgenTrainParams
from .textgen import estimate_textgen_train as estimate_textgen_train

KINDS: dict[str, KindSpec] = {spec.name: spec for spec in (dcgan.KIND, textgen.KIND, melody.KIND)}


def load_kind_plugins(names: str) -> None:
    """Add the kinds named by ``module:ATTRIBUTE`` (comma-separated ``KindSpec`` objects,
    the ``kind_plugins`` setting) to the table. The API and every worker call this at start,
    so both validate and dispatch the same kinds."""
    for name in filter(None, (n.strip() for n in names.split(","))):
        module_name, _, attribute = name.partition(":")
        spec = getattr(importlib.import_module(module_name), attribute or "KIND")
        if not isinstance(spec, KindSpec):
            raise TypeError(f"kind plugin {name!r} is a {type(spec).__name__}, not a KindSpec")
        KINDS[spec.name] = spec
