#!/usr/bin/env bash
# The demo's SmolLM2 hparams are copies of hparams/*/smollm2-135m-instruct.yaml (an installed package has no
# hparams/ folder); tests/test_real_model.py checks they load to the same settings. Run after editing those.
set -euo pipefail
cd "$(dirname "$0")/.."
a=easyedit_detox/demo_assets
cp hparams/DINM/smollm2-135m-instruct.yaml "$a/dinm-smollm2.yaml"
cp hparams/FT/pypi/smollm2-135m-instruct.yaml "$a/ft-smollm2.yaml"
cp hparams/LoRA/pypi/smollm2-135m-instruct.yaml "$a/lora-smollm2.yaml"
cp hparams/FT/smollm2-135m-instruct.yaml "$a/git/ft-smollm2.yaml"
cp hparams/LoRA/smollm2-135m-instruct.yaml "$a/git/lora-smollm2.yaml"
