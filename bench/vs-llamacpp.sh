#!/usr/bin/env bash
# Compare lav against llama.cpp (llama-cpp-python) on SmolLM2-135M-Instruct.
#
# Usage: bench/vs-llamacpp.sh [--threads N]
#
# Environment:
#   LAV_LLAMACPP_VENV  venv holding llama-cpp-python (default: $HOME/.cache/lav/llamacpp-venv);
#                      created and populated with llama-cpp-python==0.3.36 if missing.
#   LAV_BIN            command used to run lav; may be a full command line
#                      (default: "cargo run --profile fast -q -p lav-cli --", run from the repo root).
#   LAV_GGUF           GGUF path override (default: output of "$LAV_BIN models path smollm2-135m-instruct").
set -euo pipefail

LLAMACPP_PY_VERSION=0.3.36
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

THREADS=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --threads=*) THREADS="${1#*=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

VENV="${LAV_LLAMACPP_VENV:-$HOME/.cache/lav/llamacpp-venv}"
PY="$VENV/bin/python"
if ! [[ -x "$PY" ]] || ! "$PY" -c "import llama_cpp" 2>/dev/null; then
    echo "note: installing llama-cpp-python==$LLAMACPP_PY_VERSION into $VENV" >&2
    echo "note: it builds llama.cpp from source; this takes ~8 minutes on 2 cores" >&2
    mkdir -p "$(dirname "$VENV")"
    [[ -x "$PY" ]] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    # A native build on a CPU that reports AMX can die with an illegal instruction
    # in a VM: build for the listed features only there.
    if grep -qw amx_tile /proc/cpuinfo; then
        export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    fi
    echo "note: CMAKE_ARGS=${CMAKE_ARGS:-(none: a native build)}" >&2
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$PY" -m pip install --no-cache-dir "llama-cpp-python==$LLAMACPP_PY_VERSION"
fi
# What the build uses (its CPU features), for docs/benchmarks.md.
"$PY" -c "import llama_cpp; print('llama.cpp:', llama_cpp.llama_print_system_info().decode())" >&2

read -r -a LAV_CMD <<< "${LAV_BIN:-cargo run --profile fast -q -p lav-cli --}"

if [[ -n "${LAV_GGUF:-}" ]]; then
    GGUF="$LAV_GGUF"
else
    GGUF="$("${LAV_CMD[@]}" models path smollm2-135m-instruct | tail -n 1)"
fi
if [[ ! -f "$GGUF" ]]; then
    echo "error: GGUF not found: '$GGUF' (set LAV_GGUF)" >&2
    exit 1
fi
echo "model:   $GGUF" >&2
echo "threads: $THREADS" >&2

echo "running llama.cpp bench..." >&2
LLAMA_JSON="$("$PY" bench/llamacpp_bench.py --model "$GGUF" --threads "$THREADS" --json)"
echo "running lav bench (default: f32 activations)..." >&2
LAV_JSON="$("${LAV_CMD[@]}" bench --threads "$THREADS" --json)"
echo "running lav bench --activations q8 (llama.cpp-style 8-bit activations)..." >&2
LAV_Q8_JSON="$("${LAV_CMD[@]}" --activations q8 bench --threads "$THREADS" --json)"

python3 - "$LLAMA_JSON" "$LAV_JSON" "$LAV_Q8_JSON" "$THREADS" <<'PYEOF'
import json, sys

def last_json(s):
    for line in reversed(s.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return json.loads(s)

llama = last_json(sys.argv[1])
paths = (("f32 act.", last_json(sys.argv[2])), ("q8 act.", last_json(sys.argv[3])))
threads = sys.argv[4]
print(f"SmolLM2-135M-Instruct Q4_1, {threads} thread(s)")
print(f"{'metric':<10} {'lav path':<10} {'lav tok/s':>10} {'llama.cpp tok/s':>16} {'lav/llama.cpp':>14}")
for key, name in (("prefill_tok_s", "prefill"), ("decode_tok_s", "decode")):
    b = float(llama[key])
    for label, lav in paths:
        a = float(lav[key])
        ratio = a / b if b else float("nan")
        print(f"{name:<10} {label:<10} {a:>10.1f} {b:>16.1f} {ratio:>13.2f}x")
for label, lav in paths:
    if "greedy_ids" in llama and "greedy_ids" in lav:
        ours, theirs = list(lav["greedy_ids"]), list(llama["greedy_ids"])
        same = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        print(f"{label}: the first {same} of {len(theirs)} greedy ids equal llama.cpp's")
PYEOF
