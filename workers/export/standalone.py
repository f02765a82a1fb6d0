"""Generate from an Atelier export with TensorFlow (Keras 3) and NumPy only.

This file is ``generate.py`` in every export bundle. It needs no Atelier, no keras-hub and
no tokenizer library: run it beside the bundle's other files, or import it and call
``load`` then ``images``, ``texts`` or ``tunes``::

    python generate.py --seed 7 -n 8              # dcgan: images.npy and PNGs in ./samples
    python generate.py --prompt "The fox" -n 2    # textgen: texts on stdout
    python generate.py -n 2                       # melody: ABC tunes on stdout

It loads ``model.keras`` (``keras.saving.load_model``) or, in a ``savedmodel`` bundle,
``saved_model/`` (``tf.saved_model.load``, its ``serving_default`` signature). The
sampler is plain temperature and top-k sampling, one full forward pass per new token
(no key/value cache): Atelier's own extras (nucleus sampling, an n-gram mixture, the
melody meter guard) are not part of an export.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
# GPT-2's split of text into words before byte-pair merges (the ``tokenizers`` library's
# ByteLevel pre-tokenizer), with the standard library's classes for \p{L} and \p{N}.
WORDS = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
BAR_LINES = ("|", "||", "|]", "|:", ":|", "::")


class Network:
    """The exported network as one function of NumPy arrays, from either format."""

    def __init__(self, root: Path = HERE) -> None:
        self.root = root
        self.manifest: dict[str, Any] = json.loads((root / "atelier.json").read_text())
        self.kind: str = self.manifest["kind"]
        if (root / "model.keras").exists():
            import keras

            model = keras.saving.load_model(root / "model.keras")
            self._call: Callable[..., Any] = lambda *xs: model(
                list(xs) if len(xs) > 1 else xs[0], training=False
            )
        else:
            import tensorflow as tf

            serve = tf.saved_model.load(str(root / "saved_model")).signatures["serving_default"]
            names = self.manifest["inputs"]

            def call(*xs: Any) -> Any:
                outputs = serve(**{n: tf.constant(x) for n, x in zip(names, xs, strict=True)})
                return next(iter(outputs.values()))

            self._call = call

    def __call__(self, *inputs: Any) -> Any:
        return np.asarray(self._call(*inputs))


def load(root: Path = HERE) -> Network:
    return Network(root)


# --- dcgan -------------------------------------------------------------------------------------
def images(net: Network, n: int, seed: int = 0, labels: Sequence[int] = ()) -> Any:
    """``n`` uint8 images (n, size, size, channels), as Atelier draws them for ``seed``:
    the same noise, and each image's class ``labels`` in turn (default: every class)."""
    m = net.manifest
    z = np.random.default_rng(seed).standard_normal((n, m["latent_dim"])).astype(np.float32)
    if m["classes"]:
        order = np.asarray(list(labels) or range(m["classes"]), dtype=np.int32)
        pixels = net(z, order[np.arange(n) % len(order)])
    else:
        pixels = net(z)
    return np.clip((pixels + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def class_index(manifest: dict[str, Any], label: str) -> int:
    """A class by its index (a number) or its name (the dataset's, in ``class_names``)."""
    if label.strip().isdigit():
        return int(label)
    names = list(manifest.get("class_names") or [])
    if label not in names:
        raise SystemExit(f"no class {label!r}: the classes are {names or 'unnamed'}")
    return names.index(label)


# --- textgen and melody: a causal language model -----------------------------------------------
def next_token_logits(net: Network, ids: Sequence[int]) -> Any:
    """The logits of the token after ``ids`` (the last context's worth of them)."""
    window = list(ids)[-int(net.manifest["sequence_length"]) :]
    return net(np.asarray([window], dtype=np.int32))[0, -1]


def sample(
    net: Network,
    prompt: Sequence[int],
    max_new: int,
    rng: np.random.Generator,
    temperature: float = 0.8,
    top_k: int = 10,
    stop: int | None = None,
) -> list[int]:
    """Up to ``max_new`` token ids after ``prompt`` (ending early at ``stop``);
    ``temperature`` 0 picks the likeliest token each time."""
    ids = list(prompt)
    for _ in range(max_new):
        logits = next_token_logits(net, ids).astype(np.float64)
        if temperature == 0:
            token = int(np.argmax(logits))
        else:
            if 0 < top_k < len(logits):
                logits[logits < np.sort(logits)[-top_k]] = -np.inf
            weights = np.exp((logits - logits.max()) / temperature)
            token = int(rng.choice(len(weights), p=weights / weights.sum()))
        ids.append(token)
        if token == stop:
            break
    return ids[len(prompt) :]


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte value (what byte-level tokens are made of)."""
    kept = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in kept]
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + i) for i, b in enumerate(others)}}


class Tokenizer:
    """Text ↔ ids: one id per UTF-8 byte, or the byte-pair vocabulary of ``tokenizer.json``."""

    def __init__(self, root: Path = HERE) -> None:
        path = root / "tokenizer.json"
        self.vocab: dict[str, int] = {}
        self.ranks: dict[tuple[str, str], int] = {}
        if path.exists():
            model = json.loads(path.read_text())["model"]
            self.vocab = model["vocab"]
            pairs = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
            self.ranks = {(a, b): rank for rank, (a, b) in enumerate(pairs)}
        self.tokens = {i: t for t, i in self.vocab.items()}

    def encode(self, text: str) -> list[int]:
        if not self.vocab:
            return list(text.encode("utf-8"))
        alphabet = byte_alphabet()
        ids: list[int] = []
        for word in WORDS.findall(text):
            symbols = [alphabet[b] for b in word.encode("utf-8")]
            ids.extend(self.vocab[s] for s in self._merged(symbols))
        return ids

    def _merged(self, symbols: list[str]) -> list[str]:
        """Apply the merges, best ranked first, until none applies."""
        while len(symbols) > 1:
            never = len(self.ranks)
            pairs = enumerate(itertools.pairwise(symbols))
            ranked = [(self.ranks.get(pair, never), i) for i, pair in pairs]
            rank, i = min(ranked)
            if rank == never:
                break
            symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        return symbols

    def decode(self, ids: Sequence[int]) -> str:
        if not self.vocab:
            return bytes(int(i) for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
        values = {c: b for b, c in byte_alphabet().items()}
        text = "".join(self.tokens.get(int(i), "") for i in ids)
        return bytes(values[c] for c in text if c in values).decode("utf-8", errors="replace")


def texts(net: Network, prompt: str, n: int = 1, max_new: int = 200, seed: int = 0) -> list[str]:
    """``n`` continuations of ``prompt`` (textgen)."""
    tokenizer = Tokenizer(net.root)
    rng = np.random.default_rng(seed)
    prompt_ids = tokenizer.encode(prompt) or [0]
    return [prompt + tokenizer.decode(sample(net, prompt_ids, max_new, rng)) for _ in range(n)]


def tunes(net: Network, n: int = 1, max_new: int = 256, seed: int = 0) -> list[str]:
    """``n`` tunes as ABC text (melody), each started with the commonest header of the
    training tunes."""
    vocabulary = json.loads((net.root / "vocabulary.json").read_text())
    tokens: list[str] = vocabulary["tokens"]
    ids = {t: i for i, t in enumerate(tokens)}
    header = list(vocabulary["headers"][0][0]) if vocabulary["headers"] else []
    prompt = [ids[net.manifest["start"]], *(ids[t] for t in header)]
    rng = np.random.default_rng(seed)
    written = []
    for number in range(1, n + 1):
        new = sample(net, prompt, max_new, rng, stop=ids[net.manifest["end"]])
        body = [tokens[i] for i in new if i > 2 and tokens[i][:2] not in {"M:", "L:", "R:", "K:"}]
        written.append(abc_text(number, header, body))
    return written


def abc_text(number: int, header: list[str], body: list[str]) -> str:
    notes = "".join(f"{t} " if t in BAR_LINES else t for t in body).strip()
    return "\n".join([f"X:{number}", *header, notes]) + "\n"


# --- the command line --------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=4, help="images, texts or tunes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--labels", default="", help="dcgan: classes in turn, by index or name: 3,7 or cats,dogs"
    )
    parser.add_argument("--prompt", default="", help="textgen: the text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("samples"), help="dcgan: where to")
    args = parser.parse_args(argv)
    net = load()
    if net.kind == "dcgan":
        labels = [class_index(net.manifest, x) for x in args.labels.split(",") if x]
        drawn = images(net, args.n, args.seed, labels)
        write_images(drawn, args.out)
        print(f"{len(drawn)} images {drawn.shape[1:]} in {args.out}/")
    elif net.kind == "textgen":
        for text in texts(net, args.prompt, args.n, args.max_new_tokens, args.seed):
            print(text, end="\n---\n")
    else:
        print("\n".join(tunes(net, args.n, args.max_new_tokens, args.seed)))


def write_images(pixels: Any, out: Path) -> None:
    import tensorflow as tf

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", pixels)
    for index, image in enumerate(pixels):
        (out / f"{index:04d}.png").write_bytes(tf.io.encode_png(image).numpy())


if __name__ == "__main__":
    main()
