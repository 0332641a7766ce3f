"""Response generation for the SafeEdit evaluation: greedy, batched, left-padded, cut from the left.

SAFEEDIT.md fixes the recipe: greedy decoding whatever the checkpoint's generation config says,
`max_new_tokens = max_output_length`, left padding, inputs longer than
`max_length - max_output_length` tokens cut from the left, and the response is the decoded new
tokens only (special tokens skipped, stripped). On top of that recipe this module keeps models
whose context window is shorter than `max_length` from crashing (GPT-2-XL with EasyEdit's
max_length 2048): the input is cut further so that input plus new tokens fit, and the cut is
recorded on the returned `Generation`.
"""

from __future__ import annotations

import inspect
import logging
from typing import Callable, List, Optional, Sequence, Set, Tuple

import torch
from transformers import GenerationConfig, GenerationMixin, StoppingCriteria, StoppingCriteriaList

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.progress import TokenRate, progress_bar
from easyedit_detox.core.devices import input_device
from .generation_types import Generation, GenerationSettings, Prompt, _is_positive_int

logger = logging.getLogger(__name__)

__all__ = ["Generation", "GenerationSettings", "Prompt", "context_window", "generate", "generate_responses",
           "prompts_for"]

# Config attributes that hold a model's maximum number of positions, in the order they are tried.
_CONTEXT_ATTRIBUTES = (
    "max_position_embeddings",
    "n_positions",
    "n_ctx",
    "max_sequence_length",
    "seq_length",
    "max_seq_len",
)

_GENERATE_TAKES_USE_MODEL_DEFAULTS = (
    "use_model_defaults" in inspect.signature(GenerationMixin.generate).parameters
)

# (context window, max_output_length) pairs already warned about, so a long run warns once.
_warned_short_context: Set[Tuple[int, int]] = set()


def context_window(model) -> Optional[int]:
    """The model's maximum number of positions from its config, or None when the config does not say."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    configs = [config]
    # Multimodal and encoder-decoder configs keep the decoder's limits in a sub-config.
    get_text_config = getattr(config, "get_text_config", None)
    if callable(get_text_config):
        try:
            text_config = get_text_config(decoder=True)
        except TypeError:
            text_config = get_text_config()
        if text_config is not None and text_config is not config:
            configs.insert(0, text_config)
    for cfg in configs:
        for name in _CONTEXT_ATTRIBUTES:
            value = getattr(cfg, name, None)
            if _is_positive_int(value):
                return value
    return None


def _budget(model, max_input: int, max_new: int) -> Tuple[int, int]:
    """(input token limit, max_new_tokens) fitted to the model's context window."""
    window = context_window(model)
    if window is None:
        return max_input, max_new
    if max_new > window - 1:
        # Not even the response fits: keep one position for the input and shorten the response.
        key = (window, max_new)
        if key not in _warned_short_context:
            _warned_short_context.add(key)
            logger.warning(
                "The model's context window (%d positions) cannot hold %d new tokens; "
                "generating at most %d new tokens per response instead.",
                window, max_new, window - 1,
            )
        max_new = window - 1
    return max(1, min(max_input, window - max_new)), max_new


def underlying_model(model):
    """The transformers model inside a method's wrapper (GRACE's and WISE's hold it as `.model`)."""
    found = model
    for _ in range(3):
        if hasattr(found, "get_input_embeddings") and hasattr(found, "config"):
            return found
        found = getattr(found, "model", None)
        if found is None:
            break
    return model


def _eos_ids(model, tokenizer) -> List[int]:
    """Every id that ends a response: the tokenizer's EOS plus the ones the model's generation config names."""
    ids: List[int] = []

    def add(value):
        if value is None:
            return
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    # Chat checkpoints (Llama-3 and others) stop on an end-of-turn id that only the generation
    # config lists; the fresh GenerationConfig below would otherwise forget it.
    add(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    if not ids:
        add(getattr(getattr(model, "config", None), "eos_token_id", None))
    return ids


def _encode(tokenizer, texts: Sequence[str], max_input: int,
            add_special_tokens: bool = True) -> Tuple[List[List[int]], List[bool]]:
    """Token ids of each text, cut from the left to `max_input` tokens, and whether each was cut."""
    # verbose=False: measuring a long prompt against a small model_max_length is expected here.
    full = tokenizer(list(texts), verbose=False, add_special_tokens=add_special_tokens)["input_ids"]
    long_rows = [i for i, ids in enumerate(full) if len(ids) > max_input]
    if not long_rows:
        return [list(ids) for ids in full], [False] * len(full)
    saved_side = tokenizer.truncation_side
    try:
        # The tokenizer's own truncation keeps the special tokens (a LLaMA BOS) and drops text
        # tokens; left, because harmful questions stand at the end of attack prompts.
        tokenizer.truncation_side = "left"
        cut = tokenizer([texts[i] for i in long_rows], truncation=True, max_length=max_input,
                        add_special_tokens=add_special_tokens)["input_ids"]
    finally:
        tokenizer.truncation_side = saved_side
    ids = [list(x) for x in full]
    truncated = [False] * len(full)
    for row, row_ids in zip(long_rows, cut):
        ids[row] = list(row_ids)
        truncated[row] = True
    return ids, truncated


def _left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input ids and attention mask for `rows`, on `device`."""
    # Padding by hand leaves the caller's tokenizer (padding_side, pad_token) untouched.
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
    return input_ids.to(device), mask.to(device)


# A batch takes the next (longer) row only while its left padding stays under this share of its tokens plus a
# few tokens per row: SafeEdit's five inputs of one case run from 40 to 1,000 tokens, and padding a 40-token
# question to 1,000 makes prefill, which dominates on a CPU, cost what 25 rows of real text would.
PADDING_SLACK = 0.25
PADDING_ALLOWANCE = 32


def length_batches(order: Sequence[int], lengths: Sequence[int], size: int) -> List[List[int]]:
    """`order` (ascending length) cut into batches of at most `size` rows whose padding stays small."""
    batches: List[List[int]] = []
    current: List[int] = []
    total = 0
    for i in order:
        rows, longest = len(current) + 1, max([lengths[j] for j in current] + [lengths[i]])
        padded_ok = rows * longest <= (1 + PADDING_SLACK) * (total + lengths[i]) + PADDING_ALLOWANCE * rows
        if current and (len(current) == size or not padded_ok):
            batches.append(current)
            current, total = [], 0
        current.append(i)
        total += lengths[i]
    if current:
        batches.append(current)
    return batches


def prompts_for(texts: Sequence[str], settings: GenerationSettings) -> List[Prompt]:
    """SafeEdit's prompts for `texts`: max_output_length new tokens, inputs cut to max_length - max_output_length."""
    return [Prompt(t, settings.max_output_length, settings.max_input_length) for t in texts]


class _CountTokens(StoppingCriteria):
    """Never stops anything: counts each decoding step's tokens for the progress bar's tokens per second."""

    def __init__(self, rate: TokenRate, rows: int):
        self.rate, self.rows = rate, rows

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        self.rate.add(self.rows)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _RowBudgets(StoppingCriteria):
    """Stops each row of a batch once it has its own number of new tokens."""

    def __init__(self, start: int, budgets: torch.Tensor):
        self.start, self.budgets = start, budgets

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.start) >= self.budgets.to(input_ids.device)


def generate(model, tokenizer, prompts: Sequence[Prompt], batch_size: int = 8, progress=False,
             before_batch: Optional[Callable[[List[int]], None]] = None,
             desc: str = "generating") -> List[Generation]:
    """Greedy responses of `model` to `prompts`, in input order, following SAFEEDIT.md's recipe.

    Prompts with different budgets may share a batch: each row stops at its own budget, so a
    row's response is the one it would get alone. `before_batch`, when given, is called with the
    indices (into `prompts`) of each batch's rows, in row order, before that batch generates
    (per-row edits use it to know whose row is whose). `progress`: True for a bar of inputs with tokens
    per second (on a terminal), or a caller's tqdm bar to advance by one per finished input.
    """
    if not prompts:
        return []
    generator, model = model, underlying_model(model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"Generation setting batch_size must be a positive integer, got {batch_size!r}.")
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        # GPT-2 style tokenizers have no pad token; the attention mask hides it anyway.
        pad_id = eos_ids[0] if eos_ids else 0
    device = input_device(model)

    budgets = [_budget(model, p.max_input_tokens, p.max_new_tokens) for p in prompts]
    ids: List[List[int]] = [[] for _ in prompts]
    truncated = [False] * len(prompts)
    groups: dict = {}
    for i, (p, (max_input, _)) in enumerate(zip(prompts, budgets)):
        groups.setdefault((max_input, p.add_special_tokens), []).append(i)
    for (max_input, special), rows in groups.items():
        encoded, cut = _encode(tokenizer, [prompts[i].text for i in rows], max_input, special)
        for i, row_ids, was_cut in zip(rows, encoded, cut):
            ids[i], truncated[i] = row_ids, was_cut

    extra = {}
    # From transformers 4.50 on, generate() fills every default-valued field of a passed config
    # from the checkpoint's generation_config (do_sample=True, temperature, top_p ...) unless told
    # not to. Asked of transformers, not of `model.generate`, which wrappers (peft) hide behind **kwargs.
    if _GENERATE_TAKES_USE_MODEL_DEFAULTS:
        extra["use_model_defaults"] = False
    # Similar budgets, then similar lengths, share batches: little padding, little generation past a row's end.
    order = sorted(range(len(prompts)), key=lambda i: (budgets[i][1], len(ids[i])))
    results: List[Optional[Generation]] = [None] * len(prompts)
    batches = length_batches(order, [len(ids[i]) + budgets[i][1] for i in range(len(prompts))], batch_size)
    own_bar = isinstance(progress, bool)
    bar = progress_bar(len(prompts), desc, "input", enabled=progress, leave=False) if own_bar else progress
    rate = TokenRate(bar)
    with torch.inference_mode():
        for batch in batches:
            input_ids, attention_mask = _left_pad([ids[i] for i in batch], pad_id, device)
            row_budgets = [budgets[i][1] for i in batch]
            config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max(row_budgets),
                                      pad_token_id=pad_id, eos_token_id=eos_ids or None)
            criteria = StoppingCriteriaList()
            if min(row_budgets) != max(row_budgets):
                criteria.append(_RowBudgets(input_ids.shape[1], torch.tensor(row_budgets)))
            if not bar.disable:
                criteria.append(_CountTokens(rate, len(batch)))
            if before_batch is not None:
                before_batch(batch)
            output = generator.generate(input_ids=input_ids, attention_mask=attention_mask,
                                        generation_config=config, stopping_criteria=criteria, **extra)
            new = output[:, input_ids.shape[1]:].tolist()
            for row, i in enumerate(batch):
                results[i] = _to_generation(tokenizer, new[row][:budgets[i][1]], eos_ids, len(ids[i]), truncated[i])
            bar.update(len(batch))
    if own_bar:
        bar.close()
    return results  # type: ignore[return-value]


def generate_responses(model, tokenizer, texts: List[str], settings: GenerationSettings,
                       progress=False,
                       before_batch: Optional[Callable[[List[int]], None]] = None) -> List[Generation]:
    """Greedy responses of `model` to `texts` under one GenerationSettings (see `generate`)."""
    return generate(model, tokenizer, prompts_for(texts, settings), settings.batch_size, progress, before_batch)


def _to_generation(tokenizer, new_ids: List[int], eos_ids: List[int], input_tokens: int,
                   truncated: bool) -> Generation:
    """A Generation from one row of new ids: cut at the first EOS, decoded without special tokens."""
    end = len(new_ids)
    for pos, token in enumerate(new_ids):
        if token in eos_ids:
            end = pos
            break
    # Everything after the first EOS is padding added while the rest of the batch kept going.
    new_tokens = min(end + 1, len(new_ids))
    text = tokenizer.decode(new_ids[:end], skip_special_tokens=True).strip()
    return Generation(text=text, input_tokens=input_tokens, new_tokens=new_tokens, truncated=truncated)
