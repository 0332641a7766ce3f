"""The `apply` command: edit a model with records of a SafeEdit file and ship it (a folder or a patch)."""

from __future__ import annotations


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    from easyedit_detox.core.errors import UserError
    from easyedit_detox.shipping.apply import apply_from_files

    data, cases, limit, detoxify = args.data, args.cases, args.limit, args.train is not None
    if detoxify:
        if data is not None or cases is not None or limit is not None:
            raise UserError("apply --train detoxifies from the records of the training file; --data, --cases and "
                            "--limit choose records to edit with one after another: use one of the two ways "
                            "(--train-limit and --train-cases select training records)")
        data, cases, limit = args.train, args.train_cases, args.train_limit
    elif data is None:
        raise UserError("apply needs --data FILE (records to edit with, one after another) or --train FILE "
                        "(records to detoxify from at once)")
    elif args.train_limit is not None or args.train_cases is not None:
        raise UserError("--train-limit and --train-cases select records of the --train file; add --train FILE, or "
                        "use --limit and --cases with --data")
    print(apply_from_files(args.hparams, data, case_ids=cases, limit=limit, save=args.save, detoxify=detoxify,
                           patch=args.patch, dtype=args.dtype, progress=not args.no_progress,
                           prompt_format=args.prompt_format, model_dir=args.model_dir, device=args.device))
    return 0
