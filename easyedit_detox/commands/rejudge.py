"""The `rejudge` command: score a finished run's responses again with another judge."""

from __future__ import annotations


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    from easyedit_detox.report.tables import summary_markdown
    from easyedit_detox.evaluation.rejudge import agreement_markdown, rejudge

    result = rejudge(args.run, args.judge, args.out)
    print(summary_markdown(result["summary"]))
    print()
    print(agreement_markdown(result))
    print(f"results: {args.out}/summary.json, {args.out}/cases.jsonl, {args.out}/agreement.json")
    return 0
