#!/usr/bin/env bash
# The README's comparison of every way to detoxify on SmolLM2 (chat format, keyword judge): the global
# protocol trained on records 0-14 of the bundled sample except 4 and 12 (their questions are those of
# evaluated records 29 and 25, which `evaluate --train` refuses), evaluated on the held-out records 15-29,
# beside the per-case runs of scripts/smollm2_table.sh (same cases, generation and vanilla cache).
#   bash scripts/smollm2_global.sh [results/smollm2] [method ...]   (methods: profs dinm ft sft dpo)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/smollm2}
shift || true
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(profs dinm ft sft dpo)
bin=${EASYEDIT_DETOX_BIN:-.venv/bin/easyedit-detox}
flavour=pypi
.venv/bin/python -c 'from easyedit_detox.easyedit.upstream import flavour; raise SystemExit(flavour() != "pypi")' || flavour=git
sub() { [ "$flavour" = pypi ] && [ -d "hparams/$1/pypi" ] && echo "hparams/$1/pypi/smollm2-135m-instruct.yaml" \
        || echo "hparams/$1/smollm2-135m-instruct.yaml"; }
data=easyedit_detox/data/safeedit_test_sample.json
common=(--data "$data" --cases 15,16,17,18,19,20,21,22,23,24,25,26,27,28,29
        --train "$data" --train-cases 0,1,2,3,5,6,7,8,9,10,11,13,14
        --max-length 2048 --max-output-length 128 --batch-size 32 --cases-per-batch 15
        --general-cases 3 --general-items 10 --cache "$out/vanilla-cache" --no-progress --prompt-format chat)
mkdir -p "$out"
for m in "${methods[@]}"; do
    case $m in
        profs) h=hparams/ProFS/smollm2-135m-instruct.yaml ;;
        dinm) h=hparams/DINM/smollm2-135m-instruct.yaml ;;
        ft) h=$(sub FT) ;;
        sft) h=hparams/SFT/smollm2-135m-instruct.yaml ;;
        dpo) h=hparams/DPO/smollm2-135m-instruct.yaml ;;
        *) echo "unknown method $m" >&2; exit 2 ;;
    esac
    if [ -f "$out/$m-global/summary.json" ]; then echo "$m-global: kept (finished earlier)"; continue; fi
    start=$(date +%s)
    "$bin" evaluate --hparams "$h" --out "$out/$m-global" "${common[@]}" > "$out/$m-global.log"
    echo "$m-global: $(( $(date +%s) - start )) s wall for 15 cases" | tee -a "$out/seconds.txt"
done
