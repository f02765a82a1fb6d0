"""The part of a training run every causal-LM kind shares (``workers.training`` runs the
loop): the network built and compiled, batches of random windows over the training
tokens, what a checkpoint and the weights file hold."""

from __future__ import annotations

from typing import Any, TypeVar

import keras
import numpy as np

from ....shared.kinds.base import TrainParams
from ...checkpoints import restore_checkpoint
from ...training import Groups, Trainer
from .network import (
    JitCompile,
    LanguageModelConfig,
    WarmupCosine,
    build_language_model,
    compile_for_training,
    training_windows,
)

P = TypeVar("P", bound=TrainParams)
D = TypeVar("D")


class CausalLmTrainer(Trainer[P, D]):
    """A kind's ``build`` prepares its tokens and calls ``build_network``; the rest is
    here."""

    lm: keras.Model
    network: LanguageModelConfig
    train_tokens: np.ndarray
    """The training tokens end to end, which the windows are cut from."""
    batch_size: int

    def build_network(
        self,
        network: LanguageModelConfig,
        tokens: np.ndarray,
        batch_size: int,
        schedule: WarmupCosine,
        jit_compile: JitCompile = "auto",
    ) -> keras.Model:
        """The network of ``network``'s shape, compiled on ``schedule``, to be trained on
        windows of ``tokens``."""
        self.network, self.train_tokens, self.batch_size = network, tokens, batch_size
        self.preparation.phase("building the model", 1, "models")  # after the tokens' phases
        self.lm = build_language_model(network)
        compile_for_training(self.lm, schedule, jit_compile=jit_compile)
        return self.lm

    def batches(self, start_step: int) -> Any:
        # A resumed run sees a different order of windows, not a replay of the first.
        seed = self.params.seed + start_step
        length = self.network.sequence_length
        return training_windows(self.train_tokens, length, self.batch_size, seed)

    def state(self) -> Groups:
        return {"lm": self.lm.weights, "opt": self.lm.optimizer.variables}

    def build_optimizers(self) -> None:
        self.lm.optimizer.build(self.lm.trainable_variables)

    def weights(self) -> Groups:
        return {"lm": self.lm.weights}

    def start_from(self, weights: bytes) -> str:
        """The network's weights (a model's n-gram is not: it is counted from this run's
        own corpus); the optimizer and its schedule start afresh."""
        restore_checkpoint({"lm": self.lm.weights}, weights)
        return "the network's weights"
