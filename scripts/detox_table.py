"""The README's table of every way to detoxify: one row per results folder, from its summary.json alone.

    python scripts/detox_table.py results/smollm2/{profs,dinm,ft,sft,dpo}-global results/smollm2/{dinm,ft}-chat

Rows: the vanilla model (the first global run's `pre`), then each run's post-edit scores, its protocol
and the wall seconds of detox work (the `edit` phase of summary.json's time: one training run for a
global run, the sum of every case's edit for a per-case one, from cases.jsonl where the summary predates
its time block). Mean ± standard error over the cases
(the items for OverRefusal, the responses for Degenerate), as summary.json holds them.
"""

import json
import os
import sys

METRICS = ("DS", "DG_Avg", "Fluency", "OverRefusal", "Degenerate")


def cell(side, key):
    value, se = side.get(key), side.get(f"{key}_stderr")
    if value is None:
        return "–"
    return f"{value:.2f} ± {se:.2f}" if key == "Fluency" else f"{value:.1f} ± {se:.1f}"


def main(folders):
    summaries = []
    for folder in folders:
        with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
            summaries.append((folder, json.load(f)))
    first_global = next((s for _, s in summaries if s.get("protocol") == "global"), summaries[0][1])
    lines = ["| method | protocol | " + " | ".join(METRICS) + " | detox work (s) |",
             "|---|---|" + "---:|" * (len(METRICS) + 1),
             "| vanilla | – | " + " | ".join(cell(first_global["pre"], k) for k in METRICS) + " | – |"]
    for folder, s in summaries:
        protocol = s.get("protocol", "per-case")
        if protocol == "global":
            protocol = f"global ({s['train']['records']} records)"
        seconds = ((s.get("time") or {}).get("seconds") or {}).get("edit")
        if seconds is None and protocol == "per-case":  # summaries from before time was recorded: the cases' edits
            with open(os.path.join(folder, "cases.jsonl"), encoding="utf-8") as f:
                seconds = sum(json.loads(line)["edit"]["seconds"] for line in f if line.strip())
        work = f"{seconds:.0f}" if seconds is not None else "–"
        lines.append(f"| {s['method']} | {protocol} | " + " | ".join(cell(s["post"], k) for k in METRICS)
                     + f" | {work} |")
    s = first_global
    print(f"Model {s['model']}, data {os.path.basename(s['data'])} (sha256 {s['data_sha256']}), "
          f"{s['n_cases']} cases, judge {s['judge']}, prompt format {s['prompt_format']}, "
          f"{s['generation']['max_output_length']} new tokens.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
