"""`python -m easyedit_detox.commands.check_install`: prove the environment imports, print the versions."""

import importlib.metadata as md
import logging
import sys


def main() -> int:
    """Import the package (which imports easyeditor) and report the versions that matter."""
    logging.disable(logging.WARNING)
    import easyedit_detox  # noqa: F401  (raises an install hint when easyeditor cannot import)
    from easyedit_detox.methods.trl_training import trl

    trl()  # SFT and DPO: an install hint when TRL is missing or does not import beside this transformers
    from trl import DPOTrainer, SFTTrainer  # noqa: F401

    names = ("torch", "transformers", "easyeditor", "peft", "accelerate", "nltk", "trl")
    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:  # EasyEdit from git, on sys.path: no metadata
            from easyedit_detox.easyedit import upstream

            return f"({upstream.flavour()}, {upstream.easyeditor().__path__[0]})"

    sys.stdout.write("environment ok: " + ", ".join(f"{n} {version(n)}" for n in names) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
