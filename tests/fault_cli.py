"""Test-only entry point: ``python tests/fault_cli.py <runner overrides>`` is ``python -m runner``
with one extra strategy, ``explode``, registered (tests/test_faults.py runs it in a subprocess).

``strategy=explode`` (tests/fault_conf/strategy/explode.yaml, added to Hydra's search path here) behaves like ``sma_cross`` until clock step ``FAULT_EXPLODE_AT_STEP``
(an environment variable read here only, never by product code), where it raises. Nothing in
``runner/`` or ``components/`` knows about it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.cli import run_cli
from components.registry import register
from components.strategies.builtin import SmaCross, SmaCrossConfig
from runner.__main__ import main


class StrategyExploded(RuntimeError):
    """The injected fault."""


FAULT_CONF = Path(__file__).resolve().parent / "fault_conf"


@dataclass
class ExplodeConfig(SmaCrossConfig):
    kind: str = "explode"


class Explode(SmaCross):
    """sma_cross that raises on one clock step."""

    def __init__(self, config: ExplodeConfig, at_step: int) -> None:
        super().__init__(config)
        self._at_step, self._step = at_step, 0

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> Any:
        if self._step == self._at_step:
            raise StrategyExploded(f"injected fault at clock step {self._step}")
        self._step += 1
        return super().on_step(k, lo, hi, ts, snapshot)


@register("strategy", "explode", ExplodeConfig)
def make_explode(config: ExplodeConfig) -> Explode:
    return Explode(config, int(os.environ.get("FAULT_EXPLODE_AT_STEP", "100")))


if __name__ == "__main__":
    sys.argv.append(f"hydra.searchpath=[file://{FAULT_CONF}]")
    run_cli(main)
