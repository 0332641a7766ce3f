"""The evaluation: model states x probes, for any EasyEdit method, resumable, leaving the caller's model as it was.

Model states: the vanilla model; each case's edited model (the default: every case is edited from the
vanilla model and undone after); or, with `sequential=True`, the model holding the first n edits at
every checkpoint. For a state the runner gathers every probe's items (SafeEdit's five inputs per case,
KQA, CSum, over-refusal), generates them in shared batches (generators.py), and hands each probe its
responses (probes/base.py). Edits whose changed tensors are Linear maps (DINM, FT, MEND) are undone at once
and their post-edit items generated later for several cases in one batch, each row with its own case's
tensors (rowwise.py). Lines go to the results folder as they finish (results.py); summaries come from
running totals (tally.py) and are written by summary.py; with several processes (torchrun / accelerate
launch) each takes every world_size-th group of cases and rank 0 merges (distributed.py). What a run may
be asked for is settings.py; the `evaluate` command's file loading is commands/evaluate.py.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


from easyedit_detox.methods.hparams import hparams_dict
from easyedit_detox.core.progress import progress_bar
from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import file_digest

from easyedit_detox.methods.registry import Method, adapter_for, resolve_method
from easyedit_detox.methods.session import UndoSession, generation_model
from easyedit_detox.core.weights import combined_digest, digests
from easyedit_detox.data.safeedit import SafeEditCase, SafeEditDataset
from easyedit_detox.core.devices import input_device
from .cache import ResponseCache, default_cache_dir, environment_facts, model_fingerprint, tokenizer_fingerprint
from .easyedit_protocol import seed_like_easyedit
from .formats import RAW, PromptFormat
from .distributed import distributed_rank, launch_id
from .generation import Generation, GenerationSettings
from .generators import Generator
from .judges import Judge, get_judge
from .probes import GENERAL_PROBES, PROBES, Item, ProbeContext, State, general_line
from .probes.base import DETOXIFIED, VANILLA
from .probes.safeedit import NAME as SAFEEDIT, SafeEditProbe, case_line
from .results import (CASES_FILE, DETOXIFIED_FILE, GENERAL_FILE, SEQUENTIAL_FILE, ResultsFolder, marker_path, read_lines,
                      read_marker, write_text)
from .rowwise import RowwiseEdits, edited_modules
from .settings import (PROTOCOLS, RUNTIME_KEYS, TIME_PHASES, EvaluationSettings, generation_defaults, select_cases,
                       spread)
from .summary import SummaryWriting
from .tally import GeneralTally, SafeEditTally, checkpoint_scores
from .training import check_disjoint

LOG = logging.getLogger(__name__)

class Evaluation(SummaryWriting):
    """One method, one model, one data file, one judge: runs the states and writes the folder."""

    def __init__(self, model, tok, hparams, dataset: SafeEditDataset, out_dir: str, judge="keywords",
                 apply_fn: Optional[Callable] = None, model_label: Optional[str] = None,
                 settings: Optional[EvaluationSettings] = None, generation: Optional[GenerationSettings] = None,
                 prefer: Optional[str] = None):
        self.model, self.tok, self.hparams, self.dataset = model, tok, hparams, dataset
        self.settings = s = settings or EvaluationSettings()
        if s.protocol not in PROTOCOLS:
            raise UserError(f"generation protocol {s.protocol!r} is unknown; use one of {list(PROTOCOLS)}")
        if s.protocol == "easyedit" and s.prompt_format != RAW:
            raise UserError("--generation easyedit reproduces EasyEdit's test_safety_gen, which feeds SafeEdit's raw "
                            "text; use it with --prompt-format raw, or --generation greedy for the chat format")
        self.format = PromptFormat(s.prompt_format, tok)
        self.judge: Judge = get_judge(judge)
        # The classifier judge runs beside the evaluated model: each torchrun rank on its own GPU.
        self.judge.to(input_device(model))
        name = str(hparams.alg_name)
        if apply_fn is None:
            self.method = resolve_method(name, prefer)
        else:
            self.method = Method(name, apply_fn, adapter_for(name, prefer))
        if generation is None:
            length, output = generation_defaults(hparams)
            generation = GenerationSettings(length, output, batch_size=s.batch_size)
        self.gen = generation
        self.suffix = (getattr(hparams, "suffix_system_prompt", None) or None) if self.method.uses_suffix else None
        self.model_label = model_label or str(getattr(model.config, "_name_or_path", "") or hparams.model_name)
        rank, world = distributed_rank()
        self.rank = s.rank if s.rank is not None else rank
        self.world = s.world_size if s.world_size is not None else world
        self.run_id = s.run_id or launch_id()
        self.vanilla_digests = digests(model)  # once, before any edit: the restore checks and the cache key
        self.fingerprint = model_fingerprint(model, self.vanilla_digests)
        self.safeedit: SafeEditProbe = PROBES[SAFEEDIT].build(ProbeContext(
            cases=(), max_length=self.gen.max_length, max_output_length=self.gen.max_output_length, tokenizer=tok,
            judge=self.judge, prompt_format=self.format))
        self.generator = Generator(tok, self.gen, s.protocol, self.safeedit.name, progress=s.progress)
        self.out_dir = out_dir
        self.general: List = []
        self.folder: Optional[ResultsFolder] = None
        self.cache = None
        self.editor: Optional[UndoSession] = None
        self.vanilla_generated = 0
        # Wall seconds of this process per phase; a resumed run adds them to what summary.json already held.
        self.timings = {phase: 0.0 for phase in TIME_PHASES}
        self.earlier_time: Optional[Dict[str, float]] = {}
        self.train_cases: List[SafeEditCase] = []
        self.detoxified: Optional[Dict[str, Any]] = None  # the global protocol's edit (detoxified.json)

    def prepare(self, cases: Sequence[SafeEditCase]) -> None:
        """Build the general probes for `cases`, open (or resume) the results folder and the cache."""
        s = self.settings
        self.general_ids = self._general_case_ids(cases)
        held = [c.case_id for c in cases] if s.sequential else self.general_ids
        if s.train is not None:
            self.train_cases = s.train.cases()
            check_disjoint(self.train_cases, cases)
            # The benign prompts stay clear of what the model was trained on, where that is the evaluated file.
            same_file = os.path.abspath(s.train.path) == os.path.abspath(self.dataset.path)
            held = [c.case_id for c in self.train_cases] if same_file else []
        # Benign prompts may come from any record of the file, also beyond --limit.
        pool = list(SafeEditDataset(self.dataset.path)) if s.general_cases > 0 else []
        context = ProbeContext(cases=pool, max_length=self.gen.max_length, tokenizer=self.tok,
                               judge=self.judge, items_per_probe=s.general_items,
                               options={**s.general_options, "edited_ids": held}, device=input_device(self.model),
                               prompt_format=self.format)
        self.general = [p for p in (cls.build(context) for cls in GENERAL_PROBES.values())
                        if p is not None] if s.general_cases > 0 else []
        self.run_info = {
            "method": self.method.name, "model": self.model_label, "model_fingerprint": self.fingerprint,
            "data": os.path.abspath(self.dataset.path), "data_sha256": file_digest(self.dataset.path),
            "judge": self.judge.name, "suffix": self.suffix, "prompt_format": self.format.name,
            "generation": self.generation_info(),
            "hparams": hparams_dict(self.hparams, RUNTIME_KEYS), "mode": self.protocol_name,
            "general": self.general_info(), "case_ids": [c.case_id for c in cases],
        }
        if s.sequential:
            self.run_info["checkpoint_every"] = s.checkpoint_every
        if s.train is not None:
            self.run_info["train"] = s.train.describe(self.train_cases)
        if s.overrides:  # only when given, so folders written before overrides existed still resume
            self.run_info["overrides"] = dict(s.overrides)
        suffix = "" if self.world == 1 else f".rank{self.rank}"
        # Adding cases changes no finished number only when no general probe spreads its states and items over
        # the selection, and each case is edited from the vanilla model.
        may_add = not self.general and not s.sequential and self.world == 1
        self.folder = ResultsFolder(self.out_dir, self.run_info, suffix=suffix, may_add_cases=may_add)
        self.earlier_time = self._earlier_time()
        if s.use_cache and s.protocol == "greedy":
            facts = {"model": self.fingerprint, "tokenizer": tokenizer_fingerprint(self.tok), "protocol": s.protocol,
                     "prompt_format": self.format.name,
                     "batch_size": self.gen.batch_size, **environment_facts(self.model)}
            self.cache = ResponseCache(s.cache_dir or default_cache_dir(), facts, writer=f"{os.getpid()}-{self.rank}")

    def edit_request(self, case: SafeEditCase) -> Dict[str, Any]:
        """The case's edit request as the method sees it: the suffix where it uses one, in the run's prompt format."""
        return self.format.request(case.edit_request(self.suffix))

    # -- facts recorded with the results -------------------------------------------------------
    def generation_info(self) -> Dict[str, Any]:
        """The generation settings of the run (run.json and summary.json)."""
        s = self.settings
        info = {"protocol": s.protocol, "max_length": self.gen.max_length,
                "max_output_length": self.gen.max_output_length, "greedy": s.protocol == "greedy",
                # Batch composition can change a greedy response in half precision (see the README).
                "batch_size": self.gen.batch_size, "cases_per_batch": s.cases_per_batch,
                "dtype": str(next(self.model.parameters()).dtype)}
        if s.protocol == "easyedit":
            info["seed"] = 42
        return info

    def general_info(self) -> Dict[str, Any]:
        """Which general probes run, on how many edited states, with which items and prompt formats."""
        if not self.general:
            return {}
        return {"cases": self.settings.general_cases, "items": self.settings.general_items,
                "states": ("checkpoints" if self.settings.sequential else [DETOXIFIED] if self.settings.train is not None
                           else list(self.general_ids)),
                "probes": {p.name: p.describe() for p in self.general}}

    # -- generation ----------------------------------------------------------------------------------
    def _generate(self, model, items: Sequence[Item], owners: Optional[Sequence[int]] = None,
                  rowwise: Optional[RowwiseEdits] = None, bar=None,
                  desc: str = "post-edit responses", phase: str = "post") -> List[Generation]:
        """Responses to `items` from `model` (rows tagged with their state when `rowwise` is given).

        Progress: `bar` (a caller's) advances per finished input; without one, a bar of its own is shown.
        The wall time goes to `phase`, less the general probes' share (by tokens), which goes to "general".
        """
        if not items:
            return []
        started = time.perf_counter()
        gens = self.generator.generate(model, items, owners, rowwise, bar, desc)
        elapsed = time.perf_counter() - started
        tokens = [g.input_tokens + g.new_tokens for g in gens]
        general = sum(t for it, t in zip(items, tokens) if it.probe != self.safeedit.name)
        share = general / max(sum(tokens), 1)
        self.timings["general"] += elapsed * share
        self.timings[phase] += elapsed * (1.0 - share)
        return gens

    def _state_items(self, state: State) -> List[Item]:
        items = self.safeedit.items(state)
        if state.general:
            for probe in self.general:
                items.extend(probe.items(state))
        return items

    def _answer_vanilla(self, state: State) -> Tuple[List[Item], List[Generation]]:
        """The vanilla state's items: from the cache, the rest generated in length-sorted chunks."""
        items = self._state_items(state)
        found: Dict[int, Generation] = {}
        missing: List[int] = []
        for i, item in enumerate(items):
            hit = self.cache.get(item.prompt) if self.cache else None
            if hit is None:
                missing.append(i)
            else:
                found[i] = hit
        if missing:
            LOG.info("vanilla pass: %d inputs to generate, %d from the cache", len(missing), len(found))
            # Chunks keep what is generated safe on disk if the run stops part-way.
            chunk = max(self.gen.batch_size * 8, 1)
            if self.settings.protocol == "easyedit":
                chunk = len(missing)
            bar = progress_bar(len(missing), "vanilla responses", "input", enabled=self.settings.progress)
            for start in range(0, len(missing), chunk):
                part = missing[start:start + chunk]
                for i, gen in zip(part, self._generate(self.model, [items[i] for i in part], bar=bar,
                                                       phase="vanilla")):
                    found[i] = gen
                    if self.cache:
                        self.cache.put(items[i].prompt, gen)
            bar.close()
            self.vanilla_generated += len(missing)
        return items, [found[i] for i in range(len(items))]

    # -- probes' answers -> lines ----------------------------------------------------------------------
    def _general_lines(self, state: State, items: Sequence[Item], gens: Sequence[Generation]) -> List[Dict[str, Any]]:
        lines = []
        for probe in self.general:
            mine = [(it, g) for it, g in zip(items, gens) if it.probe == probe.name]
            if not mine:
                continue
            started = time.perf_counter()
            scores = probe.score([it for it, _ in mine], [g for _, g in mine])
            self.timings["general"] += time.perf_counter() - started
            lines.extend(general_line(state, it, g, sc) for (it, g), sc in zip(mine, scores))
        return lines

    def _safeedit_sides(self, state: State, items: Sequence[Item], gens: Sequence[Generation]) -> Dict[int, Dict]:
        mine = [(it, g) for it, g in zip(items, gens) if it.probe == self.safeedit.name]
        started = time.perf_counter()
        sides = self.safeedit.sides(state, [it for it, _ in mine], [g for _, g in mine])
        self.timings["judge"] += time.perf_counter() - started
        return sides

    # -- the whole run ------------------------------------------------------------------------------
    def run(self, cases: Sequence[SafeEditCase]) -> Optional[Dict[str, Any]]:
        """Evaluate `cases` (resuming what the folder holds); returns the summary (rank 0)."""
        cases = list(cases)
        self.prepare(cases)
        if self.settings.protocol == "easyedit":
            seed_like_easyedit()
        self.editor = UndoSession(self.model, self.tok, self.hparams, method=self.method,
                             vanilla_digests=self.vanilla_digests, progress=self.settings.progress)
        if self.settings.sequential:
            return self._run_sequential(list(cases))
        if self.settings.train is not None:
            return self._run_global(list(cases))
        return self._run_per_case(list(cases))

    @property
    def protocol_name(self) -> str:
        """'per-case' (each case edited from the vanilla model), 'sequential' or 'global' (--train)."""
        s = self.settings
        return "sequential" if s.sequential else "global" if s.train is not None else "per-case"

    def write_easyedit_metrics(self, path: str) -> int:
        """Write the finished cases as EasyEdit-git's SafetyEditor `all_metrics` list (JSON); returns how many."""
        from .easyedit_metrics import easyedit_all_metrics

        by_id = {case.case_id: case for case in self.dataset}
        items = easyedit_all_metrics(self.folder.read(CASES_FILE), lambda i: self.edit_request(by_id[i]))
        write_text(path, json.dumps(items, indent=2, ensure_ascii=False) + "\n")
        return len(items)

    def _general_case_ids(self, cases: Sequence[SafeEditCase]) -> List[int]:
        return [c.case_id for c in spread(cases, self.settings.general_cases)]

    def _run_per_case(self, cases: List[SafeEditCase]) -> Optional[Dict[str, Any]]:
        # This process's lines (the whole folder's when it runs alone) are read once, for resuming and the totals.
        own_cases, own_general = self.folder.read(CASES_FILE), self.folder.read(GENERAL_FILE)
        done_rows = own_cases if self.world == 1 else self._all_rows(CASES_FILE)
        done_ids = {row["case_id"] for row in done_rows}
        general_ids = set(self.general_ids) if self.general else set()
        excluded = tuple(sorted(general_ids))
        size = max(1, self.settings.cases_per_batch)
        groups = [cases[i:i + size] for i in range(0, len(cases), size)]
        mine = [[c for c in g if c.case_id not in done_ids] for k, g in enumerate(groups) if k % self.world == self.rank]
        todo = [c for g in mine for c in g]
        LOG.info("%d case(s) to run, %d already in %s", len(todo), len(done_ids), self.folder.folder)

        general_rows = own_general if self.world == 1 else self._all_rows(GENERAL_FILE)
        tally, general = self._tallies(own_cases, own_general)
        needs_general_vanilla = bool(self.general) and self.rank == 0 and not any(
            r["state"] == VANILLA for r in general_rows)
        vanilla_sides = self._vanilla_pass(todo, needs_general_vanilla, excluded, general)

        bar = progress_bar(len(todo), f"SafeEdit {self.method.name}", "case", enabled=self.settings.progress)
        try:
            for group in mine:
                if not group:
                    continue
                states = [State(c.case_id, (c,), self.suffix, general=c.case_id in general_ids,
                                excluded_ids=excluded) for c in group]
                for case, (answers, info) in zip(group, self._run_group(group, states)):
                    state, items, gens = answers
                    post = self._safeedit_sides(state, items, gens)[case.case_id]
                    lines = self._general_lines(state, items, gens)
                    line = case_line(case, self.method.name, self.judge.name, vanilla_sides[case.case_id], post, info)
                    self.folder.append(GENERAL_FILE, lines)  # before the case line, which marks the case done
                    self.folder.append(CASES_FILE, [line])
                    tally.add(line)
                    for g in lines:
                        general.add(g)
                    bar.update(1)
                    bar.set_postfix(DS_pre=f"{tally.ds('pre'):.1f}", DS_post=f"{tally.ds('post'):.1f}")
                if self.world == 1:
                    self.write_summary(tally, general)
        finally:
            bar.close()
        if todo:
            # Each edit's undo checked the tensors it wrote; once per run, every tensor (a method writing
            # through `.data` escapes the version counters the per-case check reads).
            self.editor.verify_all()
        if self.world == 1:
            return self.write_summary(tally, general)
        return self._finish_distributed()

    def _tallies(self, case_rows, general_rows) -> Tuple[SafeEditTally, GeneralTally]:
        """Running totals holding the lines already written (a resumed run's)."""
        tally, general = SafeEditTally(), self._general_tally()
        for row in case_rows:
            tally.add(row)
        for row in general_rows:
            general.add(row)
        return tally, general

    def _vanilla_pass(self, todo: Sequence[SafeEditCase], with_general: bool, excluded: Tuple[int, ...],
                      general: GeneralTally) -> Dict[int, Dict]:
        """The vanilla model's answers to `todo` (and the general probes, written and tallied); the SafeEdit sides."""
        if not todo and not with_general:
            return {}
        state = State(VANILLA, tuple(todo), None, general=with_general, excluded_ids=excluded)
        items, gens = self._answer_vanilla(state)
        lines = self._general_lines(state, items, gens)
        self.folder.append(GENERAL_FILE, lines)
        for line in lines:
            general.add(line)
        return self._safeedit_sides(state, items, gens)

    def answers_with_group(self, edit) -> bool:
        """Whether an edited case's answers wait for its group's, generated together with each row under its own
        case's tensors (rowwise.py): greedy generation and an edit that changed Linear weights in place."""
        return (self.settings.protocol == "greedy" and edit.in_place and bool(edit.written)
                and edited_modules(self.model, edit.written) is not None)

    def _run_group(self, group: Sequence[SafeEditCase], states: Sequence[State]):
        """Edit each case of `group` and answer its state; returns ((state, items, responses), edit info) per case."""
        rowwise = RowwiseEdits(self.model)
        answered: Dict[int, Tuple[State, List[Item], List[Generation]]] = {}
        infos: Dict[int, Dict[str, Any]] = {}
        pending: List[Tuple[int, State, List[Item]]] = []
        for k, (case, state) in enumerate(zip(group, states)):
            items = self._state_items(state)
            with self.editor.edited(self.edit_request(case)) as edit:
                infos[k] = edit.info
                self.timings["edit"] += edit.info["seconds"]
                if self.answers_with_group(edit):
                    rowwise.add(k, edit.edited_tensors(self.model))
                    pending.append((k, state, items))
                else:
                    model = generation_model(edit, self.model)
                    answered[k] = (state, items, self._generate(model, items))
        if pending:
            all_items, owners = [], []
            for k, _, items in pending:
                all_items.extend(items)
                owners.extend([k] * len(items))
            with rowwise.active():
                gens = self._generate(self.model, all_items, owners, rowwise)
            start = 0
            for k, state, items in pending:
                answered[k] = (state, items, gens[start:start + len(items)])
                start += len(items)
        return [(answered[k], infos[k]) for k in range(len(group))]

    # -- the global protocol ---------------------------------------------------------------------------
    def _run_global(self, cases: List[SafeEditCase]) -> Optional[Dict[str, Any]]:
        """Detoxify once from the training records, answer every case with that one model, restore the model."""
        if self.world != 1:
            raise UserError("--train detoxifies one model and answers every case with it, in one process; start it "
                            "without torchrun")
        self.method.adapter.refuse_global()
        done_rows = self.folder.read(CASES_FILE)
        done_ids = {row["case_id"] for row in done_rows}
        general_rows = self.folder.read(GENERAL_FILE)
        todo = [c for c in cases if c.case_id not in done_ids]
        tally, general = self._tallies(done_rows, general_rows)
        needs_general = {label: bool(self.general) and not any(r["state"] == label for r in general_rows)
                         for label in (VANILLA, DETOXIFIED)}
        vanilla_sides = self._vanilla_pass(todo, needs_general[VANILLA], (), general)
        if not todo and not needs_general[DETOXIFIED]:
            return self.write_summary(tally, general)
        requests = [self.edit_request(c) for c in self.train_cases]
        bar = progress_bar(len(requests), f"{self.method.name} detoxifying", "record", enabled=self.settings.progress)
        try:
            edit = self.editor.detoxify(requests, on_request=lambda done: bar.update(done - bar.n))
            bar.close()
            self.timings["edit"] += edit.info["seconds"]
            self._check_detoxified(edit)
            info = {"global": True, "seconds": edit.info["seconds"]}
            size = max(1, self.settings.cases_per_batch)
            chunks = [todo[i:i + size] for i in range(0, len(todo), size)] or [[]]
            answer_bar = progress_bar(len(todo), f"SafeEdit {self.method.name} (global)", "case",
                                      enabled=self.settings.progress)
            for k, chunk in enumerate(chunks):
                # Chunks of cases keep finished answers on disk if the run stops part-way.
                state = State(DETOXIFIED, tuple(chunk), self.suffix, general=needs_general[DETOXIFIED] and k == 0)
                items = self._state_items(state)
                gens = self._generate(self.model, items)
                sides = self._safeedit_sides(state, items, gens)
                lines = self._general_lines(state, items, gens)
                self.folder.append(GENERAL_FILE, lines)  # before the case lines, which mark the cases done
                for line in lines:
                    general.add(line)
                rows = [case_line(c, self.method.name, self.judge.name, vanilla_sides[c.case_id], sides[c.case_id],
                                  info) for c in chunk]
                self.folder.append(CASES_FILE, rows)
                for row in rows:
                    tally.add(row)
                answer_bar.update(len(chunk))
                if rows:
                    self.write_summary(tally, general)
            answer_bar.close()
        finally:
            bar.close()
            self.editor.restore_all()  # the caller gets the vanilla model back
        self.editor.verify_all()
        return self.write_summary(tally, general)

    def _check_detoxified(self, edit) -> None:
        """Record the detoxified weights' digest (detoxified.json); a resumed run must arrive at the same weights."""
        path = os.path.join(self.folder.folder, DETOXIFIED_FILE)
        facts = {"weights": self._kept_digest(), "written": len(edit.written), "edit": edit.info}
        try:
            with open(path, encoding="utf-8") as f:
                earlier = json.load(f)
        except FileNotFoundError:
            write_text(path, json.dumps(facts, indent=2, sort_keys=True) + "\n")
            self.detoxified = facts
            return
        if earlier.get("weights") != facts["weights"]:
            raise UserError(f"resuming {self.folder.folder}: detoxifying again from the same records gave other "
                            "weights than the interrupted run (the method is not deterministic here); delete the "
                            "folder to start over")
        self.detoxified = earlier

    # -- sequential edits ----------------------------------------------------------------------------
    def _run_sequential(self, cases: List[SafeEditCase]) -> Optional[Dict[str, Any]]:
        if self.world != 1:
            raise UserError("--sequential runs in one process (each edit starts from the previous ones); "
                            "start it without torchrun")
        every = self.settings.checkpoint_every or len(cases)
        marks = sorted({min(n, len(cases)) for n in range(every, len(cases) + every, every)})
        done = self.folder.read(SEQUENTIAL_FILE)
        done_after = [row["after_edits"] for row in done]
        general = self._general_tally()
        for row in self.folder.read(GENERAL_FILE):
            general.add(row)
        if 0 not in done_after:
            state = State(VANILLA, tuple(cases), None, general=bool(self.general))
            items, gens = self._answer_vanilla(state)
            sides = self._safeedit_sides(state, items, gens)
            self.folder.append(GENERAL_FILE, lines := self._general_lines(state, items, gens))
            for line in lines:
                general.add(line)
            row = self._checkpoint_row(0, [], sides, [], None)
            self.folder.append(SEQUENTIAL_FILE, [row])
            done.append(row)
        last = max(row["after_edits"] for row in done)
        bar = progress_bar(len(cases), f"sequential {self.method.name}", "edit", enabled=self.settings.progress)
        try:
            edits: List[Dict[str, Any]] = []
            for n, case in enumerate(cases, 1):
                edit = self.editor.keep(self.edit_request(case))
                self.timings["edit"] += edit.info["seconds"]
                bar.update(1)
                if n <= last:
                    if n == last:
                        self._check_replayed(done[-1])
                    continue
                edits.append({"case_id": case.case_id, **edit.info})
                if n in marks:
                    label = f"after {n} edits"
                    state = State(label, tuple(cases), self.suffix, general=bool(self.general),
                                  excluded_ids=tuple(c.case_id for c in cases[:n]))
                    items = self._state_items(state)
                    gens = self._generate(self.model, items)
                    sides = self._safeedit_sides(state, items, gens)
                    lines = self._general_lines(state, items, gens)
                    self.folder.append(GENERAL_FILE, lines)
                    for line in lines:
                        general.add(line)
                    row = self._checkpoint_row(n, [c.case_id for c in cases[:n]], sides, edits, self._kept_digest())
                    self.folder.append(SEQUENTIAL_FILE, [row])
                    done.append(row)
                    edits = []
                    self.write_sequential_summary(done, general)
        finally:
            bar.close()
            self.editor.restore_all()  # the caller gets the vanilla model back
        return self.write_sequential_summary(done, general)

    def _kept_digest(self) -> str:
        return combined_digest(digests(self.model, list(self.editor.kept_originals)))

    def _check_replayed(self, row: Dict[str, Any]) -> None:
        """After a resume re-applied the edits of the last checkpoint: the weights must be those it recorded."""
        if row.get("weights") and row["weights"] != self._kept_digest():
            raise UserError(f"resuming {self.folder.folder}: re-applying the first {row['after_edits']} edits gave other "
                            "weights than the interrupted run (the method is not deterministic here); delete the "
                            "folder to start over")

    def _checkpoint_row(self, n: int, edited: List[int], sides: Dict[int, Dict], edits, weights) -> Dict[str, Any]:
        return {"after_edits": n, "edited": edited, "edits": edits, "weights": weights,
                "scores": checkpoint_scores(sides, edited),
                "cases": {str(case_id): side for case_id, side in sides.items()}}

    # -- distributed -----------------------------------------------------------------------------
    def _all_rows(self, name: str) -> List[Dict[str, Any]]:
        rows = read_lines(os.path.join(self.folder.folder, name))
        if self.world > 1:
            stem = name[: -len(".jsonl")]
            for r in range(self.world):
                rows += read_lines(os.path.join(self.folder.folder, f"{stem}.rank{r}.jsonl"))
        return rows

    def _finish_distributed(self) -> Optional[Dict[str, Any]]:
        folder = self.folder.folder
        write_text(marker_path(folder, self.rank), self.run_id + "\n")
        if self.rank != 0:
            return None
        deadline = time.time() + self.settings.merge_timeout_s
        markers = [marker_path(folder, r) for r in range(self.world)]
        # A marker counts only when it holds this launch's id: a stale one from an earlier run never merges early.
        while not all(read_marker(m) == self.run_id for m in markers):
            if time.time() > deadline:
                raise RuntimeError(f"rank 0 gave up waiting for the other ranks' markers in {folder}")
            time.sleep(0.5)
        merged: Dict[Any, Dict[str, Any]] = {}
        for row in self._all_rows(CASES_FILE):
            merged.setdefault(row["case_id"], row)
        rows = sorted(merged.values(), key=lambda r: r["index"])
        general_rows = self._all_rows(GENERAL_FILE)
        import json

        write_text(os.path.join(folder, CASES_FILE), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        write_text(os.path.join(folder, GENERAL_FILE),
                   "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in general_rows))
        for r in range(self.world):
            for path in (os.path.join(folder, f"cases.rank{r}.jsonl"), os.path.join(folder, f"general.rank{r}.jsonl"),
                         markers[r]):
                if os.path.exists(path):
                    os.unlink(path)
        tally, general = SafeEditTally(), self._general_tally()
        for row in rows:
            tally.add(row)
        for row in general_rows:
            general.add(row)
        return self.write_summary(tally, general)

    # -- summaries ----------------------------------------------------------------------------------
    def _general_tally(self) -> GeneralTally:
        return GeneralTally({p.name: p.summary_key for p in self.general})

def evaluate(model, tok, hparams, data, out_dir: str, judge="keywords", case_ids: Optional[Sequence[int]] = None,
             limit: Optional[int] = None, **kwargs) -> Optional[Dict[str, Any]]:
    """Run the SafeEdit evaluation of `hparams.alg_name` on `model`; writes `out_dir`, returns the summary."""
    dataset = data if isinstance(data, SafeEditDataset) else SafeEditDataset(data, limit=limit)
    evaluation = Evaluation(model, tok, hparams, dataset, out_dir, judge=judge, **kwargs)
    return evaluation.run(select_cases(dataset, case_ids))
