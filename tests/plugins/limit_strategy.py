"""A strategy that asks for limit orders, registered only by tests: ``strategy: limit_probe``.

``limit_probe`` buys every ``every``-th bar with ``order_type='limit'``; ``strategy.price=null``
leaves the limit price out, which the broker must refuse with one line (exit 2). Import it only
in runner subprocesses (``RUNNER_PLUGINS=tests.plugins.limit_strategy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.market.base import BarChunk
from components.registry import register
from components.strategies.base import LONG, Insight

CONF_DIR = Path(__file__).resolve().parent / "conf"  # strategy/limit_probe.yaml


@dataclass
class LimitProbeConfig:
    kind: str = "limit_probe"
    every: int = 5  # bars between entries
    price: float | None = None  # limit price as a fraction of the close; null = none (refused)


class LimitProbe:
    name = "limit_probe"
    uses_analytics = False

    def __init__(self, every: int, price: float | None) -> None:
        self.every, self.price = every, price

    def start(self, symbols: tuple[str, ...]) -> None:
        self._seen = 0

    def on_chunk(self, chunk: BarChunk) -> None:
        self._chunk = chunk

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> list[Insight] | None:
        self._seen += 1
        if self._seen % self.every:
            return None
        s, close = int(self._chunk.sym[lo]), float(self._chunk.close[lo])
        limit = None if self.price is None else close * self.price
        return [Insight(ts, s, LONG, "probe", close, 0.0, order_type="limit", limit=limit)]


@register("strategy", "limit_probe", LimitProbeConfig)
def make_limit_probe(config: LimitProbeConfig) -> LimitProbe:
    return LimitProbe(config.every, config.price)
