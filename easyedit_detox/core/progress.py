"""Progress bars: one line each, drawn on a terminal only, never when the user turned them off."""

from __future__ import annotations

import time
from typing import Optional

from tqdm.auto import tqdm


def progress_bar(total: Optional[int] = None, desc: str = "", unit: str = "it", enabled: bool = True,
                 initial: int = 0, leave: bool = True) -> tqdm:
    """A tqdm bar that draws only when `enabled` and stderr is a terminal (log files get no carriage returns)."""
    # disable=None is tqdm's "off unless the stream is a TTY".
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, disable=None if enabled else True,
                dynamic_ncols=True)


class TokenRate:
    """Shows generated tokens per second in a bar's postfix, refreshed at most twice a second."""

    def __init__(self, bar: tqdm):
        self.bar, self.tokens, self.started, self.shown = bar, 0, time.perf_counter(), 0.0

    def add(self, tokens: int) -> None:
        self.tokens += tokens
        now = time.perf_counter()
        if now - self.shown >= 0.5:
            self.shown = now
            self.bar.set_postfix_str(f"{self.tokens / max(now - self.started, 1e-9):.1f} tok/s")
