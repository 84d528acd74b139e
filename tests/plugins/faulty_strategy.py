"""``strategy=faulty``: an API strategy that misbehaves on purpose at ``strategy.at_bar``.

``strategy.fault`` picks the misuse: ``raise`` (decide raises), ``length`` (an indicator returns
one value too few), ``unknown_symbol`` (an order for a symbol not in the run), ``limit`` (a limit
order without a price). Import it only in runner subprocesses (RUNNER_PLUGINS); its YAML lives in
tests/plugins/conf for hydra.searchpath.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.strategies.api import Strategy, register_strategy


@dataclass
class FaultyConfig:
    fault: str = "raise"  # raise | length | unknown_symbol | limit
    at_bar: int = 5  # bar index (per symbol) at which the misuse happens


@register_strategy("faulty", FaultyConfig)
class Faulty(Strategy):
    def indicators(self, bars):
        n = len(bars) - (1 if self.config.fault == "length" else 0)
        return {"zero": np.zeros(n)}

    def decide(self, ctx):
        if ctx.bar_index != self.config.at_bar:
            return
        if self.config.fault == "raise":
            raise KeyError("missing_key")
        if self.config.fault == "unknown_symbol":
            ctx.buy(100, symbol="GOOGL")
        if self.config.fault == "limit":
            ctx.buy(100, order_type="limit")
