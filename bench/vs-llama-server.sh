#!/usr/bin/env bash
# lav serve against llama.cpp's own server on the same GGUF, the same threads and
# the same load: `lav load` drives both at concurrency 1, 4 and 8 and this prints
# throughput and P50/P99 TTFT side by side, with lav's ratio to llama-server.
#
# Usage: bench/vs-llama-server.sh [--threads N] [--duration S] [--levels "1 4 8"]
#
# llama-server is built from the llama.cpp sources vendored in the llama-cpp-python
# sdist (pip download --no-binary), with cmake from PyPI, once, into
# $LAV_LLAMA_SERVER_DIR (default: $HOME/.cache/lav/llama-server). On a CPU whose
# flags report AMX, a native build can die with "Illegal instruction" in a VM, so
# the build names its instruction sets: AVX2/FMA/F16C on (AVX-512 where the CPU
# reports it), AMX off. The flags are printed for docs/benchmarks.md.
#
# Environment:
#   LAV_BIN   command that runs lav (default: "cargo run --profile fast -q -p lav-cli --")
#   LAV_GGUF  GGUF path (default: `lav models path smollm2-135m-instruct`)
set -euo pipefail

LLAMACPP_PY_VERSION=0.3.36
CMAKE_VERSION=4.1.2
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

THREADS=2
DURATION=60
LEVELS="1 4 8"
PROMPT=128
OUTPUT=64
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --levels) LEVELS="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

DIR="${LAV_LLAMA_SERVER_DIR:-$HOME/.cache/lav/llama-server}"
SERVER="$DIR/build/bin/llama-server"
FLAGS=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
       -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON
       -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF)
if grep -qw avx512f /proc/cpuinfo; then FLAGS+=(-DGGML_AVX512=ON); else FLAGS+=(-DGGML_AVX512=OFF); fi
if [[ ! -x "$SERVER" ]]; then
    echo "note: building llama-server from llama-cpp-python==$LLAMACPP_PY_VERSION's vendored llama.cpp (minutes on 2 cores)" >&2
    mkdir -p "$DIR"
    [[ -x "$DIR/venv/bin/python" ]] || python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/python" -m pip install -q "cmake==$CMAKE_VERSION"
    rm -rf "$DIR/sdist" && mkdir -p "$DIR/sdist"
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python -d "$DIR/sdist" "llama-cpp-python==$LLAMACPP_PY_VERSION"
    tar -xzf "$DIR"/sdist/llama_cpp_python-*.tar.gz -C "$DIR/sdist"
    SRC="$(echo "$DIR"/sdist/llama_cpp_python-*/vendor/llama.cpp)"
    # The compiler's warnings go to a log; a failed build shows its end.
    { "$DIR/venv/bin/cmake" -S "$SRC" -B "$DIR/build" "${FLAGS[@]}" &&
      "$DIR/venv/bin/cmake" --build "$DIR/build" --target llama-server -j "$(nproc)"; } >"$DIR/build.log" 2>&1 ||
        { tail -n 30 "$DIR/build.log" >&2; echo "error: the llama-server build failed (log: $DIR/build.log)" >&2; exit 1; }
fi
echo "llama-server build flags: ${FLAGS[*]}" >&2

read -r -a LAV_CMD <<< "${LAV_BIN:-cargo run --profile fast -q -p lav-cli --}"
GGUF="${LAV_GGUF:-$("${LAV_CMD[@]}" models path smollm2-135m-instruct | tail -n 1)}"
[[ -f "$GGUF" ]] || { echo "error: GGUF not found: '$GGUF' (set LAV_GGUF)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {
    for _ in $(seq 1 300); do
        curl -sf "$1/health" >/dev/null 2>&1 && return 0
        python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]+'/health', timeout=1)" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "error: $1 never came up" >&2; exit 1
}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

OUT="$(mktemp -d)"
run_levels() { # name url
    for c in $LEVELS; do
        echo "  $1: concurrency $c for ${DURATION}s" >&2
        "${LAV_CMD[@]}" load --url "$2" --concurrency "$c" --duration "$DURATION" \
            --prompt-tokens "$PROMPT" --output-tokens "$OUTPUT" --out "$OUT/$1-$c.json" >/dev/null
    done
}

# Each server alone on the machine, one after the other.
P=$(free_port)
# Eight slots of 2048 positions each, as lav serve's default pool holds.
"$SERVER" -m "$GGUF" -t "$THREADS" -tb "$THREADS" --parallel 8 -c 16384 --host 127.0.0.1 --port "$P" \
    >"$OUT/llama-server.log" 2>&1 &
pids+=($!)
wait_up "http://127.0.0.1:$P"
run_levels llama-server "http://127.0.0.1:$P"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

for act in f32 q8; do
    P=$(free_port)
    "${LAV_CMD[@]}" --threads "$THREADS" --activations "$act" serve --addr "127.0.0.1:$P" --max-num-seqs 8 \
        >"$OUT/lav-$act.log" 2>&1 &
    pids+=($!)
    wait_up "http://127.0.0.1:$P"
    run_levels "lav-$act" "http://127.0.0.1:$P"
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done

python3 - "$OUT" "$LEVELS" "$THREADS" "$PROMPT" "$OUTPUT" <<'PYEOF'
import json, sys
out, levels, threads, prompt, output = sys.argv[1], sys.argv[2].split(), *sys.argv[3:]
def s(name, c):
    return json.load(open(f"{out}/{name}-{c}.json"))["points"][0]["summary"]
print(f"lav serve vs llama-server: {threads} threads, prompts {prompt} tokens, outputs {output} tokens (ignore_eos), greedy")
print(f"{'server':<14} {'conc':>4} {'tok/s':>7} {'TTFT p50':>9} {'TTFT p99':>9} {'TPOT p50':>9}   vs llama-server: tok/s, TTFT p50, TTFT p99")
for c in levels:
    ref = s("llama-server", c)
    for name in ("llama-server", "lav-f32", "lav-q8"):
        x = s(name, c)
        ratio = "" if name == "llama-server" else (
            f"   {x['throughput_tok_s']/ref['throughput_tok_s']:.2f}x, "
            f"{x['ttft']['p50']/ref['ttft']['p50']:.2f}x, {x['ttft']['p99']/ref['ttft']['p99']:.2f}x")
        print(f"{name:<14} {c:>4} {x['throughput_tok_s']:>7.1f} {x['ttft']['p50']*1e3:>8.0f}ms {x['ttft']['p99']*1e3:>8.0f}ms {x['tpot']['p50']*1e3:>8.1f}ms{ratio}")
PYEOF
