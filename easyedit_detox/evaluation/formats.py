"""Prompt formats: how an input text becomes the model's input, raw (SafeEdit's) or through the chat template.

- `raw`: the text as it is, tokenized with the tokenizer's own special tokens (the paper's protocol).
- `chat`: the tokenizer's chat template applied to one user turn holding the text, with the generation
  prompt. The returned text is tokenized like a raw one; where the tokenizer adds a BOS itself and the
  template also writes it, the template's is dropped from the text, so the ids are exactly
  `apply_chat_template`'s and no input starts with two BOS tokens.

Every input of a run goes through one `PromptFormat`: SafeEdit's five inputs, the over-refusal probe's
requests and the edit request (prompt and knowledge-constraint prompt), so a method is edited in the
format it is evaluated in.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping

from easyedit_detox.core.errors import UserError

RAW, CHAT = "raw", "chat"
PROMPT_FORMATS = (RAW, CHAT)


def chat_messages(text: str) -> List[Dict[str, str]]:
    """One user turn holding `text`."""
    return [{"role": "user", "content": text}]


def template_ids(tokenizer: Any, text: str) -> List[int]:
    """`apply_chat_template`'s ids for one user turn holding `text`, with the generation prompt."""
    ids = tokenizer.apply_chat_template(chat_messages(text), add_generation_prompt=True, tokenize=True)
    # transformers 5 returns a BatchEncoding, 4.x a list.
    return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)


class PromptFormat:
    """A callable turning an input text into the text the model reads, for one tokenizer."""

    def __init__(self, name: str, tokenizer: Any = None):
        if name not in PROMPT_FORMATS:
            raise UserError(f"prompt format {name!r} is unknown; use one of {list(PROMPT_FORMATS)}")
        self.name, self.tokenizer = name, tokenizer
        self._drop_bos = False
        if name == CHAT:
            self._check_chat()

    def _check_chat(self) -> None:
        tok = self.tokenizer
        if not getattr(tok, "chat_template", None):
            raise UserError(f"--prompt-format chat needs a tokenizer with a chat template, and "
                            f"{type(tok).__name__} of {getattr(tok, 'name_or_path', '') or 'this model'!r} has none; "
                            "use --prompt-format raw or a chat model's tokenizer")
        bos = getattr(tok, "bos_token", None)
        adds_bos = tok.bos_token_id is not None and tok("x").input_ids[:1] == [tok.bos_token_id]
        self._drop_bos = bool(bos) and adds_bos and self._template("Hello.").startswith(bos)
        expected = template_ids(tok, "Hello.")
        got = list(tok(self("Hello.")).input_ids)
        if got != expected:
            raise UserError("--prompt-format chat: this tokenizer adds special tokens that its chat template does "
                            f"not write ({got[:4]}... vs {expected[:4]}...), so chat inputs would not be the "
                            "template's; fix the tokenizer (add_bos_token / add_eos_token) or use --prompt-format raw")

    def _template(self, text: str) -> str:
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(chat_messages(text), tokenize=False, add_generation_prompt=True)
        except TemplateError as exc:
            raise UserError(f"the tokenizer's chat template rejects a single user message ({exc}); "
                            "use --prompt-format raw or a tokenizer whose template takes one") from None

    def __call__(self, text: str) -> str:
        if self.name == RAW:
            return text
        rendered = self._template(text)
        return rendered[len(self.tokenizer.bos_token):] if self._drop_bos else rendered

    def request(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """A copy of an EasyEdit request whose prompt and locality prompts are in this format."""
        out = copy.deepcopy(request)
        if self.name == RAW:
            return out
        out["prompt"] = self(out["prompt"])
        for pair in (out.get("locality") or {}).values():
            if isinstance(pair.get("prompt"), str):
                pair["prompt"] = self(pair["prompt"])
        return out


def prompt_format(name_or_format, tokenizer: Any = None) -> PromptFormat:
    """A PromptFormat from its name (or the one given)."""
    if isinstance(name_or_format, PromptFormat):
        return name_or_format
    return PromptFormat(name_or_format or RAW, tokenizer)
