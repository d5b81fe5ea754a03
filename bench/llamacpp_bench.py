#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) throughput reference for SmolLM2-135M-Instruct.

    python bench/llamacpp_bench.py --model PATH [--threads N] [--json]

prefill: 256 deterministic token ids (a repeated English paragraph, tokenized
and truncated to 256), n_batch=512 so it is a single batch; one warm-up eval,
then one timed llm.eval(ids) on a reset context.
decode: robot chat prompt (no system message), then 64 greedy (argmax) tokens;
only the 64 single-token evals are timed (argmax is done outside the timer).
logits_all=False so prefill only computes the output head for the last token.
"""
import argparse
import json
import sys
import time

import numpy as np
import llama_cpp

PARAGRAPH = (
    "The history of computing is a story of people trying to make machines do "
    "useful work faster and more reliably. Early mechanical calculators gave way "
    "to electronic computers, which in turn became smaller, cheaper and more "
    "powerful with every passing decade. Today a single phone holds more "
    "processing power than the rooms full of equipment used in the first space "
    "missions, and language models run on ordinary laptops. "
)
ROBOT = "Write a short story about a robot learning to paint."
TEMPLATE = "<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"
N_PREFILL = 256
N_DECODE = 64


def last_logits(llm):
    # logits_all=False: llama-cpp-python 0.3.x no longer copies logits into
    # llm.scores, so read the last output row straight from the context.
    ptr = llm._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print only a JSON object")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed prefill runs (best is reported)")
    args = ap.parse_args()

    llm = llama_cpp.Llama(model_path=args.model, n_ctx=2048, n_batch=512, n_ubatch=512,
                          n_threads=args.threads, n_threads_batch=args.threads,
                          logits_all=False, verbose=False)

    # ---- prefill ----
    ids = llm.tokenize((PARAGRAPH * 8).encode("utf-8"), add_bos=False, special=False)
    assert len(ids) >= N_PREFILL, len(ids)
    ids = ids[:N_PREFILL]
    llm.reset()
    llm.eval(ids)  # warm-up
    best = float("inf")
    for _ in range(max(1, args.repeats)):
        llm.reset()  # eval() drops KV entries from n_tokens onward
        t0 = time.perf_counter()
        llm.eval(ids)
        best = min(best, time.perf_counter() - t0)
    prefill_tok_s = N_PREFILL / best

    # ---- decode ----
    prompt = llm.tokenize(TEMPLATE.format(message=ROBOT).encode("utf-8"),
                          add_bos=False, special=True)
    llm.reset()
    llm.eval(prompt)
    greedy = []
    elapsed = 0.0
    for _ in range(N_DECODE):
        logits = last_logits(llm)
        nxt = int(np.argmax(logits))
        greedy.append(nxt)
        t0 = time.perf_counter()
        llm.eval([nxt])
        elapsed += time.perf_counter() - t0
    decode_tok_s = N_DECODE / elapsed

    res = {
        "engine": "llama.cpp",
        "llama_cpp_python": llama_cpp.__version__,
        "threads": args.threads,
        "prefill_tokens": N_PREFILL,
        "prefill_tok_s": round(prefill_tok_s, 2),
        "decode_tokens": N_DECODE,
        "decode_tok_s": round(decode_tok_s, 2),
        "prompt_tokens": len(prompt),
        "greedy_ids": greedy[:6],
    }
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>18}: {v}")


if __name__ == "__main__":
    sys.exit(main())
