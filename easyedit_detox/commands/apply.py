"""The `apply` command: edit a model with records of a SafeEdit file and ship it (a folder or a patch)."""

from __future__ import annotations


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    from easyedit_detox.shipping.apply import apply_from_files

    print(apply_from_files(args.hparams, args.data, case_ids=args.cases, limit=args.limit, save=args.save,
                           patch=args.patch, dtype=args.dtype, progress=not args.no_progress,
                           prompt_format=args.prompt_format, model_dir=args.model_dir, device=args.device))
    return 0
