"""The `compare` command: the comparison table of results folders, and the files asked for."""

from __future__ import annotations


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    from easyedit_detox.report.compare import run_compare

    print(run_compare(args.dirs, force=args.force, latex=args.latex, csv=args.csv, plot=args.plot))
    return 0
