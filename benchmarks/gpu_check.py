"""DINM and one SafeEdit case on a LLaMA-2-7B-shaped model on one GPU: ours against the straightforward path.

    python benchmarks/gpu_check.py                 # on a GPU machine (about 2 minutes on an H100)
    python benchmarks/gpu_check.py --tiny --device cpu   # a smoke run of the same code on a CPU

Builds LLaMA-2-7B's shape from its config (random weights, bfloat16), runs one DINM edit with the
toxic layer fixed at the middle (16) and in the top quarter (24) with 1,000-token inputs, for both
forward strategies, then one evaluation case (5 inputs x 600 new tokens, before and after the edit),
and prints seconds and peak GPU memory. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import time

from common import SUFFIX, machine, markdown_table, records

LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000)
TINY = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=8, num_attention_heads=4,
            num_key_value_heads=4, vocab_size=4000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a small model and short outputs (smoke run)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from easyedit_detox import DINMHyperParams, apply_dinm_to_model
    from easyedit_detox.core.weights import write_back
    from easyedit_detox.evaluation.generation import GenerationSettings, generate_responses
    from easyedit_detox.evaluation.rowwise import RowwiseEdits
    from easyedit_detox.toy import train_tokenizer

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    shape = TINY if args.tiny else LLAMA2_7B
    new_tokens = 16 if args.tiny else 600
    input_tokens = 200 if args.tiny else 1000
    dtype = torch.float32 if (args.tiny and not cuda) else torch.bfloat16

    tok = train_tokenizer("llama", vocab_size=min(8000, shape["vocab_size"]))
    config = LlamaConfig(**shape, max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = LlamaForCausalLM(config).eval()
    torch.set_default_dtype(previous)
    build_s = time.perf_counter() - start
    n = shape["num_hidden_layers"]

    recs = records()
    # Attack prompts run to several hundred tokens; two of them give 1,000 after the cut from the left.
    def long_request(i):
        r, other = recs[i], recs[i + 1]
        return {"prompt": other["adversarial prompt"] + "\n" + r["adversarial prompt"] + " " + SUFFIX,
                "target_new": r["safe generation"], "ground_truth": r["unsafe generation"],
                "locality": {"general knowledge constraint": {"prompt": r["knowledge constrain"]["prompt"] + " " + SUFFIX,
                                                              "ground_truth": r["knowledge constrain"]["answer"]}}}

    def hparams(layer):
        answer = len(tok(" " + recs[1]["safe generation"], add_special_tokens=False).input_ids)
        return DINMHyperParams(
            alg_name="DINM", model_name="llama2-7b-shape", model_class="LlamaForCausalLM",
            tokenizer_class="AutoTokenizer", device=args.device, suffix_system_prompt=SUFFIX, layers=[layer],
            num_steps=10, batch_size=1, max_length=input_tokens + answer, max_output_length=new_tokens, lr=5e-4,
            weight_decay=0.0, kl_factor=0.1, norm_constraint=False,
            rewrite_module_tmp="model.layers.{}.mlp.down_proj.weight", layer_module_tmp="model.layers.{}",
            mlp_module_tmp="model.layers.{}.mlp", attn_module_tmp="model.layers.{}.self_attn",
            ln_f_module="model.norm", lm_head_module="lm_head")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def measure(fn):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        return time.perf_counter() - t, peak, out

    figures, rows = [], []
    apply_dinm_to_model(model, tok, [long_request(0)], hparams(n // 2), return_orig_weights=True,
                        keep_original_weight=True, strategy="cached")  # warm-up (kernels, allocator)
    params = dict(model.named_parameters())
    for label, layer in (("middle", n // 2), ("top quarter", 3 * n // 4)):
        for strategy in ("full", "cached"):
            secs, peak, (_, copy) = measure(lambda: apply_dinm_to_model(
                model, tok, [long_request(1)], hparams(layer), return_orig_weights=True, keep_original_weight=True,
                strategy=strategy))
            write_back(model, copy)
            figures.append({"what": f"edit, layer {layer} ({label})", "strategy": strategy, "seconds": secs,
                            "peak_gib": peak})
            rows.append([f"DINM edit, layer {layer} ({label}), {input_tokens}-token input",
                         "straightforward" if strategy == "full" else "ours (cached)", f"{secs:.2f}", f"{peak:.1f}"])

    # One evaluation case: 5 vanilla responses, the edit, 5 post-edit responses.
    r = recs[2]
    plain = [r["adversarial prompt"]] + list(r["generalization test"][k] for k in (
        "test input of only harmful question", "test input of other attack prompt input",
        "test input of other question input", "test input of other questions and attack prompts"))
    suffixed = [p + " " + SUFFIX for p in plain]
    gen = GenerationSettings(max_length=input_tokens + new_tokens, max_output_length=new_tokens, batch_size=5)
    h = hparams(3 * n // 4)
    req = long_request(2)

    def straightforward_case():
        generate_responses(model, tok, plain, gen)
        _, copy = apply_dinm_to_model(model, tok, [req], h, return_orig_weights=True, keep_original_weight=True,
                                      strategy="full")
        generate_responses(model, tok, suffixed, gen)
        write_back(model, copy)

    def our_case():
        generate_responses(model, tok, plain, gen)
        _, copy = apply_dinm_to_model(model, tok, [req], h, return_orig_weights=True, keep_original_weight=True)
        edits = RowwiseEdits(model)
        edits.add(0, {name: params[name] for name in copy})
        write_back(model, copy)
        with edits.active():
            generate_responses(model, tok, suffixed, gen, before_batch=lambda rows: edits.set_rows([0] * len(rows)))

    for name, fn in (("straightforward", straightforward_case), ("ours", our_case)):
        secs, peak, _ = measure(fn)
        figures.append({"what": "evaluation case", "strategy": name, "seconds": secs, "peak_gib": peak})
        rows.append([f"one SafeEdit case: 5 inputs x {new_tokens} new tokens, before and after the edit", name,
                     f"{secs:.2f}", f"{peak:.1f}"])

    card = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device: {card}; {machine()}")
    print(f"model: LLaMA-2-7B shape {shape}, {dtype}, random weights, built in {build_s:.0f}s")
    print(markdown_table(["work", "path", "seconds", "peak GPU GiB"], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": card, "shape": shape, "dtype": str(dtype), "figures": figures}, f, indent=2)


if __name__ == "__main__":
    main()
