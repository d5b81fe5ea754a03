#!/usr/bin/env bash
# Frame time of the 3-D app, this build against a reference build, in one run.
#
# Usage: bench/frames-vs.sh REFERENCE_LAV REFERENCE_SCENES [NEW_LAV]
#
# REFERENCE_LAV is a `lav` binary built from the commit to compare against (a copy of
# target/fast/lav taken before a change), REFERENCE_SCENES that commit's scenes/
# folder (`git archive COMMIT scenes | tar -x -C DIR`); NEW_LAV defaults to this
# checkout's fast build. Each runs `lav bench --frames` on the attention and forward-pass steps
# at 1280x720 under Xvfb with Mesa's lavapipe, alternating, and the script prints
# each step's mean frame time for both and their ratio (new / reference).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USAGE="usage: bench/frames-vs.sh REFERENCE_LAV REFERENCE_SCENES [NEW_LAV]"
REF="${1:?$USAGE}"
REF_SCENES="${2:?$USAGE}"
NEW="${3:-${CARGO_TARGET_DIR:-$HOME/.cache/lav/target}/fast/lav}"
COUNT="${COUNT:-60}"
export LAV_LABS_DIR="$REPO_ROOT/labs"

# mean BINARY SCENES LAB STEP
mean() {
    LAV_SCENES_DIR="$2" xvfb-run -a -s "-screen 0 1280x720x24" "$1" bench --frames "$3" --step "$4" \
        --count "$COUNT" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["frames"]["scene_ms_mean"])'
}

printf '%-28s %12s %12s %8s\n' step "reference ms" "new ms" ratio
for case in "attention scores" "attention softmax" "forward-pass attention" "forward-pass overview"; do
    set -- $case
    r=$(mean "$REF" "$REF_SCENES" "$1" "$2")
    n=$(mean "$NEW" "$REPO_ROOT/scenes" "$1" "$2")
    python3 -c "print(f'{\"$1 / $2\":<28} {$r:12.1f} {$n:12.1f} {$n/$r:8.2f}')"
done
