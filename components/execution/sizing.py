"""The ``sizing`` group: a policy turns one insight (a view) into the legs of orders that get there.

The engine never decides buy/sell/quantity; the ExecutionHandler asks the sizing policy. A leg is
``(side, quantity, intent, fraction)``: ``intent`` is ``open`` (an entry), ``close`` (an exit) or
``reverse`` (the exit leg of a reversal, followed by the entry); ``fraction`` is set when the
broker computes the quantity at the fill (``percent_equity``) and ``quantity`` is then only the
estimate at the decision close (what the kill switch and the signals table see).

``held`` is the symbol's position plus its working orders, signed (negative = short).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from components.execution.orders import CLOSE, OPEN, REVERSE
from components.registry import register
from components.strategies.base import FLAT, LONG, SHORT, Insight

MAX_UNITS = 10**12  # the broker's ceiling too: keeps quantity x price far inside int64 / float

Leg = tuple[str, int, str, float | None]


class SizingPolicy(Protocol):
    exits_first: bool  # True: the handler submits every exit leg of a step before any entry
    uses_equity: bool  # False: ``legs`` ignores ``equity`` (the handler passes 0.0, unmarked)

    def legs(self, ins: Insight, held: int, close: float, equity: float) -> list[Leg]:
        """Return the orders that take ``held`` to what ``ins`` wants (empty: nothing to do)."""


def _check_units(key: str, value: int) -> None:
    if not 1 <= value <= MAX_UNITS:
        raise ValueError(
            f"{key} must be a whole number of units in [1, {MAX_UNITS:,}], was {value}; "
            f"e.g. {key}=100"
        )


def _to_target(held: int, target: int, fraction: float | None = None) -> list[Leg]:
    """Return the legs from ``held`` to ``target`` units: the exit (or reversal) leg first."""
    if target == held:
        return []
    if held and (target == 0 or (target > 0) != (held > 0)):
        close = [("sell" if held > 0 else "buy", abs(held), REVERSE if target else CLOSE, None)]
        if not target:
            return close
        return [*close, ("buy" if target > 0 else "sell", abs(target), OPEN, fraction)]
    delta = target - held
    if abs(target) < abs(held):
        return [("buy" if delta > 0 else "sell", abs(delta), CLOSE, None)]
    return [("buy" if delta > 0 else "sell", abs(delta), OPEN, fraction)]


@dataclass
class FixedUnitsConfig:
    kind: str = "fixed_units"
    units: int = 100  # units per entry (an insight's own ``quantity`` wins)

    def __post_init__(self) -> None:
        _check_units("sizing.units", self.units)


class FixedUnits:
    """Enter ``units`` on a long/short view when not already on that side; exit on flat."""

    exits_first = False
    uses_equity = False

    def __init__(self, units: int) -> None:
        self.units = units

    def legs(self, ins: Insight, held: int, close: float, equity: float) -> list[Leg]:
        view = ins.view
        if view == FLAT:
            return _to_target(held, 0)
        units = ins.quantity or self.units
        if view == LONG:
            return [] if held > 0 else _to_target(held, units)
        if view == SHORT:
            return [] if held < 0 else _to_target(held, -units)
        return []


@dataclass
class PercentEquityConfig:
    kind: str = "percent_equity"
    fraction: float = 0.1  # fraction of equity per entry, in whole units rounded down at the fill

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and 0 < self.fraction <= 1):
            raise ValueError(
                f"sizing.fraction must be a fraction of equity in (0, 1], was {self.fraction}; "
                "write 0.1 for 10 %"
            )


class PercentEquity(FixedUnits):
    """Enter ``fraction`` of equity: floor(fraction x equity / fill price) units, at the fill."""

    uses_equity = True

    def __init__(self, fraction: float) -> None:
        super().__init__(1)
        self.fraction = fraction

    def legs(self, ins: Insight, held: int, close: float, equity: float) -> list[Leg]:
        view = ins.view
        if view == FLAT:
            return _to_target(held, 0)
        if (view == LONG and held > 0) or (view == SHORT and held < 0) or view not in (LONG, SHORT):
            return []
        estimate = max(1, min(MAX_UNITS, math.floor(self.fraction * equity / close)))
        target = estimate if view == LONG else -estimate
        return _to_target(held, target, self.fraction)


@dataclass
class TargetWeightConfig:
    kind: str = "target_weight"
    max_gross: float = (
        1.0  # refuse targets whose absolute weights sum above this (1.0 = no leverage)
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_gross) and self.max_gross > 0):
            raise ValueError(
                f"sizing.max_gross must be > 0, was {self.max_gross}; e.g. sizing.max_gross=1.0"
            )


class TargetWeight:
    """Rebalance each symbol to ``weight`` x equity in whole units (toward zero) at the close.

    A flat view is weight 0; a long or short view without a weight keeps the position. Exit legs
    of a step are submitted before its entries, so exits free cash first.
    """

    exits_first = True
    uses_equity = True

    def __init__(self, max_gross: float) -> None:
        self.max_gross = max_gross

    def legs(self, ins: Insight, held: int, close: float, equity: float) -> list[Leg]:
        weight = 0.0 if ins.view == FLAT else ins.weight
        if weight is None or not math.isfinite(weight) or close <= 0:
            return []
        weight = max(-self.max_gross, min(self.max_gross, weight))
        target = int(weight * equity / close)  # toward zero: never above the weight
        return _to_target(held, max(-MAX_UNITS, min(MAX_UNITS, target)))


@register("sizing", "fixed_units", FixedUnitsConfig)
def make_fixed_units(config: FixedUnitsConfig) -> FixedUnits:
    return FixedUnits(config.units)


@register("sizing", "percent_equity", PercentEquityConfig)
def make_percent_equity(config: PercentEquityConfig) -> PercentEquity:
    return PercentEquity(config.fraction)


@register("sizing", "target_weight", TargetWeightConfig)
def make_target_weight(config: TargetWeightConfig) -> TargetWeight:
    return TargetWeight(config.max_gross)


def as_insight(ins: Any) -> Insight:
    """Return ``ins`` as an ``Insight`` (strategies may still hand out plain 6-tuples)."""
    return ins if type(ins) is Insight else Insight(*ins)
