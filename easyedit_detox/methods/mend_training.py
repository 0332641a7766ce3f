"""Meta-training MEND's hypernetwork on SafeEdit with easyeditor's own trainer, resumable.

What runs is easyeditor's: its `EditTrainer` builds the model (`get_model`), the MEND wrapper
(`ALG_TRAIN_DICT["MEND"]`), the optimizers (`opt`, and `lr_opt` for the learned edit rates), and its
`train_step` / `validate` do every forward, loss, backward, clip and optimizer step. What this module
replaces is `BaseTrainer.run()`, which cannot resume: it restarts at step 0, shuffles with the global
RNG, and only saves the best model, non-atomically. Here step `s` always sees the same batch (a seeded
permutation per epoch), state is saved atomically at step boundaries, and rerunning the same command
continues from the last saved step.

The edit and locality batches restate EasyEdit-git's `SafetyDataset.collate_gpt_fn`
(easyeditor/dataset/safety.py): edit = `adversarial prompt` + `safe generation` with the labels of
`safe generation` tokenised alone; locality = `knowledge constrain.prompt` + `.answer` with the
answer's labels and mask; plus the `cond` batch of its `collate_fn` (PyPI's EditTrainer reads it).

Files in `out_dir`:
- `run.json`: what the run is (config digest, hparams, data, steps done), written first;
- `state.pt`: everything to resume (MEND weights and buffers, optimizer states, gradients of an
  unfinished accumulation, RNG, early-stopping state), replaced atomically every `model_save_pt`
  steps, at each validation and at the end;
- `mend.pt`: the checkpoint, in `BaseTrainer.save_state`'s format ({"model", "opt", "lr_opt",
  "val_stats", "start_time", "elapsed_time", "step"}), which `MendRewriteExecutor` loads from hparams
  `archive`: the best model by `early_stop_key` on the validation set, as EasyEdit's trainer keeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Dict, List, Optional

import torch

from easyedit_detox.core.errors import HyperParamsError, UserError
from easyedit_detox.core.files import file_digest, read_yaml, replaced_atomically, write_atomically, yaml_path
from easyedit_detox.core.devices import input_device

logger = logging.getLogger(__name__)

CHECKPOINT, STATE, RUN_INFO = "mend.pt", "state.pt", "run.json"
FORMAT = 1
_KIND = "easyedit-detox train-mend"

# Keys that change where or how loudly a run happens, or when it stops, but not what a step computes:
# left out of the config digest, so a run can resume on another GPU or be extended to more steps.
_NOT_IN_DIGEST = frozenset({
    "device", "silent", "verbose", "log_interval", "eval_log_interval", "results_dir", "debug", "save",
    "model_save_pt", "max_iters", "max_epochs", "final_eval", "eval_only",
})

# Substrings of `model_name` for which each easyeditor's MEND.forward *and* MEND.edit take the
# causal-LM branch; any other name falls through to `model(**batch)` with mismatched labels.
_MEND_FAMILIES = {
    "pypi": ("gpt", "llama", "chatglm2", "internlm"),
    "git": ("gpt", "llama", "chatglm2", "internlm", "qwen", "mistral"),
}
# PyPI's BaseTrainer picks the collate function from these substrings of `model_class`.
_PYPI_MODEL_CLASSES = ("t5", "gpt", "llama", "automodel")

# SafetyDataset cuts at `config.max_length` when the config has one; neither trainer hparams class has.
DEFAULT_MAX_LENGTH = 1000


# -- configuration -----------------------------------------------------------------------------

def load_training_hparams(path: str):
    """The training YAML loaded with easyeditor's own `MENDTrainingHparams`; HyperParamsError naming the fix."""
    full = yaml_path(path)
    raw = read_yaml(full)
    if raw.get("alg") != "MEND":
        raise HyperParamsError(f"hparams file {full!r} is not a MEND training config (its `alg` is "
                               f"{raw.get('alg')!r}); pass one such as hparams/TRAINING/MEND/llama-7b.yaml, "
                               "which sets `alg: MEND`")
    from easyedit_detox.easyedit.upstream import easyeditor

    easyeditor()
    from easyeditor.trainer.training_hparams import MENDTrainingHparams

    try:
        return MENDTrainingHparams.from_hparams(full)
    except (TypeError, AssertionError, KeyError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise HyperParamsError(f"hparams file {full!r} does not load as easyeditor's MENDTrainingHparams: "
                               f"{message}; compare it with hparams/TRAINING/MEND/llama-7b.yaml") from None


def check_supported(config) -> None:
    """Refuse, before loading any model, what the installed easyeditor's MEND trainer cannot run."""
    from easyedit_detox.easyedit.upstream import flavour

    name = str(config.model_name).lower()
    families = _MEND_FAMILIES[flavour()]
    if not any(f in name for f in families):
        raise HyperParamsError(
            f"the installed easyeditor ({flavour()}) chooses MEND's code path from substrings of model_name "
            f"and knows none in {config.model_name!r} (it knows {', '.join(families)}); "
            + ("use EasyEdit from git, which knows 'mistral' and 'qwen', or load the checkpoint from a folder "
               "whose name contains 'llama' (Mistral's weights are laid out as LLaMA's)"
               if flavour() == "pypi" else "use a model of one of those families"))
    if flavour() == "pypi" and not any(c in str(config.model_class).lower() for c in _PYPI_MODEL_CLASSES):
        raise HyperParamsError(f"PyPI easyeditor's trainer supports model_class names containing "
                               f"{', '.join(_PYPI_MODEL_CLASSES)}, not {config.model_class!r}; "
                               "set model_class: AutoModelForCausalLM")
    if config.eval_only:
        raise HyperParamsError("the MEND training config sets eval_only: True, with which easyeditor's trainer "
                               "builds no optimizer; set eval_only: False to train")
    for key in ("accumulate_bs", "batch_size", "val_batch_size", "val_interval"):
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise HyperParamsError(f"hparams key {key!r} is {value!r}; it must be a positive integer")


def total_steps(config, n_train: int, max_steps: Optional[int]) -> int:
    """Training steps (one batch each): max_iters, capped by max_epochs and by `max_steps`."""
    per_epoch = math.ceil(n_train / config.batch_size)
    limits = [v for v in (config.max_iters,
                          None if config.max_epochs is None else config.max_epochs * per_epoch,
                          max_steps) if v is not None]
    if not limits:
        raise HyperParamsError("the MEND training config sets neither max_iters nor max_epochs; "
                               "set max_iters (EasyEdit uses 100000) or pass max_steps")
    steps = min(limits)
    if isinstance(steps, float) and steps.is_integer():  # `max_iters: 1e5` reads as a float
        steps = int(steps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"the number of training steps must be a positive integer, got {steps!r}; "
                        "check max_iters / max_epochs in the hparams and --max-steps")
    return steps


def config_digest(config, train_path: str, val_path: str) -> Dict[str, Any]:
    """What the digest covers (hparams that change a step's result, data files) and the digest itself."""
    settings = {k: v for k, v in sorted(dataclasses.asdict(config).items()) if k not in _NOT_IN_DIGEST}
    covered = {"format": FORMAT, "hparams": settings,
               "train": file_digest(train_path, 64), "val": file_digest(val_path, 64)}
    text = json.dumps(covered, sort_keys=True, default=str)
    return {"digest": hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], "covered": covered}


def _differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """Names of the hparams (and data files) in which two digest inputs differ."""
    diffs = [k for k in sorted(set(old.get("hparams", {})) | set(new["hparams"]))
             if old.get("hparams", {}).get(k) != new["hparams"].get(k)]
    diffs += [f"{k} data" for k in ("train", "val") if old.get(k) != new[k]]
    return diffs or ["format"]


def check_out_dir(out_dir: str, identity: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The run.json of the run in `out_dir` when it is this run; None for a new or empty folder; else UserError."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir!r} is a file; pass a folder for the MEND training run")
    info_path = os.path.join(out_dir, RUN_INFO)
    if not os.path.isfile(info_path):
        if os.path.isdir(out_dir) and os.listdir(out_dir):
            raise UserError(f"--out {out_dir!r} is not empty and holds no MEND training run ({RUN_INFO} is "
                            "missing); pass a new or empty folder")
        return None
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{info_path} cannot be read ({exc}); delete {out_dir!r} to start the run over") from None
    if info.get("kind") != _KIND or info.get("digest") != identity["digest"]:
        differs = ", ".join(_differences(info.get("covered", {}), identity["covered"]))
        raise UserError(f"--out {out_dir!r} holds a MEND training run of another configuration (differs in: "
                        f"{differs}); pass a new --out folder, or delete that one to start over")
    return info


# -- data --------------------------------------------------------------------------------------

def load_tokenizer(config):
    """The tokenizer the config names, set up for SafetyDataset's batches (pad = EOS when missing, left side)."""
    import transformers

    cls = getattr(transformers, str(config.tokenizer_class), None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise HyperParamsError(f"hparams key 'tokenizer_class' is {config.tokenizer_class!r}, not a "
                               "transformers tokenizer class; use e.g. AutoTokenizer")
    name = config.tokenizer_name or config.model_name
    try:
        tokenizer = cls.from_pretrained(name)
    except OSError as exc:
        raise UserError(f"the tokenizer {name!r} cannot be loaded ({' '.join(str(exc).split())[:300]}); "
                        "set tokenizer_name to a local folder or a Hugging Face model id") from None
    # SafetyDataset does this for GPT2Tokenizer and LlamaTokenizer only; every tokenizer needs it here,
    # because the loss reads the target's logits from the *end* of each row (`pred[:, -len(targ):]`).
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    # Cutting an over-long row from the left keeps the target at its end, where the labels point.
    tokenizer.truncation_side = "left"
    return tokenizer


class SafeEditMendDataset(torch.utils.data.Dataset):
    """SafeEdit records as the batches easyeditor's EditTrainer reads (edit_inner, loc, cond)."""

    def __init__(self, records, tokenizer, max_length: int, device: torch.device):
        self.items = [self._item(case) for case in records]
        self.tok = tokenizer
        self.max_length = max_length
        self.device = device

    @staticmethod
    def _item(case) -> Dict[str, str]:
        """The fields of SafetyDataset's items, from one SafeEdit case."""
        record, request = case.record, case.request
        return {
            "case_id": case.case_id,
            "prompt": request["prompt"],
            "target_new": request["target_new"],
            "ground_truth": request["ground_truth"],
            "locality_prompt": record["knowledge constrain"]["prompt"],
            "locality_ground_truth": record["knowledge constrain"]["answer"],
            "cond": "{} >> {} || {}".format(request["ground_truth"], request["target_new"], request["prompt"]),
        }

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict[str, str]:
        return self.items[index]

    def _encode(self, texts: List[str]) -> Dict[str, torch.Tensor]:
        """Token ids and attention mask, padded and cut to max_length."""
        return dict(self.tok(texts, return_tensors="pt", padding=True, max_length=self.max_length,
                             truncation=True))

    def _labels(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Labels: the ids with padding ignored (-100), as SafetyDataset.get_edit_labels."""
        return input_ids.masked_fill(input_ids == self.tok.pad_token_id, -100)

    def collate_gpt_fn(self, batch: List[Dict[str, str]]) -> Dict[str, Dict[str, torch.Tensor]]:
        """One batch: the edit (prompt + safe generation), its locality constraint, and its condition."""
        # No separator between prompt and target, nor between constraint prompt and answer: as SafetyDataset.
        src = self._encode([b["prompt"] + b["target_new"] for b in batch])
        trg = self._encode([b["target_new"] for b in batch])
        loc = self._encode([b["locality_prompt"] + b["locality_ground_truth"] for b in batch])
        loc_ans = self._encode([b["locality_ground_truth"] for b in batch])
        edit_inner = {"input_ids": src["input_ids"], "attention_mask": src["attention_mask"],
                      "labels": self._labels(trg["input_ids"])}
        loc["decoder_attention_mask"] = loc_ans["attention_mask"]
        loc["labels"] = self._labels(loc_ans["input_ids"])
        out = {"edit_inner": edit_inner, "loc": loc, "cond": self._encode([b["cond"] for b in batch])}
        return {part: {k: v.to(self.device) for k, v in tensors.items()} for part, tensors in out.items()}

    collate_fn = collate_gpt_fn  # the name BaseTrainer picks for T5 / multimodal model classes


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> List[int]:
    """The record indices of 1-based `step`: a seeded permutation per epoch, so resuming sees the same batches."""
    per_epoch = math.ceil(n / batch_size)
    epoch, position = divmod(step - 1, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch))
    return order[position * batch_size:(position + 1) * batch_size].tolist()


# -- easyeditor's trainer ------------------------------------------------------------------------

def build_trainer(config, device: torch.device, train_set, val_set, resuming: bool):
    """easyeditor's EditTrainer for `config` on `device` (for PyPI's, call it inside `on_device(device)`)."""
    from easyeditor.trainer import EditTrainer

    from .device_scope import hparams_on_device

    trainer_config = hparams_on_device(config, device)
    # Saving is ours (atomic, resumable): debug without save keeps BaseTrainer from making results folders.
    trainer_config.debug, trainer_config.save = True, False
    if resuming:
        trainer_config.archive = None  # the weights come from state.pt, not from a starting archive
    torch.manual_seed(int(config.seed))  # the hypernetwork's random init (IDMLP's `v`)
    try:
        return EditTrainer(config=trainer_config, train_set=train_set, val_set=val_set)
    except OSError as exc:
        raise UserError(f"the model {config.model_name!r} cannot be loaded ({' '.join(str(exc).split())[:300]}); "
                        "set model_name to a local folder or a Hugging Face model id") from None


class FastWeights:
    """A model run with some parameters replaced by tensors of the autograd graph (what MEND.edit needs).

    Stands in for the whole-model `higher` monkeypatch of PyPI's MEND.edit, whose patched ModuleList
    cannot be sliced (`self.layers[:n]`, as the LLaMA forward of transformers 4.55 does). It offers
    what MEND.edit and the edited MEND use: `named_parameters`, `update_params`, `handles`, calling.
    """

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.handles = getattr(module, "handles", [])
        self._replaced: Dict[str, torch.Tensor] = {}

    def named_parameters(self, *args, **kwargs):
        return self.module.named_parameters(*args, **kwargs)

    def parameters(self, *args, **kwargs):
        return self.module.parameters(*args, **kwargs)

    def update_params(self, params: List[torch.Tensor]) -> None:
        """Use `params` (in named_parameters order) in place of the module's own; unchanged ones stay shared."""
        self._replaced = {name: new for (name, old), new in zip(self.module.named_parameters(), params)
                          if new is not old}

    def __call__(self, *args, **kwargs):
        return torch.func.functional_call(self.module, self._replaced, args, kwargs)

    def __getattr__(self, name):
        if name == "module":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.module, name)


@contextlib.contextmanager
def fast_weights_for_pypi_mend():
    """Within the block, PyPI's MEND.edit builds its edited model as `FastWeights` (git's needs nothing)."""
    from easyedit_detox.easyedit.upstream import PYPI, flavour

    if flavour() != PYPI:
        yield
        return
    import importlib

    # The module, not the class of the same name that easyeditor.trainer.algs exports.
    module = importlib.import_module("easyeditor.trainer.algs.MEND")
    original = module.monkeypatch
    # Same math (W + edit_lr * MEND's pseudo-gradient, gradients reaching the hypernetwork); only the
    # mechanism that runs the model with those weights differs.
    module.monkeypatch = lambda model, *args, **kwargs: FastWeights(model)
    try:
        yield
    finally:
        module.monkeypatch = original


def mend_state_dict(trainer) -> Dict[str, Any]:
    """The MEND wrapper's state dict (hypernetwork, normalisers, edit rates), loadable with `weights_only`."""
    state = trainer.model.state_dict()
    # MEND.state_dict stores the model's config object; torch.load(weights_only=True), the default that
    # PyPI's MendRewriteExecutor runs with since torch 2.6, refuses to unpickle it. Its load_state_dict
    # only compares it with the model's (and logs a mismatch), so a plain dict serves.
    state["model_config"] = trainer.model.model.config.to_dict()
    return {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in state.items()}


def restore_norm_flags(trainer) -> None:
    """Mark normalisers that have seen data as initialised (`norm_init` is a plain attribute, not in state dicts)."""
    for module in trainer.model.mend.modules():
        if hasattr(module, "norm_init") and hasattr(module, "k"):
            module.norm_init = bool(torch.isfinite(module.k).all())


def new_stopper(config):
    """easyeditor's EarlyStopper for the config's patience and key."""
    from easyeditor.trainer.utils import EarlyStopper

    return EarlyStopper(config.early_stop_patience, config.early_stop_key)


# -- state and checkpoint ------------------------------------------------------------------------

def save_torch_atomically(obj: Any, path: str) -> None:
    """torch.save `obj` to `path` through a temporary file in the same folder and os.replace."""
    with replaced_atomically(path) as tmp:
        torch.save(obj, tmp)


def _rng_state() -> Dict[str, Any]:
    """torch's CPU and CUDA random states."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what `_rng_state` saved (CUDA only on the same number of GPUs)."""
    torch.set_rng_state(state["cpu"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(trainer, run: "_Run") -> Dict[str, Any]:
    """Everything a later process needs to continue exactly after `run.step`."""
    stopper = run.stopper
    return {
        "format": FORMAT, "digest": run.digest, "step": run.step,
        "model": mend_state_dict(trainer),
        "opt": trainer.opt.state_dict(),
        "lr_opt": trainer.lr_opt.state_dict() if trainer.lr_opt is not None else None,
        # Gradients of an accumulation window (accumulate_bs > 1) still open at a step boundary.
        "grads": [None if p.grad is None else p.grad.detach().clone() for p in trainer.model.outer_parameters()],
        "stopper": {"best_value": stopper.best_value, "best_iter": stopper.best_iter,
                    "current_iter": stopper.current_iter, "stop": stopper._stop},
        "best_step": run.best_step, "val_stats": run.val_stats, "rng": _rng_state(),
        "start_time": trainer.start_time,
    }


def restore_training_state(trainer, run: "_Run", state: Dict[str, Any]) -> None:
    """Put `state` (from `training_state`) back into a freshly built trainer and `run`."""
    trainer.model.load_state_dict(dict(state["model"]))
    restore_norm_flags(trainer)
    trainer.opt.load_state_dict(state["opt"])
    if trainer.lr_opt is not None and state["lr_opt"] is not None:
        trainer.lr_opt.load_state_dict(state["lr_opt"])
    for p, g in zip(trainer.model.outer_parameters(), state["grads"]):
        p.grad = None if g is None else g.to(p.device)
    stopper = run.stopper
    stopper.best_value, stopper.best_iter = state["stopper"]["best_value"], state["stopper"]["best_iter"]
    stopper.current_iter, stopper._stop = state["stopper"]["current_iter"], state["stopper"]["stop"]
    run.step = state["step"]
    run.best_step, run.val_stats = state["best_step"], state["val_stats"]
    trainer.start_time = state["start_time"]
    _set_rng_state(state["rng"])


def checkpoint(trainer, run: "_Run") -> Dict[str, Any]:
    """The checkpoint in BaseTrainer.save_state's format: MendRewriteExecutor and BaseTrainer's `archive` read it."""
    from easyeditor.trainer.utils import time_delta_seconds

    return {
        "model": mend_state_dict(trainer),
        "opt": trainer.opt.state_dict(),
        "lr_opt": trainer.lr_opt.state_dict() if trainer.lr_opt is not None else None,
        "val_stats": run.val_stats, "start_time": trainer.start_time,
        "elapsed_time": time_delta_seconds(trainer.start_time), "step": run.step,
    }


@dataclasses.dataclass
class _Run:
    """The bookkeeping of one training run (what BaseTrainer.run keeps in locals)."""

    out_dir: str
    digest: str
    info: Dict[str, Any]
    stopper: Any
    total: int
    step: int = 0
    best_step: Optional[int] = None
    val_stats: Optional[Dict[str, float]] = None

    @property
    def done(self) -> bool:
        """Whether the run has reached its last step or stopped early."""
        return self.step >= self.total or bool(self.stopper.should_stop())

    def path(self, name: str) -> str:
        """A file of the run folder."""
        return os.path.join(self.out_dir, name)

    def write_info(self) -> None:
        """Replace run.json with the run's identity and progress."""
        self.info.update(step=self.step, total_steps=self.total, finished=self.done, best_step=self.best_step)
        write_atomically(self.path(RUN_INFO), json.dumps(self.info, indent=1, sort_keys=True, default=str) + "\n")


# -- the loop ----------------------------------------------------------------------------------

def _validate(trainer, config, run: _Run) -> None:
    """EditTrainer.validate; on a new best by early_stop_key the checkpoint is replaced, as EasyEdit saves."""
    stats = trainer.validate(steps=config.val_steps)
    logger.info("MEND validation after step %d: %s", run.step,
                ", ".join(f"{k}={v:.4g}" for k, v in sorted(stats.items()) if isinstance(v, (int, float))))
    run.val_stats = {k: float(v) for k, v in stats.items() if isinstance(v, (int, float))}
    if run.stopper.update(run.step, stats):
        run.best_step = run.step
        save_torch_atomically(checkpoint(trainer, run), run.path(CHECKPOINT))
    if run.stopper.should_stop():
        logger.info("No improvement of %s for %d steps: stopping early", config.early_stop_key,
                    config.early_stop_patience)


def _save(trainer, run: _Run) -> None:
    """Replace state.pt with the state after `run.step`, then update run.json."""
    save_torch_atomically(training_state(trainer, run), run.path(STATE))
    run.write_info()


def _train(trainer, config, train_set, run: _Run, progress: bool) -> None:
    """BaseTrainer.run's loop, resumable: train_step per batch, validation, saves at step boundaries."""
    from easyedit_detox.core.progress import progress_bar

    from easyeditor.trainer.utils import RunningStatAverager

    averager = RunningStatAverager("train")
    log_every = max(1, int(config.log_interval or 1))
    save_every = max(1, int(config.model_save_pt or 1))
    bar = progress_bar(run.total, "MEND meta-training", "step", enabled=progress, initial=run.step)
    try:
        while not run.done:
            step = run.step + 1
            indices = batch_indices(step, len(train_set), config.batch_size, config.seed)
            batch = train_set.collate_gpt_fn([train_set[i] for i in indices])
            trainer.global_iter = step  # train_step reads it to close accumulation windows
            info = trainer.train_step(batch)
            run.step = step
            averager.add(info)
            bar.update(1)
            bar.set_postfix(loss=f"{info['loss/total']:.3g}", edit_acc=f"{info['edit/acc']:.2f}")
            if step % log_every == 0:
                stats = averager.average()
                averager.reset()
                logger.info("MEND step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in sorted(stats.items())))
            validated = step % config.val_interval == 0 or step == run.total
            if validated:
                _validate(trainer, config, run)
            if validated or step % save_every == 0 or run.done:
                _save(trainer, run)
    finally:
        bar.close()
    if not os.path.isfile(run.path(CHECKPOINT)):  # e.g. a finished run whose checkpoint was deleted
        _validate(trainer, config, run)
        _save(trainer, run)


def _read_state(path: str, out_dir: str) -> Dict[str, Any]:
    """state.pt as saved by `_save`; UserError when it is something else."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of every kind: the file is not one this module wrote
        raise UserError(f"{path} cannot be read as a train-mend state ({type(exc).__name__}); "
                        f"delete {out_dir!r} to start the run over") from None


def _resolve(config) -> torch.device:
    """The torch.device the training config names (an int, cpu, cuda, cuda:N or auto)."""
    from easyedit_detox.core.devices import resolve_device

    try:
        return resolve_device(config.device)
    except HyperParamsError as exc:
        raise HyperParamsError(f"MEND training config: {exc}") from None


def train_mend(hparams_path: str, train_path: str, val_path: str, out_dir: str,
               max_steps: Optional[int] = None, progress: bool = True, model_dir: Optional[str] = None,
               device: Optional[str] = None) -> str:
    """Meta-train MEND on SafeEdit with easyeditor's EditTrainer; returns the checkpoint path (resumes `out_dir`)."""
    from easyedit_detox.data.safeedit import SafeEditDataset
    from easyedit_detox.easyedit.upstream import PYPI, flavour
    from .device_scope import on_device

    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise UserError(f"max_steps must be a positive integer or None, got {max_steps!r}")
    from .hparams import apply_overrides

    config = load_training_hparams(hparams_path)
    overrides = apply_overrides(config, model=model_dir, device=device)  # part of the run's digest below
    check_supported(config)
    device = _resolve(config)  # before anything is written: a wrong device leaves no folder behind
    train_records, val_records = SafeEditDataset(train_path), SafeEditDataset(val_path)
    identity = config_digest(config, train_path, val_path)
    info = check_out_dir(out_dir, identity)
    total = total_steps(config, len(train_records), max_steps)
    run = _Run(out_dir=out_dir, digest=identity["digest"], stopper=new_stopper(config), total=total,
               info=info or {"kind": _KIND, "digest": identity["digest"], "covered": identity["covered"],
                             "hparams": os.path.abspath(yaml_path(hparams_path)), "easyeditor": flavour(),
                             "train": os.path.abspath(train_path), "val": os.path.abspath(val_path),
                             "checkpoint": CHECKPOINT, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                             **({"overrides": overrides} if overrides else {})})
    state_path = run.path(STATE)
    state = _read_state(state_path, out_dir) if os.path.isfile(state_path) else None
    if state is not None and state.get("digest") != run.digest:
        raise UserError(f"{state_path} belongs to another configuration than {RUN_INFO} says; "
                        f"delete {out_dir!r} to start over")
    finished = state is not None and (state["step"] >= total or state["stopper"]["stop"])
    if finished and os.path.isfile(run.path(CHECKPOINT)):
        logger.info("MEND training in %s is complete (%d of %d steps)", out_dir, state["step"], total)
        return run.path(CHECKPOINT)
    tokenizer = load_tokenizer(config)
    os.makedirs(out_dir, exist_ok=True)
    run.write_info()

    logger.info("MEND meta-training with %s easyeditor on %s, %d steps, into %s", flavour(), device, total, out_dir)
    max_length = getattr(config, "max_length", None) or DEFAULT_MAX_LENGTH
    train_set = SafeEditMendDataset(train_records, tokenizer, max_length, device)
    val_set = SafeEditMendDataset(val_records, tokenizer, max_length, device)
    # Git's easyeditor reads hparams.device itself (and its isinstance(x, torch.device) checks break under
    # on_device's torch stand-in); PyPI's hard-codes cuda:N, which on_device sends to `device`.
    scope = on_device(device) if flavour() == PYPI else contextlib.nullcontext()
    with scope, fast_weights_for_pypi_mend():
        trainer = build_trainer(config, device, train_set, val_set, resuming=state is not None)
        train_set.device = val_set.device = input_device(trainer.model.model)  # model_parallel: embeddings' GPU
        if state is not None:
            restore_training_state(trainer, run, state)
            logger.info("Resuming MEND training in %s at step %d of %d", out_dir, run.step, total)
        _train(trainer, config, train_set, run, progress)
    return run.path(CHECKPOINT)
