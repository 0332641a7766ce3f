"""Training with TRL (SFT and DPO): the settings both share, the dataset from SafeEdit requests, and the run.

TRL's own trainers do the training (`SFTTrainer`, `DPOTrainer`); this module only turns EasyEdit-style
hparams and SafeEdit requests into their inputs and makes the run behave like any EasyEdit method:
in place on the caller's model, the originals of every trained tensor handed back, seeded, the caller's
Python and NumPy random states left as they were (`Trainer` seeds them globally), nothing written to
disk but a temporary folder, progress in one bar. Full fine-tuning trains every parameter; `lora: true`
trains peft LoRA adapters on `target_modules` and merges them into the weights afterwards, so either
way the edit is plain weights (kept, shipped as a patch, undone like DINM's).

TRL differs between the two EasyEdit environments (0.22 beside transformers 4.55, 1.14 beside
transformers 5): the options used here mean the same in both, and DPO's reference log-probabilities
are computed from the untouched model before training (`precompute_ref_log_probs`), which both accept
for a model built in memory.
"""

from __future__ import annotations

import contextlib
import logging
import random
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import torch

from easyedit_detox.core.errors import HyperParamsError, RequestError, UserError
from easyedit_detox.core.weights import write_back
from .yaml_hparams import YamlHyperParams, is_int, is_number

LOG = logging.getLogger(__name__)
INSTALL_HINT = ("SFT and DPO train with TRL, which is not installed: `pip install trl==0.22.2` beside PyPI's "
                "easyeditor (transformers < 4.56), `pip install trl==1.14.2` beside EasyEdit from git (both extras "
                "of easyedit-detox bring it)")


@dataclass
class TrainingHyperParams(YamlHyperParams):
    """Settings shared by SFT and DPO (keys of an EasyEdit-style YAML)."""

    FLOAT_KEYS = ("lr", "weight_decay", "lora_dropout", "beta")

    model_name: str
    device: Union[int, str]
    num_steps: int  # optimizer steps (TRL's max_steps)
    batch_size: int  # requests per step
    lr: float
    max_length: int  # tokens of prompt plus response seen in training
    alg_name: str = ""
    weight_decay: float = 0.0
    lr_scheduler_type: str = "linear"  # transformers' TrainingArguments default
    seed: int = 0
    # Full fine-tuning (every parameter), or LoRA adapters on `target_modules`, merged into the weights after.
    lora: bool = False
    rank: int = 8
    lora_alpha: float = 16
    lora_dropout: float = 0.0
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    model_parallel: bool = False
    # Where to keep TRL checkpoints every `checkpoint_every` steps, so that an interrupted run, started again
    # with the same model, records and settings, resumes from the last one (None: no checkpoints).
    checkpoint_dir: Optional[str] = None
    checkpoint_every: int = 10

    def __post_init__(self):
        self.check("alg_name", self.alg_name in self.ALG_NAMES, " or ".join(repr(a) for a in self.ALG_NAMES))
        self.check("checkpoint_dir", self.checkpoint_dir is None or isinstance(self.checkpoint_dir, str),
                   "a folder name, or left out")
        for key in ("num_steps", "batch_size", "max_length", "rank", "checkpoint_every"):
            self.check(key, is_int(getattr(self, key)) and getattr(self, key) >= 1, "an integer >= 1")
        self.check("lr", is_number(self.lr) and self.lr > 0, "a number > 0 (e.g. 1e-5)")
        self.check("weight_decay", is_number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")
        self.check("lora", isinstance(self.lora, bool), "true (LoRA adapters) or false (full fine-tuning)")
        self.check("lora_dropout", is_number(self.lora_dropout) and 0 <= self.lora_dropout < 1, "a number in [0, 1)")
        self.check("seed", is_int(self.seed), "an integer")
        self.check("target_modules", isinstance(self.target_modules, list) and bool(self.target_modules)
                   and all(isinstance(m, str) for m in self.target_modules), "a list of module names, e.g. [q_proj]")

    def training_arguments(self, out_dir: str, device) -> Dict[str, Any]:
        """The keyword arguments of TRL's config (SFTConfig / DPOConfig) these settings mean."""
        saving = (dict(save_strategy="steps", save_steps=self.checkpoint_every) if self.checkpoint_dir
                  else dict(save_strategy="no"))
        return dict(output_dir=out_dir, max_steps=self.num_steps, per_device_train_batch_size=self.batch_size,
                    learning_rate=self.lr, weight_decay=self.weight_decay, lr_scheduler_type=self.lr_scheduler_type,
                    seed=self.seed, data_seed=self.seed, max_length=self.max_length, report_to=[],
                    logging_strategy="no", disable_tqdm=True, gradient_checkpointing=False,
                    use_cpu=torch.device(device).type == "cpu", dataloader_num_workers=0, **saving)

    def lora_config(self):
        """peft's LoraConfig for `lora: true` (None for full fine-tuning)."""
        if not self.lora:
            return None
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), task_type="CAUSAL_LM")


def requests_as_rows(requests: List[Dict[str, Any]], columns: Dict[str, str]) -> List[Dict[str, str]]:
    """One dataset row per request: each column from a request key (`{"completion": "target_new"}` ...); a
    response column holds the text after one space, its surrounding whitespace trimmed (the prompt as it is)."""
    rows = []
    for i, request in enumerate(requests):
        row = {}
        for column, key in columns.items():
            value = request.get(key)
            if not isinstance(value, str) or not value.strip():
                raise RequestError(f"training request {i} has no {key!r} text, which the {column!r} column needs")
            row[column] = value if column == "prompt" else " " + value.strip()
        rows.append(row)
    return rows


def trl():
    """The trl module, or a UserError saying how to install it."""
    try:
        import trl as module
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return module


@contextlib.contextmanager
def callers_random_states_kept() -> Iterator[None]:
    """Inside: anything; after: Python's and NumPy's global random states as they were (torch's: the session's)."""
    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _progress_callback(on_step: Optional[Callable]):
    if on_step is None:
        return []
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            on_step(state.global_step, float("nan"))

    return [Steps()]


def train_in_place(model, tok, rows: List[Dict[str, str]], hparams: TrainingHyperParams, make_trainer: Callable,
                   on_step: Optional[Callable] = None) -> Dict[str, Any]:
    """Train `model` with the trainer `make_trainer(model, dataset, out_dir, callbacks)` builds; returns its report.

    The trained tensors' originals are in report["originals"] (every parameter for full fine-tuning, the
    LoRA target weights for LoRA); on any error the model gets them back before the error propagates.
    """
    import datasets

    if hparams.lora:
        targets = tuple(hparams.target_modules)
        names = [n for n, _ in model.named_parameters()
                 if n.endswith(".weight") and n[: -len(".weight")].split(".")[-1] in targets]
        if not names:
            raise HyperParamsError(f"hparams target_modules {list(targets)}: no Linear layer of the model has one of "
                                   "these names (e.g. q_proj, v_proj for LLaMA; c_attn for GPT-2)")
    else:
        names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    originals = {n: params[n].detach().clone() for n in names}
    if getattr(tok, "pad_token", None) is None:
        raise RequestError("the tokenizer has no pad token, which TRL's batches need; set tokenizer.pad_token "
                           "(e.g. to the EOS token) before training")
    dataset = datasets.Dataset.from_list(rows)
    quiet = datasets.is_progress_bar_enabled()  # TRL's dataset preparation would print bars of its own
    datasets.disable_progress_bars()
    try:
        with _output_folder(hparams, rows, originals) as (out_dir, last), callers_random_states_kept(), \
                warnings.catch_warnings():
            # transformers 4.55's Trainer calls its own deprecated torch.cpu.amp.autocast on every CPU step.
            warnings.filterwarnings("ignore", message=r".*torch\.cpu\.amp\.autocast", category=FutureWarning)
            trainer = make_trainer(model, dataset, out_dir, _progress_callback(on_step))
            result = trainer.train(resume_from_checkpoint=last)
            trained = trainer.model
            if hparams.lora:
                trained = trained.merge_and_unload()  # the adapters become plain weights of `model`'s own layers
            if trained is not model and not _same_modules(trained, model):
                raise RuntimeError("TRL trained a copy of the model, not the model itself")
    except BaseException:
        write_back(model, originals)  # never a half-trained model left behind
        raise
    finally:
        if quiet:
            datasets.enable_progress_bars()
    return {"originals": originals, "steps": int(result.global_step),
            "loss": float(result.training_loss) if result.training_loss is not None else None}


@contextlib.contextmanager
def _output_folder(hparams: TrainingHyperParams, rows, originals) -> Iterator:
    """(TRL's output folder, the checkpoint to resume from or None): a temporary folder without checkpoint_dir;
    with it, a subfolder named by the digest of the records, settings and starting weights, removed after a
    finished run (the package made it), kept with its checkpoints when the run stops."""
    if not hparams.checkpoint_dir:
        with tempfile.TemporaryDirectory(prefix="easyedit-detox-trl-") as out_dir:
            yield out_dir, None
        return
    import hashlib
    import json
    import os
    import shutil

    from transformers.trainer_utils import get_last_checkpoint

    from easyedit_detox.core.weights import combined_digest, tensor_digest
    from .hparams import hparams_dict

    settings = hparams_dict(hparams, ("device", "model_name", "checkpoint_dir", "model_parallel"))
    facts = json.dumps({"rows": rows, "hparams": settings,
                        "weights": combined_digest({n: tensor_digest(t) for n, t in originals.items()})},
                       sort_keys=True)
    folder = os.path.join(os.path.expanduser(hparams.checkpoint_dir),
                          f"{hparams.alg_name}-{hashlib.sha256(facts.encode()).hexdigest()[:16]}")
    os.makedirs(folder, exist_ok=True)
    last = get_last_checkpoint(folder)
    if last is not None:
        LOG.info("%s resumes from %s", hparams.alg_name, last)
    yield folder, last
    shutil.rmtree(folder)  # finished: its checkpoints are of no further use


def _same_modules(a, b) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return bool(pb) and all(n in pa and pa[n] is p for n, p in pb.items())


def train_with_trl(model, tok, requests, hparams: TrainingHyperParams, columns: Dict[str, str], trainer: str,
                   config: Callable, on_step: Optional[Callable] = None) -> Dict[str, Any]:
    """Train `model` in place with TRL's `trainer` class (by name) on the requests as `columns` rows, its
    arguments from `config(hparams, out_dir, device)`; returns train_in_place's report."""
    from easyedit_detox.core.devices import input_device

    rows = requests_as_rows(requests, columns)

    def make(model_, dataset, out_dir, callbacks):
        return getattr(trl(), trainer)(model=model_, args=config(hparams, out_dir, input_device(model_)),
                                       train_dataset=dataset, processing_class=tok,
                                       peft_config=hparams.lora_config(), callbacks=callbacks)

    return train_in_place(model, tok, rows, hparams, make, on_step)


def apply_with_trl(model, tok, requests, hparams: TrainingHyperParams, build: Callable, copy: bool,
                   return_orig_weights: bool, keep_original_weight: bool, kwargs: Dict[str, Any]):
    """EasyEdit's apply-function contract for a TRL method; `build(model, tok, requests, hparams, on_step)`
    trains in place and returns train_in_place's report."""
    from copy import deepcopy

    from easyedit_detox.easyedit.upstream import returns_originals

    requests = [requests] if isinstance(requests, dict) else list(requests)
    if copy:
        model = deepcopy(model)
    report = build(model, tok, requests, hparams, kwargs.get("on_step"))
    originals = report.pop("originals")
    model.eval()  # Trainer leaves it in training mode; answers are read with dropout off
    if isinstance(kwargs.get("report"), dict):
        kwargs["report"].update({"steps": report["steps"], "losses": [report["loss"]], "requests": len(requests)})
    return model, (originals if returns_originals(return_orig_weights, keep_original_weight) else {})

