#!/usr/bin/env python3
"""An independent forward pass of SmolLM2-135M-Instruct in float64 over the stored
GGUF: the golden data for lav's exactness tests (tests/exact.rs).

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install numpy==2.4.6 gguf==0.19.0
    /tmp/refvenv/bin/python tests/reference/f64_forward.py --lav PATH/TO/lav \
        [--model PATH.gguf] [--out tests/golden/f64_forward.json]

It shares no code with lav:
- The weights are read with the `gguf` package and dequantized here, block by block,
  in float64: a Q4_1 weight is d·q + m and a Q8_0 weight is d·q, with d and m the
  block's f16 scales, so every stored weight is exact.
- The forward pass is plain numpy in float64: RMSNorm, RoPE on adjacent pairs (the
  layout of llama GGUF files), grouped-query causal attention, SwiGLU, and the LM head
  tied to the embeddings.
- Only the token ids come from lav (`lav tokenize --json`); lav's tokenizer equals
  llama.cpp's on tests/golden/tokenizer_ids.json.

For each prompt it records the ids and the 20 most likely next tokens at the last
position with their log-probabilities; for the first two prompts also the last
position's residual stream after every layer, to 7 significant digits (the
activations the layer-by-layer test compares).
"""
import argparse
import hashlib
import json
import os
import subprocess

import numpy as np
from gguf import GGUFReader

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.expanduser(
    "~/.cache/lav/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
)
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "f64_forward.json")
TOP = 20

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
LONG = (
    "The history of computing is a story of layers. At the bottom sit transistors, "
    "switches that a voltage turns on or off. Above them, engineers built logic gates, "
    "then adders and memory cells, then whole processors that fetch an instruction, "
    "decode it, and execute it billions of times each second. Programmers rarely think "
    "about any of that. They write in languages that a compiler translates into those "
    "instructions, and they call libraries that other people wrote years before. Each "
    "layer hides the one beneath it, which is what makes the whole tower usable, and "
    "also what makes it hard to understand. When a program runs slowly, the cause may "
    "sit three layers down: a cache that keeps missing, a branch the processor keeps "
    "guessing wrong, or a memory bus that is simply full. Learning to look through the "
    "layers, to ask what the machine is really doing, is one of the most useful habits "
    "a programmer can build. Language models are no different. Beneath the chat window "
    "there is a tokenizer, a stack of attention and feed-forward blocks, a cache of keys "
    "and values, and a sampler that turns scores into words."
)
PROMPTS = [
    "Once upon a time, there was a",
    CHAT.format("What is the capital of France?"),
    "The quick brown fox jumps over the lazy dog. The dog",
    CHAT.format("Write a short story about a robot learning to paint."),
    "def fibonacci(n):\n    ",
    LONG,
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def f16(b):
    return np.frombuffer(np.ascontiguousarray(b).tobytes(), dtype="<f2").astype(np.float64)


def dequant(t):
    """A tensor as float64, rows = output features (ggml's ne1), columns = ne0."""
    kind = t.tensor_type.name
    cols = int(t.shape[0])
    rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
    raw = np.asarray(t.data)
    if kind == "F32":
        return raw.astype(np.float64).reshape(rows, cols) if rows > 1 else raw.astype(np.float64).reshape(cols)
    blocks = raw.reshape(-1).view(np.uint8)
    if kind == "Q4_1":
        b = blocks.reshape(-1, 20)
        d, m, qs = f16(b[:, 0:2]), f16(b[:, 2:4]), b[:, 4:20]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float64)
        w = d[:, None] * q + m[:, None]
    elif kind == "Q8_0":
        b = blocks.reshape(-1, 34)
        d = f16(b[:, 0:2])
        q = b[:, 2:34].view(np.int8).astype(np.float64)
        w = d[:, None] * q
    else:
        raise SystemExit(f"{t.name}: type {kind} is not handled here")
    return w.reshape(rows, cols)


def field(reader, name):
    f = reader.fields[name]
    return f.parts[f.data[0]][0]


def rms_norm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rope(x, base):
    """x: (n, heads, hd); rotates adjacent pairs (2i, 2i+1) by pos · base^(-2i/hd)."""
    n, _, hd = x.shape
    theta = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(n, dtype=np.float64)[:, None] * theta[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def load(path):
    r = GGUFReader(path)
    t = {x.name: x for x in r.tensors}
    cfg = {
        "layers": int(field(r, "llama.block_count")),
        "heads": int(field(r, "llama.attention.head_count")),
        "kv_heads": int(field(r, "llama.attention.head_count_kv")),
        "eps": float(field(r, "llama.attention.layer_norm_rms_epsilon")),
        "base": float(field(r, "llama.rope.freq_base")),
    }
    w = {"embd": dequant(t["token_embd.weight"]), "norm": dequant(t["output_norm.weight"])}
    w["head"] = dequant(t["output.weight"]) if "output.weight" in t else w["embd"]
    for l in range(cfg["layers"]):
        for k in ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                  "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]:
            w[f"{l}.{k}"] = dequant(t[f"blk.{l}.{k}.weight"])
    return cfg, w


def forward(cfg, w, ids):
    x = w["embd"][ids]
    n, d = x.shape
    h, kvh = cfg["heads"], cfg["kv_heads"]
    hd = d // h
    mask = np.triu(np.full((n, n), -np.inf), 1)
    layers = []
    for l in range(cfg["layers"]):
        a = rms_norm(x, w[f"{l}.attn_norm"], cfg["eps"])
        q = rope((a @ w[f"{l}.attn_q"].T).reshape(n, h, hd), cfg["base"])
        k = rope((a @ w[f"{l}.attn_k"].T).reshape(n, kvh, hd), cfg["base"])
        v = (a @ w[f"{l}.attn_v"].T).reshape(n, kvh, hd)
        out = np.empty((n, h, hd))
        for i in range(h):
            j = i // (h // kvh)
            s = q[:, i, :] @ k[:, j, :].T / np.sqrt(hd) + mask
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out[:, i, :] = p @ v[:, j, :]
        x = x + out.reshape(n, d) @ w[f"{l}.attn_output"].T
        f = rms_norm(x, w[f"{l}.ffn_norm"], cfg["eps"])
        g = f @ w[f"{l}.ffn_gate"].T
        x = x + ((g / (1.0 + np.exp(-g))) * (f @ w[f"{l}.ffn_up"].T)) @ w[f"{l}.ffn_down"].T
        layers.append(x[-1].copy())
    logits = rms_norm(x[-1], w["norm"], cfg["eps"]) @ w["head"].T
    m = logits.max()
    logp = logits - (m + np.log(np.exp(logits - m).sum()))
    return logp, layers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lav", required=True, help="the lav binary, for token ids only")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args()
    cfg, w = load(a.model)
    cases = []
    for k, text in enumerate(PROMPTS):
        out = subprocess.run([a.lav, "--model", a.model, "tokenize", "--json", text],
                             check=True, capture_output=True, text=True).stdout
        ids = json.loads(out)["ids"]
        logp, layers = forward(cfg, w, ids)
        top = np.argsort(-logp, kind="stable")[:TOP]
        case = {"text": text, "ids": ids, "top": [[int(i), float(logp[i])] for i in top]}
        if k < 2:
            case["layers"] = [[float(f"{v:.7g}") for v in x] for x in layers]
        cases.append(case)
        print(f"{len(ids):4} tokens  top {int(top[0])} ({logp[top[0]]:.4f})  {text[:40]!r}")
    doc = {
        "model_sha256": sha256(a.model),
        "generator": "tests/reference/f64_forward.py (numpy float64, gguf package)",
        "top": TOP,
        "cases": cases,
    }
    with open(a.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
