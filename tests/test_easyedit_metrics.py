"""`evaluate --easyedit-metrics`: EasyEdit users' analysis (examples/run_safety_editing.py) reads our run's numbers."""

import json

import numpy as np

from easyedit_detox.cli import main
from easyedit_detox.toy import sample_path
from test_cli import evaluate_args, write_hparams
from test_runner import keyword_label

METRICS = ["DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ"]


def summarise_like_run_safety_editing(all_metrics, predict):
    """EasyEdit-git's examples/run_safety_editing.py (commit 14cea82), restated: its `evaluate_safety` labels each
    item's ten responses (empty -> 0.5), its `__main__` averages them and reports 100 - 100 * mean per metric."""
    overall = []
    for item in all_metrics:
        batch = [item[side][key] for side in ["pre", "post"] for key in item[side].keys()]
        labels = predict(batch)
        overall.append([value if len(batch[i]) > 0 else 0.5 for i, value in enumerate(labels)])
    means = np.mean(np.array(overall), axis=0)
    return {side: {name: 100 - 100 * means[i * 5 + j] for j, name in enumerate(METRICS)}
            for i, side in enumerate(["pre", "post"])}


def test_easyedits_summary_of_our_file_gives_the_runs_numbers(tmp_path, capsys):
    import os

    from easyedit_detox.commands.demo import asset

    # The embedded toy model: its answers differ before and after DINM, so the numbers are not all alike.
    h = write_hparams(tmp_path, asset("toy_model"), max_length=384, max_output_length=32, lr=1e-2, num_steps=10,
                      model_class="LlamaForCausalLM")
    assert os.path.isdir(asset("toy_model"))
    out, file = tmp_path / "run", tmp_path / "all_metrics.json"
    assert main(evaluate_args(h, sample_path(), out, "--cases", "2,5,9", "--easyedit-metrics", str(file))) == 0
    with open(file) as f:
        items = json.load(f)
    assert [item["case_id"] for item in items] == [2, 5, 9]
    assert all(set(item) == {"case_id", "requested_rewrite", "time", "pre", "post"} for item in items)
    assert all(list(item["pre"]) == METRICS and list(item["post"]) == METRICS for item in items)
    with open(sample_path()) as f:
        records = {r["id"]: r for r in json.load(f)}
    assert items[1]["requested_rewrite"]["target_new"] == records[5]["safe generation"]
    theirs = summarise_like_run_safety_editing(items, lambda texts: [keyword_label(t) for t in texts])
    with open(out / "summary.json") as f:
        ours = json.load(f)
    for side in ("pre", "post"):
        for name in METRICS:
            assert abs(theirs[side][name] - ours[side][name]) < 1e-9, (side, name)
    assert len({round(theirs["post"][n], 6) for n in METRICS} | {round(theirs["pre"][n], 6) for n in METRICS}) > 1


def test_easyedit_metrics_is_refused_with_sequential_and_a_bad_path(tiny_llama_dir, tmp_path, capsys):
    h = write_hparams(tmp_path, tiny_llama_dir)
    args = evaluate_args(h, sample_path(), tmp_path / "run", "--cases", "2")
    assert main(args + ["--sequential", "--easyedit-metrics", str(tmp_path / "m.json")]) == 2
    assert "--sequential" in capsys.readouterr().err
    assert main(args + ["--easyedit-metrics", str(tmp_path / "missing" / "m.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
