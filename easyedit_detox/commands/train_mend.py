"""The `train-mend` command: meta-train MEND's hypernetwork on SafeEdit."""

from __future__ import annotations


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    from easyedit_detox.methods.mend_training import train_mend

    path = train_mend(args.hparams, args.train, args.val, args.out, max_steps=args.max_steps,
                      progress=not args.no_progress, model_dir=args.model_dir, device=args.device)
    print(f"MEND checkpoint: {path} (point the MEND hparams' archive at it)")
    return 0
