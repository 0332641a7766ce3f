"""Edit a model with DINM through EasyEdit's own BaseEditor (PyPI's needs a CUDA GPU; git's runs on the CPU).

    python examples/edit_with_baseeditor.py --hparams hparams/DINM/llama-7b.yaml [--model PATH] [--record 0]

BaseEditor picks model classes from the name (`llama` -> LlamaForCausalLM + LlamaTokenizer, `gpt` ->
GPT-2 classes), so `--model` should be a local folder whose name contains one of those.
"""

import argparse
import json

import easyedit_detox  # noqa: F401  (registers DINM in easyeditor's ALG_DICT)
from easyedit_detox.toy import sample_path
from easyedit_detox.easyedit.upstream import GIT, flavour
from easyeditor import BaseEditor, DINMHyperParams


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hparams", default="hparams/DINM/llama-7b.yaml")
    parser.add_argument("--model", help="overrides model_name in the YAML (a local checkpoint folder)")
    parser.add_argument("--data", default=sample_path(), help="a SafeEdit JSON file")
    parser.add_argument("--record", type=int, default=0)
    parser.add_argument("--keep-edit", action="store_true", help="leave the edit in the model")
    args = parser.parse_args()

    hparams = DINMHyperParams.from_hparams(args.hparams)
    if args.model:
        hparams.model_name = args.model
    with open(args.data, encoding="utf-8") as f:
        record = json.load(f)[args.record]
    suffix = hparams.suffix_system_prompt

    editor = BaseEditor.from_hparams(hparams)
    weight_name = hparams.rewrite_module_tmp
    before = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    # Keeping the edit: PyPI's BaseEditor says so with keep_original_weight=False, git's with sequential_edit=True.
    keep = {"sequential_edit": True} if flavour() == GIT else {"keep_original_weight": False}
    undo = {} if flavour() == GIT else {"keep_original_weight": True}
    metrics, edited_model, _ = editor.edit(
        prompts=[record["adversarial prompt"] + " " + suffix],
        target_new=[record["safe generation"]],
        ground_truth=[record["unsafe generation"]],
        locality_inputs={"general knowledge constraint": {
            "prompt": [record["knowledge constrain"]["prompt"] + " " + suffix],
            "ground_truth": [record["knowledge constrain"]["answer"]]}},
        **(keep if args.keep_edit else undo),
    )
    changed = [n for n, p in editor.model.named_parameters() if not (p == before[n]).all()]
    print(f"edited with {hparams.alg_name} ({weight_name}); rewrite accuracy before/after: "
          f"{metrics[0]['pre'].get('rewrite_acc')} / {metrics[0]['post'].get('rewrite_acc')}")
    print(f"tensors still changed after edit(): {changed or 'none (restored)'}")


if __name__ == "__main__":
    main()
