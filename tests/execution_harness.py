"""A hand-driven broker + ExecutionHandler for execution unit tests (no DB, no engine).

``Desk.bar(...)`` plays one clock step the way the engine does: cancel what the kill switch
forbids, fills and brackets (``broker.on_step``), mark to the close, borrow, kill-switch equity
check. Records land in ``desk.rows[table]`` as the record NamedTuples.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

from loguru import logger

from components.execution.broker import BrokerConfig, CommissionConfig, SimulatedBroker
from components.execution.handler import ExecutionConfig, ExecutionHandler
from components.execution.kill_switch import KillState, KillSwitchConfig
from components.execution.orders import OrdersConfig
from components.execution.sizing import FixedUnits
from components.strategies.base import Insight

DAY = 86_400_000_000
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


class Bars:
    def __init__(self, syms: list, opens: list, highs: list, lows: list, volumes: list) -> None:
        self.syms, self.opens, self.highs, self.lows, self.volumes = (
            syms,
            opens,
            highs,
            lows,
            volumes,
        )


class Desk:
    def __init__(
        self,
        *,
        symbols: tuple[str, ...] = ("AAA",),
        cash: float = 1_000_000.0,
        commission: CommissionConfig | None = None,
        spread: float = 0.0,
        max_volume_fraction: float | None = None,
        borrow_rate: float = 0.0,
        orders: OrdersConfig | None = None,
        kill_switch: KillSwitchConfig | None = None,
        units: int = 100,
        sizing: Any = None,
        step: int = DAY,
    ) -> None:
        logger.remove()
        self.rows: dict[str, list[Any]] = defaultdict(list)
        seq = itertools.count(1).__next__
        config = BrokerConfig(
            cash=cash,
            commission=commission or CommissionConfig(),
            spread=spread,
            max_volume_fraction=max_volume_fraction,
            borrow_rate=borrow_rate,
        )
        self.broker = SimulatedBroker(config, len(symbols), symbols, self._record, seq)
        self.handler = ExecutionHandler(
            ExecutionConfig(kill_switch=kill_switch or KillSwitchConfig())
        )
        self.handler.bind(
            self.broker,
            self._record,
            seq,
            symbols,
            sizing=sizing or FixedUnits(units),
            orders=orders or OrdersConfig(),
            strategy_name="test",
        )
        self.ks = self.handler.kill_switch
        self.ts = T0
        self.step = step  # time between bars (a day by default)

    def _record(self, table: str, row: Any) -> None:
        self.rows[table].append(row)

    def bar(
        self,
        o: float,
        h: float | None = None,
        low: float | None = None,
        c: float | None = None,
        v: float = math.inf,
        sym: int = 0,
    ) -> None:
        """Play one daily bar of ``sym`` (high/low default to the open and close's range)."""
        self.ts += self.step
        c = o if c is None else c
        h = max(o, c) if h is None else h
        low = min(o, c) if low is None else low
        broker = self.broker
        if broker.pending and self.ks.state is not KillState.ACTIVE:
            self.handler.cancel_blocked_orders(self.ts)
        if broker.pending or broker.bracketed:
            broker.on_step(self.ts, range(1), Bars([sym], [o], [h], [low], [v]))
        broker.last_close[sym] = c
        if broker.borrow_rate and broker.shorts:
            broker.charge_borrow(self.ts)
        self.ks.on_equity(self.ts, broker.equity())

    def view(self, view: str, sym: int = 0, **fields: Any) -> None:
        """Emit one insight at the current close (the decision of this bar)."""
        self.handler.on_insights(self.ts, [Insight(self.ts, sym, view, "test", 0.0, 0.0, **fields)])

    def trades(self) -> list[Any]:
        return self.rows["trades"]

    def fills(self) -> list[Any]:
        return self.rows["fills"]

    def codes(self) -> list[str]:
        return [d.code for d in self.rows["denials"]]
