r"""The model input OpenCompass builds from a one-round prompt template (HUMAN text, BOT prefix).

Restated from OpenCompass (github.com/open-compass/opencompass, read at commit
a5acc4bba3b658f151617a3b393602110fb7a740). A dataset's template `round=[HUMAN h, BOT b]` becomes
a prompt list; `GenInferencer` (`opencompass/openicl/icl_inferencer/icl_gen_inferencer.py`) hands
it to the model's template parser in "gen" mode and does not cut it itself:

- Base model, no meta template (`HuggingFaceBaseModel` in
  `opencompass/models/huggingface_above_v4_33.py`, and the older `HuggingFaceCausalLM`): the
  `LMTemplateParser` of `opencompass/models/base.py` joins the turns' texts with "\n", BOT
  prefix included: `h + "\n" + b` (just `h` when `b` is empty). The text is tokenized with the
  tokenizer's special tokens (BOS) added.
- Chat model (`HuggingFacewithChatTemplate`, same file): its parser (`APITemplateParser` of
  `opencompass/models/base_api.py`, default meta template HUMAN, SYSTEM (sent as HUMAN), BOT with
  `generate=True`) walks the meta template's round: HUMAN gives `h`, SYSTEM gives an empty HUMAN
  message, and at the last round's BOT turn it stops and drops that turn, prefix and all. The two
  HUMAN messages are merged with "\n" between them, so the one message is
  `{"role": "user", "content": h + "\n"}` (`chat_messages`). It goes through
  `tokenizer.apply_chat_template(..., add_generation_prompt=True, tokenize=False)` and is
  tokenized with `add_special_tokens=False` (the template already wrote BOS). Meta templates of
  `LMTemplateParser` (the early-2024 chat configs, e.g. LLaMA-2-chat's
  `" [INST] " + h + " [/INST] "`) also stop at the BOT turn with `generate=True`, keeping only
  its `begin`: the BOT prefix is dropped there too.

`render` picks the chat path when the tokenizer has a chat template; OpenCompass picks it by
the model class in its config, and its chat class fails on a tokenizer without one.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from easyedit_detox.core.errors import UserError

#: `format` of `render` for text built by the tokenizer's chat template.
CHAT_TEMPLATE = "chat template"
#: `format` of `render` for text built as for a base model.
PLAIN = "plain"


def plain_text(human: str, bot_prefix: str) -> str:
    """The text OpenCompass gives a base model: the HUMAN text, then the BOT prefix on its own line."""
    # The first turn never gets a separator; every later non-empty one gets "\n" before it.
    return human + "\n" + bot_prefix if bot_prefix else human


def chat_messages(human: str) -> List[Dict[str, str]]:
    """The messages OpenCompass's chat model class passes to the chat template for a HUMAN text."""
    # The default meta template's empty SYSTEM turn is sent as a second user message, which is
    # merged into the first with a newline: hence the trailing "\n".
    return [{"role": "user", "content": human + "\n"}]


def render(tokenizer: Any, human: str, bot_prefix: str) -> Tuple[str, bool, str]:
    """`(text, add_special_tokens, format)`: the model input OpenCompass builds for this tokenizer."""
    if not isinstance(human, str) or not isinstance(bot_prefix, str):
        raise TypeError("human and bot_prefix must be strings")
    if not getattr(tokenizer, "chat_template", None):
        return plain_text(human, bot_prefix), True, PLAIN
    from jinja2 import TemplateError

    try:
        # The BOT prefix is left out on purpose: OpenCompass drops the turn it generates.
        text = tokenizer.apply_chat_template(chat_messages(human), tokenize=False, add_generation_prompt=True)
    except TemplateError as exc:
        raise UserError(f"the tokenizer's chat template rejects a single user message ({exc}); "
                        "use a tokenizer whose template accepts one, or clear tokenizer.chat_template "
                        "to get the plain format") from None
    return text, False, CHAT_TEMPLATE
