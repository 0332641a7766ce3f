#!/usr/bin/env bash
# The README's SmolLM2 table: DINM, FT-L and LoRA in the chat format and DINM in the raw format on the
# held-out records 15-29 of the bundled sample, keyword judge, over-refusal on 3 edited states.
# Prints each run's wall seconds per case, then the two comparisons. About an hour on a 2-core CPU.
#   bash scripts/smollm2_table.sh [results/smollm2]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/smollm2}
bin=${EASYEDIT_DETOX_BIN:-.venv/bin/easyedit-detox}
flavour=pypi
.venv/bin/python -c 'from easyedit_detox.easyedit.upstream import flavour; raise SystemExit(flavour() != "pypi")' || flavour=git
sub() { [ "$flavour" = pypi ] && echo "hparams/$1/pypi/smollm2-135m-instruct.yaml" || echo "hparams/$1/smollm2-135m-instruct.yaml"; }
common=(--data easyedit_detox/data/safeedit_test_sample.json --cases 15,16,17,18,19,20,21,22,23,24,25,26,27,28,29
        --max-length 2048 --max-output-length 128 --batch-size 32 --cases-per-batch 15
        --general-cases 3 --general-items 10 --cache "$out/vanilla-cache" --no-progress)
run() {  # name, hparams, prompt format; a run whose summary exists is kept (rerun: delete its folder)
    if [ -f "$out/$1/summary.json" ]; then echo "$1: kept (finished earlier)"; return; fi
    local start=$(date +%s)
    "$bin" evaluate --hparams "$2" --out "$out/$1" --prompt-format "$3" "${common[@]}" > "$out/$1.log"
    echo "$1: $(( $(date +%s) - start )) s wall for 15 cases" | tee -a "$out/seconds.txt"
}
mkdir -p "$out"
run dinm-chat hparams/DINM/smollm2-135m-instruct.yaml chat
run ft-chat "$(sub FT)" chat
run lora-chat "$(sub LoRA)" chat
run dinm-raw hparams/DINM/smollm2-135m-instruct.yaml raw
"$bin" compare "$out/dinm-chat" "$out/ft-chat" "$out/lora-chat" --plot "$out/chat.png"
"$bin" compare "$out/dinm-chat" "$out/dinm-raw" --force
