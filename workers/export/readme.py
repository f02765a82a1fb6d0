"""The README.md of an export bundle: what is in it and how to generate outside Atelier."""

from __future__ import annotations

from typing import Any

LOADING = {
    "keras": """```python
import keras
model = keras.saving.load_model("model.keras")   # built-in Keras layers only
```""",
    "savedmodel": """```python
import tensorflow as tf
serve = tf.saved_model.load("saved_model").signatures["serving_default"]
```

The same signature serves from TF Serving
(`docker run -p 8501:8501 -v $PWD/saved_model:/models/m/1 -e MODEL_NAME=m tensorflow/serving`);
it answers one tensor, `output_0`.""",
}

USAGE = {
    "dcgan": """The generator: `z` (n, {latent_dim}) float32 standard-normal noise{label_doc} →
images (n, {image_size}, {image_size}, {channels}) in [-1, 1]. Atelier draws `z` for a seed
as `numpy.random.default_rng(seed).standard_normal((n, {latent_dim}))`, so the same seed
gives the same images here:

```python
import numpy as np
z = np.random.default_rng(7).standard_normal((16, {latent_dim})).astype("float32")
{call}
pixels = np.clip((images + 1) * 127.5 + 0.5, 0, 255).astype("uint8")
```""",
    "textgen": """A causal language model: `token_ids` (batch, length ≤ {sequence_length}) int32 →
next-token logits (batch, length, {vocabulary_size}). The tokenizer is {tokenizer_doc}
`generate.py` encodes and decodes it in plain Python. One step of greedy decoding:

```python
import numpy as np
ids = [...]                                   # the prompt's token ids
logits = {call_lm}
ids.append(int(np.argmax(logits[0, -1])))     # repeat; sample from softmax(logits / T)
```""",
    "melody": """A causal language model over ABC tokens: `token_ids` (batch, length ≤
{sequence_length}) int32 → next-token logits (batch, length, {vocabulary_size}).
`vocabulary.json` holds the tokens by id (`{start}` starts a tune, `{end}` ends it) and the
training tunes' headers (`M:`, `L:`, `R:`, `K:` tokens), commonest first. Prompt with
`{start}` and a header's tokens, sample until `{end}`, and write the header tokens as lines
and the body tokens one after another to get ABC:

```python
import json
vocabulary = json.load(open("vocabulary.json"))
vocab, header = vocabulary["tokens"], vocabulary["headers"][0][0]
ids = [vocab.index("{start}"), *(vocab.index(t) for t in header)]
logits = {call_lm}
```""",
}


def readme(manifest: dict[str, Any], extra_files: list[str]) -> str:
    kind = manifest["kind"]
    title = manifest["name"] and f"{manifest['name']} v{manifest['version']}"
    prompt = " --prompt 'Once upon a time'" if kind == "textgen" else ""
    network = manifest["file"] + ("/" if manifest["format"] == "savedmodel" else "")
    header = f"""# {title or manifest["model_id"]}: an Atelier `{kind}` model

Exported from Atelier: model `{manifest["model_id"]}`, {manifest["steps"]} training steps on
`{manifest["dataset"]}`. Nothing here needs Atelier: TensorFlow 2.16+ (Keras 3) and NumPy
are enough.

Files: {_files([network, "atelier.json", *extra_files, "generate.py", "README.md"])}.
`atelier.json` says what the model is; `generate.py` is plain Python that generates from it.

## Generate

```
python generate.py -n 4 --seed 7{prompt}
```

`python generate.py --help` lists the options. `generate.py` samples with temperature and
top-k; Atelier's own extras (an n-gram mixture, nucleus sampling, the melody meter guard)
are not part of an export.

## Load it yourself

"""
    return header + LOADING[manifest["format"]] + "\n\n" + _usage(manifest) + "\n"


def _files(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _usage(manifest: dict[str, Any]) -> str:
    keras_format = manifest["format"] == "keras"
    conditional = bool(manifest.get("classes"))
    label = "np.arange(16, dtype='int32') % {}".format(manifest.get("classes"))
    if keras_format:
        call = f"images = model([z, {label}])" if conditional else "images = model(z)"
        call_lm = 'model(np.array([ids], dtype="int32"))'
    else:
        given = f", label=tf.constant({label})" if conditional else ""
        call = f'images = serve(z=tf.constant(z){given})["output_0"].numpy()'
        call_lm = 'serve(token_ids=tf.constant([ids], dtype="int32"))["output_0"].numpy()'
    tokenizer_doc = (
        "a byte-level byte-pair vocabulary in `tokenizer.json` (Hugging Face `tokenizers` "
        "reads it: `Tokenizer.from_file`);"
        if manifest.get("tokenizer") == "byte-pair"
        else "one token per UTF-8 byte (`list(text.encode())`);"
    )
    named = (
        "; their names, class 0 first, are `class_names` in `atelier.json`, and "
        "`generate.py --labels` takes them"
        if manifest.get("class_names")
        else ""
    )
    label_doc = (
        f" and `label` (n,) int32, the class of each image (0-{manifest['classes'] - 1}{named})"
        if conditional
        else ""
    )
    return USAGE[manifest["kind"]].format(
        **manifest, call=call, call_lm=call_lm, tokenizer_doc=tokenizer_doc, label_doc=label_doc
    )
