"""What generation takes and gives, as plain data (no torch here, so probes and the CLI import it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

from easyedit_detox.core.errors import UserError


def _is_positive_int(value) -> bool:
    # bool is an int subclass; `max_length: true` in a YAML file is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass
class GenerationSettings:
    """How many tokens a model may read and write per response, and how many sequences per batch."""

    max_length: int
    max_output_length: int
    batch_size: int = 8

    def __post_init__(self):
        for name in ("max_length", "max_output_length", "batch_size"):
            value = getattr(self, name)
            if not _is_positive_int(value):
                raise UserError(f"Generation setting {name} must be a positive integer, got {value!r}.")
        if self.max_output_length >= self.max_length:
            raise UserError(
                f"Generation setting max_output_length ({self.max_output_length}) must be smaller than "
                f"max_length ({self.max_length}): max_length counts the input and the response together. "
                "Raise max_length or lower max_output_length."
            )

    @property
    def max_input_length(self) -> int:
        """Input tokens kept before the context-window check: max_length - max_output_length."""
        return self.max_length - self.max_output_length


@dataclass
class Generation:
    """One response: its text, the input and new token counts, and whether the input was cut."""

    text: str
    input_tokens: int
    new_tokens: int
    truncated: bool


@dataclass(frozen=True)
class Prompt:
    """One input to answer, with its own budget: at most `max_new_tokens` new tokens, the input cut
    from the left to `max_input_tokens` (then further if the context window needs it)."""

    text: str
    max_new_tokens: int
    max_input_tokens: int
    add_special_tokens: bool = True  # False for chat-templated text that already holds the BOS
