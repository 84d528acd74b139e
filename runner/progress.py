"""Progress display: a tqdm bar on an interactive terminal, silent in pipes and multirun jobs."""

from __future__ import annotations

import sys
from typing import Any


class _Silent:
    def update(self, steps: int, bars: int, state: str) -> None:
        return None

    def close(self) -> None:
        return None


class _Bar:
    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar: Any = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr, leave=False,
                              mininterval=0.5)
        self._done = 0

    def update(self, steps: int, bars: int, state: str) -> None:
        self._bar.set_postfix_str(f"bars={bars:,} kill_switch={state}", refresh=False)
        self._bar.update(steps - self._done)
        self._done = steps

    def close(self) -> None:
        self._bar.close()


def make_progress(mode: str, total_steps: int, *, quiet: bool) -> Any:
    """Return a progress sink: ``on`` always, ``off`` never, ``auto`` only on a terminal and not quiet."""
    show = mode == "on" or (mode == "auto" and not quiet and sys.stderr.isatty())
    return _Bar(total_steps) if show else _Silent()
