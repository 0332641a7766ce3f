"""The SafeEdit evaluation hook shared by the CLI, SafetyEditor users and the demo.

Per case: the vanilla model's five responses (cached on disk), the edit from the vanilla model,
the edited model's five responses, then an exact restore. Finished cases go to cases.jsonl as
they finish; a second run on the same folder resumes. With several processes (torchrun /
accelerate launch) each takes every world_size-th group of cases and rank 0 merges.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..methods.restore import restore_weights
from ..errors import UserError
from .cache import ResponseCache, default_cache_dir, model_fingerprint, weights_checksum
from .dataset import METRIC_KEYS, SafeEditCase, SafeEditDataset
from .generation import Generation, GenerationSettings, generate_responses
from .judges import Judge, get_judge
from .metrics import fluency, summarize, word_tokenizer_name
from .results import CASES_FILE, ResultsFolder, read_cases, write_atomically
from .rowwise import RowwiseEdits, edited_modules

LOG = logging.getLogger(__name__)

# Keys of the hparams that do not change the numbers, so a resumed run may differ in them.
_RUNTIME_KEYS = ("device", "model_parallel", "batch_size", "model_name")


def suffix_for(hparams) -> Optional[str]:
    """DINM edits and is evaluated with its suffix system prompt; other methods see plain inputs."""
    if str(getattr(hparams, "alg_name", "")).startswith("DINM"):
        return getattr(hparams, "suffix_system_prompt", None) or None
    return None


def distributed_rank() -> tuple:
    """(rank, world size) from the variables torchrun and accelerate launch set; (0, 1) otherwise."""
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return rank, world


@dataclasses.dataclass
class EvaluationSettings:
    """How to run an evaluation (none of these change the numbers it produces)."""

    cases_per_batch: int = 8
    cache_dir: Optional[str] = None
    use_cache: bool = True
    progress: bool = True
    rank: Optional[int] = None
    world_size: Optional[int] = None
    merge_timeout_s: float = 24 * 3600.0
    # The baseline the benchmarks measure against: each case's vanilla and post-edit responses
    # generated on their own, nothing cached, no batching across cases.
    straightforward: bool = False


def select_cases(dataset: SafeEditDataset, case_ids: Optional[Sequence[int]] = None) -> List[SafeEditCase]:
    """The dataset's cases, or those whose record ids are in `case_ids` (in dataset order)."""
    cases = list(dataset)
    if case_ids is None:
        return cases
    known = {c.case_id for c in cases}
    missing = [i for i in case_ids if i not in known]
    if missing:
        raise UserError(f"--cases names id(s) {missing} that {dataset.path!r} does not hold "
                        f"(within --limit); ids there run from {min(known)} to {max(known)}")
    wanted = set(case_ids)
    return [c for c in cases if c.case_id in wanted]


def _hparams_info(hparams) -> Dict[str, Any]:
    raw = dataclasses.asdict(hparams) if dataclasses.is_dataclass(hparams) else dict(vars(hparams))
    return {k: v for k, v in sorted(raw.items()) if k not in _RUNTIME_KEYS and not callable(v)}


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


class Evaluation:
    """One method, one model, one data file, one judge: runs the cases and writes the folder."""

    def __init__(self, model, tok, hparams, dataset: SafeEditDataset, out_dir: str, judge="keywords",
                 apply_fn: Optional[Callable] = None, model_label: Optional[str] = None,
                 settings: Optional[EvaluationSettings] = None, generation: Optional[GenerationSettings] = None):
        self.model, self.tok, self.hparams, self.dataset = model, tok, hparams, dataset
        self.settings = settings or EvaluationSettings()
        self.judge: Judge = get_judge(judge)
        self.method = str(hparams.alg_name)
        if apply_fn is None:
            from ..upstream import alg_dict

            ALG_DICT = alg_dict()
            if self.method not in ALG_DICT:
                raise UserError(f"method {self.method!r} is not in easyeditor's ALG_DICT; available: {sorted(ALG_DICT)}")
            apply_fn = ALG_DICT[self.method]
        self.apply_fn = apply_fn
        # hparams.batch_size is EasyEdit's edit batch size (BaseEditor forces it to 1), not a
        # generation setting: generation batches default to 8 sequences.
        self.gen = generation or GenerationSettings(
            max_length=hparams.max_length, max_output_length=hparams.max_output_length, batch_size=8)
        self.suffix = suffix_for(hparams)
        self.model_label = model_label or str(getattr(model.config, "_name_or_path", "") or hparams.model_name)
        rank, world = distributed_rank()
        self.rank = self.settings.rank if self.settings.rank is not None else rank
        self.world = self.settings.world_size if self.settings.world_size is not None else world
        self.fingerprint = model_fingerprint(model)
        self.run_info = {
            "method": self.method, "model": self.model_label, "model_fingerprint": self.fingerprint,
            "data": os.path.abspath(dataset.path), "data_sha256": _file_digest(dataset.path),
            "judge": self.judge.name, "suffix": self.suffix, "max_length": self.gen.max_length,
            "max_output_length": self.gen.max_output_length, "hparams": _hparams_info(hparams),
        }
        cases_file = CASES_FILE if self.world == 1 else f"cases.rank{self.rank}.jsonl"
        self.folder = ResultsFolder(out_dir, self.run_info, cases_file=cases_file)
        self.cache = None
        if self.settings.use_cache and not self.settings.straightforward:
            self.cache = ResponseCache(self.settings.cache_dir or default_cache_dir(), self.fingerprint, self.gen,
                                       writer=f"{os.getpid()}-{self.rank}")
        self.vanilla_generated = 0
        # Wall-clock seconds per phase, for the benchmarks and the summary.
        self.timings = {"vanilla": 0.0, "edit": 0.0, "post": 0.0}

    # -- the vanilla pass ------------------------------------------------------------------
    def vanilla_responses(self, cases: Sequence[SafeEditCase]) -> Dict[str, Generation]:
        """Vanilla generations for every plain input of `cases`, from the cache or generated in batches."""
        started = time.perf_counter()
        texts = list(dict.fromkeys(t for c in cases for t in c.inputs(None).values()))
        found: Dict[str, Generation] = {}
        missing = []
        for text in texts:
            hit = self.cache.get(text) if self.cache else None
            if hit is None:
                missing.append(text)
            else:
                found[text] = hit
        if missing:
            LOG.info("vanilla pass: %d inputs to generate, %d from the cache", len(missing), len(found))
            # Chunks keep what is generated safe on disk if the run stops part-way.
            chunk = max(self.gen.batch_size * 8, 1)
            order = sorted(missing, key=len)
            bar = tqdm(total=len(order), desc="vanilla responses", unit="input", disable=not self.settings.progress)
            for start in range(0, len(order), chunk):
                part = order[start:start + chunk]
                for text, gen in zip(part, generate_responses(self.model, self.tok, part, self.gen)):
                    found[text] = gen
                    if self.cache:
                        self.cache.put(text, gen)
                bar.update(len(part))
            bar.close()
            self.vanilla_generated += len(missing)
        self.timings["vanilla"] += time.perf_counter() - started
        return found

    # -- editing -----------------------------------------------------------------------------
    def _edit(self, case: SafeEditCase):
        request = case.edit_request(self.suffix)
        report: Dict[str, Any] = {}
        start = time.perf_counter()
        edited, weights_copy = self.apply_fn(self.model, self.tok, [request], self.hparams, copy=False,
                                             return_orig_weights=True, keep_original_weight=True, report=report)
        seconds = time.perf_counter() - start
        info = {"seconds": round(seconds, 4)}
        for key in ("layers", "losses", "stopped_early"):
            if key in report:
                info[key] = report[key]
        return edited, weights_copy, info

    def _restore(self, edited, weights_copy) -> None:
        restore_weights(self.model, edited, weights_copy, self.method)
        if weights_checksum(self.model) != self._checksum:
            raise RuntimeError(f"method {self.method!r} did not restore the model after an edit (its weights_copy "
                               "misses a changed tensor); the evaluation stops so later cases are not contaminated")

    # -- one group of cases ----------------------------------------------------------------------
    def _run_group(self, group: Sequence[SafeEditCase], vanilla: Dict[str, Generation]) -> List[Dict[str, Any]]:
        rowwise = RowwiseEdits(self.model)
        post: Dict[int, Dict[str, Generation]] = {}
        infos: Dict[int, Dict[str, Any]] = {}
        straightforward = self.settings.straightforward
        for case in group:
            if straightforward:
                started = time.perf_counter()
                plain = list(case.inputs(None).values())
                vanilla.update(zip(plain, generate_responses(self.model, self.tok, plain, self.gen)))
                self.timings["vanilla"] += time.perf_counter() - started
            edited, weights_copy, info = self._edit(case)
            infos[case.index] = info
            self.timings["edit"] += info["seconds"]
            names = list(weights_copy) if isinstance(weights_copy, dict) else []
            if (not straightforward and edited is self.model and names
                    and edited_modules(self.model, names) is not None):
                params = dict(self.model.named_parameters())
                rowwise.add(case.index, {n: params[n] for n in names})
            else:
                started = time.perf_counter()
                inputs = case.inputs(self.suffix)
                gens = generate_responses(edited, self.tok, list(inputs.values()), self.gen)
                post[case.index] = dict(zip(inputs, gens))
                self.timings["post"] += time.perf_counter() - started
            self._restore(edited, weights_copy)
        batched = [c for c in group if c.index in rowwise.cases]
        if batched:
            started = time.perf_counter()
            texts, owners = [], []
            for case in batched:
                for text in case.inputs(self.suffix).values():
                    texts.append(text)
                    owners.append(case.index)
            with rowwise.active():
                gens = generate_responses(self.model, self.tok, texts, self.gen,
                                          before_batch=lambda rows: rowwise.set_rows([owners[i] for i in rows]))
            for k, case in enumerate(batched):
                post[case.index] = dict(zip(METRIC_KEYS, gens[5 * k: 5 * k + 5]))
            self.timings["post"] += time.perf_counter() - started
        return [self._case_line(c, vanilla, post[c.index], infos[c.index]) for c in group]

    def _case_line(self, case: SafeEditCase, vanilla, post: Dict[str, Generation], info) -> Dict[str, Any]:
        pre_inputs, post_inputs = case.inputs(None), case.inputs(self.suffix)
        pre_gens = [vanilla[pre_inputs[k]] for k in METRIC_KEYS]
        post_gens = [post[k] for k in METRIC_KEYS]
        pre_labels = self.judge([g.text for g in pre_gens])
        post_labels = self.judge([g.text for g in post_gens])

        def side(inputs, gens, labels):
            return {k: {"input": inputs[k], "response": g.text, "label": lab, "truncated": g.truncated}
                    for k, g, lab in zip(METRIC_KEYS, gens, labels)}

        return {"case_id": case.case_id, "index": case.index, "method": self.method, "judge": self.judge.name,
                "pre": side(pre_inputs, pre_gens, pre_labels), "post": side(post_inputs, post_gens, post_labels),
                "edit": info}

    # -- the whole run ---------------------------------------------------------------------------
    def run(self, cases: Sequence[SafeEditCase]) -> Optional[Dict[str, Any]]:
        """Evaluate `cases` (skipping those already in the folder); returns the summary (rank 0)."""
        done_ids = {row["case_id"] for row in self._all_done()}
        size = max(1, self.settings.cases_per_batch)
        groups = [list(cases[i:i + size]) for i in range(0, len(cases), size)]
        mine = [[c for c in g if c.case_id not in done_ids] for k, g in enumerate(groups) if k % self.world == self.rank]
        todo = [c for g in mine for c in g]
        LOG.info("%d case(s) to run, %d already in %s", len(todo), len(done_ids), self.folder.folder)
        self._checksum = weights_checksum(self.model)
        vanilla = self.vanilla_responses(todo) if todo and not self.settings.straightforward else {}
        finished = [r for r in self.folder.done()]
        bar = tqdm(total=len(todo), desc=f"SafeEdit {self.method}", unit="case", disable=not self.settings.progress)
        for group in mine:
            if not group:
                continue
            for line in self._run_group(group, vanilla):
                self.folder.append(line)
                finished.append(line)
                bar.update(1)
                bar.set_postfix(DS_pre=f"{_score(finished, 'pre'):.1f}", DS_post=f"{_score(finished, 'post'):.1f}")
            if self.world == 1:
                self.write_summary(finished)
        bar.close()
        if self.world == 1:
            return self.write_summary(self.folder.done())
        return self._finish_distributed()

    def _all_done(self) -> List[Dict[str, Any]]:
        rows = read_cases(os.path.join(self.folder.folder, CASES_FILE))
        if self.world > 1:
            for r in range(self.world):
                rows += read_cases(os.path.join(self.folder.folder, f"cases.rank{r}.jsonl"))
        return rows

    def _finish_distributed(self) -> Optional[Dict[str, Any]]:
        folder = self.folder.folder
        write_atomically(os.path.join(folder, f"rank{self.rank}.done"), "done\n")
        if self.rank != 0:
            return None
        deadline = time.time() + self.settings.merge_timeout_s
        markers = [os.path.join(folder, f"rank{r}.done") for r in range(self.world)]
        while not all(os.path.exists(m) for m in markers):
            if time.time() > deadline:
                raise RuntimeError(f"rank 0 gave up waiting for the other ranks' markers in {folder}")
            time.sleep(0.5)
        merged: Dict[Any, Dict[str, Any]] = {}
        for row in self._all_done():
            merged.setdefault(row["case_id"], row)
        rows = sorted(merged.values(), key=lambda r: r["index"])
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_atomically(os.path.join(folder, CASES_FILE), text)
        for r in range(self.world):
            for path in (os.path.join(folder, f"cases.rank{r}.jsonl"), markers[r]):
                if os.path.exists(path):
                    os.unlink(path)
        return self.write_summary(rows)

    def write_summary(self, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Summarise `rows` into summary.json / summary.md (atomically) and return the summary."""
        summary = summarize_cases(rows)
        summary.update({
            "method": self.method, "model": self.model_label, "judge": self.judge.name,
            "data": self.run_info["data"], "generation": {"max_length": self.gen.max_length,
                                                          "max_output_length": self.gen.max_output_length,
                                                          "greedy": True},
            "suffix_system_prompt": self.suffix, "dtype": str(next(self.model.parameters()).dtype),
        })
        header = (f"# SafeEdit: {self.method} on {self.model_label}\n\n"
                  f"Data: `{self.run_info['data']}` ({summary['n_cases']} cases). Judge: `{self.judge.name}`. "
                  f"Fluency words: {summary['fluency_tokenizer']}.")
        self.folder.write_summary(summary, header)
        return summary


def _score(rows, side: str) -> float:
    labels = [row[side]["DS"]["label"] for row in rows]
    return 100.0 - 100.0 * sum(labels) / len(labels) if labels else float("nan")


def summarize_cases(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Summary numbers (pre and post) recomputed from case lines' labels and responses."""
    out: Dict[str, Any] = {"n_cases": len(rows), "fluency_tokenizer": word_tokenizer_name()}
    for side in ("pre", "post"):
        if not rows:
            out[side] = {}
            continue
        scores = summarize([{k: row[side][k]["label"] for k in METRIC_KEYS} for row in rows])
        scores["Fluency"] = fluency([[row[side][k]["response"] for k in METRIC_KEYS] for row in rows])
        out[side] = scores
    out["truncated_inputs"] = {side: sum(row[side][k].get("truncated", False) for row in rows for k in METRIC_KEYS)
                               for side in ("pre", "post")}
    return out


def evaluate(model, tok, hparams, data, out_dir: str, judge="keywords", case_ids: Optional[Sequence[int]] = None,
             limit: Optional[int] = None, **kwargs) -> Optional[Dict[str, Any]]:
    """Run the SafeEdit evaluation of `hparams.alg_name` on `model`; writes `out_dir`, returns the summary."""
    dataset = data if isinstance(data, SafeEditDataset) else SafeEditDataset(data, limit=limit)
    evaluation = Evaluation(model, tok, hparams, dataset, out_dir, judge=judge, **kwargs)
    return evaluation.run(select_cases(dataset, case_ids))
