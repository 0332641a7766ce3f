"""The SafeEdit evaluation: data, generation, judges, metrics, the runner and its results folder."""

from .dataset import METRIC_KEYS, SafeEditCase, SafeEditDataset
from .generation import Generation, GenerationSettings, generate_responses
from .judges import REFUSAL_PHRASES, get_judge
from .metrics import fluency, metric_score, summarize
from .runner import Evaluation, EvaluationSettings, evaluate, summarize_cases

__all__ = ["METRIC_KEYS", "SafeEditCase", "SafeEditDataset", "Generation", "GenerationSettings",
           "generate_responses", "REFUSAL_PHRASES", "get_judge", "fluency", "metric_score", "summarize",
           "Evaluation", "EvaluationSettings", "evaluate", "summarize_cases"]
