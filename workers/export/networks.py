"""Networks rebuilt from Keras's built-in layers, so that an export loads in a plain
TensorFlow install: no Atelier, no keras-hub, nothing registered as a custom object.

The DCGAN generator is built from built-in layers already (``build_generator``). The
causal language model is keras-hub's GPT-2 (``causal_lm.network``), whose layers
(``TransformerDecoder``, ``PositionEmbedding``, ``ReversibleEmbedding``) are keras-hub's
own classes: ``.keras`` files of it name them, and loading needs keras-hub. Here the same
computation is written with ``Embedding``, ``LayerNormalization``, ``MultiHeadAttention``
and ``Dense`` (and two ``keras.ops`` calls, which a ``.keras`` file records as built-in
operations), and the trained weights are copied across: the same logits to float32
rounding (``tests/test_export.py`` compares them).
"""

from __future__ import annotations

from typing import Any

import keras

EPSILON = 1e-5  # GPT-2's layer norm (keras-hub's GPT2Backbone)


def plain_language_model(lm: Any, name: str = "causal_lm") -> keras.Model:
    """``token_ids`` (batch, length ≤ the context; int32) → next-token logits (batch,
    length, vocabulary): keras-hub's ``GPT2CausalLM`` ``lm`` rebuilt from built-in layers,
    with its weights. Every position is a real token (no padding mask): a causal model's
    logits at a position depend only on the tokens up to it, so right padding is harmless."""
    backbone = lm.backbone
    vocabulary = int(backbone.vocabulary_size)
    hidden = int(backbone.hidden_dim)
    context = int(backbone.max_sequence_length)
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    # Positions 0..length-1 of each row, from the ids' own shape.
    positions = keras.ops.cumsum(keras.ops.ones_like(token_ids), axis=1) - 1
    token_embedding = keras.layers.Embedding(vocabulary, hidden, name="token_embedding")
    position_embedding = keras.layers.Embedding(context, hidden, name="position_embedding")
    x = keras.layers.Add(name="embeddings_add")(
        [token_embedding(token_ids), position_embedding(positions)]
    )
    blocks = []
    for index, source in enumerate(backbone.transformer_layers):
        block = _Block(source, index)
        x = block(x)
        blocks.append(block)
    final_norm = keras.layers.LayerNormalization(epsilon=EPSILON, name="layer_norm")
    # The output head is the token embedding reversed (tied weights): a Dense holding its
    # transpose.
    head = keras.layers.Dense(vocabulary, use_bias=False, name="logits")
    logits = head(final_norm(x))
    model = keras.Model(token_ids, logits, name=name)
    token_embedding.set_weights([_value(backbone.token_embedding.embeddings)])
    position_embedding.set_weights([_value(backbone.position_embedding.position_embeddings)])
    for block in blocks:
        block.copy_weights()
    final_norm.set_weights(backbone.layer_norm.get_weights())
    head.set_weights([_value(backbone.token_embedding.embeddings).T])
    return model


class _Block:
    """One pre-norm decoder block, as keras-hub's ``TransformerDecoder`` computes it with
    ``normalize_first=True`` (GPT-2): x + attention(norm(x)), then + feedforward(norm(x))."""

    def __init__(self, source: Any, index: int) -> None:
        self.source = source
        heads = int(source.num_heads)
        hidden = int(source._self_attention_layer.key_dim) * heads
        prefix = f"block_{index}"
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=EPSILON, name=f"{prefix}_attention_norm"
        )
        self.attention = keras.layers.MultiHeadAttention(
            heads, hidden // heads, name=f"{prefix}_attention"
        )
        self.feedforward_norm = keras.layers.LayerNormalization(
            epsilon=EPSILON, name=f"{prefix}_feedforward_norm"
        )
        self.intermediate = keras.layers.Dense(
            int(source.intermediate_dim), name=f"{prefix}_intermediate"
        )
        self.output = keras.layers.Dense(hidden, name=f"{prefix}_output")
        self.prefix = prefix

    def __call__(self, x: Any) -> Any:
        normed = self.attention_norm(x)
        attended = self.attention(normed, normed, use_causal_mask=True)
        x = keras.layers.Add(name=f"{self.prefix}_attention_add")([x, attended])
        # GPT-2's tanh approximation of GELU (keras-hub's ``gelu_approximate``).
        inner = keras.ops.gelu(self.intermediate(self.feedforward_norm(x)), approximate=True)
        return keras.layers.Add(name=f"{self.prefix}_feedforward_add")([x, self.output(inner)])

    def copy_weights(self) -> None:
        source = self.source
        self.attention_norm.set_weights(source._self_attention_layer_norm.get_weights())
        self.attention.set_weights(source._self_attention_layer.get_weights())
        self.feedforward_norm.set_weights(source._feedforward_layer_norm.get_weights())
        self.intermediate.set_weights(source._feedforward_intermediate_dense.get_weights())
        self.output.set_weights(source._feedforward_output_dense.get_weights())


def _value(variable: Any) -> Any:
    return keras.ops.convert_to_numpy(variable)
