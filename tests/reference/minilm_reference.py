#!/usr/bin/env python3
"""Golden sentence embeddings for all-MiniLM-L6-v2, from an independent float64 pass.

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3
    /tmp/refvenv/bin/python tests/reference/minilm_reference.py \
        [--model ~/.cache/lav/models/minilm-l6-v2] [--out tests/golden/minilm.json]

sentence-transformers computes an all-MiniLM-L6-v2 embedding as BERT (6 layers, 12
heads, GELU), then the mean of the token vectors, then L2 normalisation. This script
does exactly that in numpy float64 from the model's own safetensors, sharing no code
with lav (only the tokenizer file, read by Hugging Face's `tokenizers`). The torch
wheels sentence-transformers needs were not reachable from the machine that generated
the golden file, hence this second implementation of its pipeline.
"""
import argparse
import hashlib
import json
import math
import os

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.expanduser("~/.cache/lav/models/minilm-l6-v2")
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "minilm.json")

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming an acoustic guitar on stage.",
    "The central bank raised interest rates again this quarter.",
    "How do I reset my password?",
    "I forgot my login credentials and cannot sign in.",
    "Order 1003 shipped on Tuesday.",
]
erf = np.vectorize(math.erf)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def layer_norm(x, g, b, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def embed(w, cfg, ids):
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids]
    x = x + w["embeddings.position_embeddings.weight"][:n]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    heads = cfg["num_attention_heads"]
    hd = x.shape[1] // heads
    lin = lambda v, name: v @ w[name + ".weight"].T + w[name + ".bias"]
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        q = lin(x, p + "attention.self.query").reshape(n, heads, hd)
        k = lin(x, p + "attention.self.key").reshape(n, heads, hd)
        v = lin(x, p + "attention.self.value").reshape(n, heads, hd)
        s = np.einsum("ihd,jhd->hij", q, k) / math.sqrt(hd)
        a = np.exp(s - s.max(axis=-1, keepdims=True))
        a /= a.sum(axis=-1, keepdims=True)
        ctx = np.einsum("hij,jhd->ihd", a, v).reshape(n, heads * hd)
        x = layer_norm(x + lin(ctx, p + "attention.output.dense"),
                       w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(x + lin(h, p + "output.dense"),
                       w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    e = x.mean(axis=0)
    return e / np.linalg.norm(e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args()
    st = os.path.join(a.model, "model.safetensors")
    raw = load_file(st)
    w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in raw.items()}
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    # The file pads to 128; one sentence at a time needs no padding, so the mean is
    # over the sentence's own tokens, as sentence-transformers' attention mask makes it.
    tok.no_padding()
    embs = []
    for s in SENTENCES:
        ids = tok.encode(s).ids
        embs.append(embed(w, cfg, ids))
    cos = [[float(f"{float(x @ y):.9g}") for y in embs] for x in embs]
    doc = {
        "model_sha256": sha256(st),
        "generator": "tests/reference/minilm_reference.py (numpy float64)",
        "sentences": SENTENCES,
        "cosine": cos,
        "first_dims": [[float(f"{v:.9g}") for v in e[:16]] for e in embs],
    }
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for i, s in enumerate(SENTENCES):
        print(f"{cos[0][i]:.4f}  {s}")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
