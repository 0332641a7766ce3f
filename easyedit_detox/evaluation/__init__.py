"""The evaluation: SafeEdit data, generation, judges, metrics, probes, the runner, results and compare.

Nothing is imported here, so that light commands (`compare`) do not load torch; import the
modules themselves, e.g. `from easyedit_detox.evaluation.runner import evaluate`.
"""


def __getattr__(name):
    # `from easyedit_detox.evaluation import evaluate` keeps working without importing the runner eagerly.
    if name == "evaluate":
        from .runner import evaluate

        return evaluate
    raise AttributeError(f"module 'easyedit_detox.evaluation' has no attribute {name!r}")
