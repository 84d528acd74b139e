"""ExecutionHandler: the only path from a signal to the broker, guarded by the kill switch."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from components.execution.broker import CANCELLED_BY_STRATEGY
from components.execution.kill_switch import (
    CANCELLED_BY_HALT,
    CANCELLED_BY_REDUCE_ONLY,
    KillState,
    KillSwitch,
    KillSwitchConfig,
)
from components.execution.orders import (
    FLATTEN,
    OPEN,
    Order,
    OrdersConfig,
    check_order_fields,
)
from components.execution.records import (
    InsightRow,
    KillSwitchEventRow,
    SignalRow,
    new_row,
    record_denial,
)
from components.execution.sizing import FixedUnits, as_insight
from components.registry import register
from components.strategies.base import FLAT, LONG, Insight


@dataclass
class ExecutionConfig:
    kind: str = "default"
    kill_switch: KillSwitchConfig = field(default_factory=KillSwitchConfig)


@dataclass
class ExecutionMetrics:
    """Counters of one run; rates are derived at the end from wall time and trading days."""

    signals_received: int = 0
    signals_accepted: int = 0
    denied_by_reason: dict[str, int] = field(default_factory=dict)
    fills: int = 0
    rejections: int = 0
    bars: int = 0
    steps: int = 0
    trading_days: int = 0
    market_queries: int = 0
    analytics_queries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    started: float = field(default_factory=time.perf_counter)
    wall_seconds: float = 0.0

    def finish(self) -> None:
        self.wall_seconds = time.perf_counter() - self.started

    def as_dict(self) -> dict[str, Any]:
        wall = self.wall_seconds or (time.perf_counter() - self.started)
        per = (lambda n: n / wall) if wall > 0 else (lambda n: 0.0)
        return {
            "signals_received": self.signals_received,
            "signals_accepted": self.signals_accepted,
            "signals_denied": sum(self.denied_by_reason.values()),
            "denied_by_reason": dict(sorted(self.denied_by_reason.items())),
            "fills": self.fills,
            "rejections": self.rejections,
            "bars": self.bars,
            "clock_steps": self.steps,
            "trading_days": self.trading_days,
            "market_db_queries": self.market_queries,
            "analytics_queries": self.analytics_queries,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "wall_seconds": round(wall, 6),
            "bars_per_second": round(per(self.bars), 1),
            "signals_per_second": round(per(self.signals_received), 1),
            "fills_per_second": round(per(self.fills), 3),
            "fills_per_trading_day": round(self.fills / self.trading_days, 6)
            if self.trading_days
            else 0.0,
        }


class ExecutionHandler:
    """Turn insights into signals (sizing policy), check each against the kill switch, route it.

    Every refusal, at submission (kill switch) or at the fill (the broker's cash and margin rule),
    and every cancellation goes through ``_deny``: it is recorded and counted by reason code.
    """

    def __init__(self, config: ExecutionConfig) -> None:
        self.config = config
        self.metrics = ExecutionMetrics()
        self.kill_switch: KillSwitch | None = None
        self.broker: Any = None
        self.sizing = FixedUnits(100)
        self.orders = OrdersConfig()
        self.strategy_name = "strategy"
        self._record: Any = None
        self._seq: Any = None
        self._symbols: tuple[str, ...] = ()

    def bind(
        self,
        broker: Any,
        record: Any,
        next_seq: Any,
        symbols: tuple[str, ...],
        *,
        sizing: Any = None,
        orders: OrdersConfig | None = None,
        strategy_name: str | None = None,
    ) -> None:
        """Attach the broker, the record sink (the write buffer), the sizing policy and brackets."""
        self.broker, self._record, self._seq, self._symbols = broker, record, next_seq, symbols
        if sizing is not None:
            self.sizing = sizing
        if orders is not None:
            self.orders = orders
        if strategy_name is not None:
            self.strategy_name = strategy_name
        broker.deny = self._deny_at_broker
        self.kill_switch = KillSwitch(self.config.kill_switch, sink=self._on_state_change)

    @property
    def sizing(self) -> Any:
        """The sizing policy that turns an insight into the legs of its orders."""
        return self._sizing

    @sizing.setter
    def sizing(self, policy: Any) -> None:
        self._sizing = policy
        # what on_insights asks of the policy, looked up once here instead of at every call; a
        # policy without the ``uses_equity`` flag is given the equity
        self._sizing_hooks = (policy.legs, policy.exits_first, getattr(policy, "uses_equity", True))

    def _on_state_change(self, event: tuple) -> None:
        """Store the event (audit trail), log it, and cancel the orders the new state forbids."""
        row = KillSwitchEventRow(*event)
        self._record("kill_switch_events", row)
        figures = (
            f" (observed {row.observed:g}, limit {row.limit_value:g})"
            if row.observed is not None and row.limit_value is not None
            else ""
        )
        logger.warning(
            "kill switch {} -> {} at {} by {}: {}: {}{}",
            row.state_from,
            row.state_to,
            _iso(row.ts),
            row.actor,
            row.code,
            row.reason,
            figures,
        )
        broker = self.broker
        if row.state_to == KillState.ACTIVE or broker is None:
            return
        # at the moment of the change, so no later open can fill them
        if broker.pending:
            self.cancel_blocked_orders(row.ts)
        if row.state_to == KillState.HALTED and broker.bracketed:
            for sym in sorted(broker.bracketed):
                broker.cancel_brackets(sym, row.ts, CANCELLED_BY_HALT)
        if row.actor == "threshold" and self.config.kill_switch.on_breach == "flatten":
            broker.flatten_all(row.ts)

    def activate_kill_switch(self, reason: str, ts: int, actor: str = "user") -> None:
        """Halt trading now; latches until ``reset_kill_switch``."""
        assert self.kill_switch is not None
        self.kill_switch.activate(reason, ts, actor)

    def reset_kill_switch(self, reason: str, ts: int, actor: str = "user") -> None:
        """Re-arm the kill switch; ``reason`` is required and stored in the audit trail."""
        assert self.kill_switch is not None
        self.kill_switch.reset(reason, ts, actor)

    def cancel_blocked_orders(self, ts: int) -> int:
        """Cancel orders at the broker that the current kill-switch state forbids; return how many.

        Halted cancels every order (the kill switch's own ``flatten`` orders excepted);
        reduce-only cancels those that would not reduce the position. Each cancellation is
        recorded as a denial, so nothing reaches a fill after a halt. Brackets are protective:
        reduce-only keeps them; a halt cancels them at the state change.
        """
        broker, ks = self.broker, self.kill_switch
        assert broker is not None and ks is not None
        code = CANCELLED_BY_HALT if ks.state == KillState.HALTED else CANCELLED_BY_REDUCE_ONLY
        cancelled = 0
        for sym in sorted(broker.pending):
            position = broker.position[sym]
            for order in list(broker.pending[sym]):
                if order.intent == FLATTEN:
                    position += order.signed_remaining
                    continue
                if not ks.blocks(order.side, order.remaining, position):
                    position += order.signed_remaining
                    continue
                cancelled += 1
                broker.cancel(order, ts, code)
        return cancelled

    def _deny(
        self,
        ts: int,
        sym: int,
        side: str,
        quantity: int,
        code: str,
        observed: float | None,
        limit: float | None,
        signal_seq: int,
    ) -> None:
        """Count a denial by reason and record it (reason code, observed value, limit)."""
        by_reason = self.metrics.denied_by_reason
        by_reason[code] = by_reason.get(code, 0) + 1
        record_denial(
            self._record, self._seq, self._symbols, ts, sym, side, quantity, code, observed,
            limit, signal_seq,
        )  # fmt: skip

    _deny_at_broker = _deny  # the broker's refusals and cancellations take the same path

    def submit(
        self, ts: int, sym: int, side: str, quantity: int, signal_seq: int, **fields: Any
    ) -> bool:
        """Route one signal: True when it became an order for the next bar."""
        return self._route(Order(sym, side, quantity, ts, signal_seq, **fields))

    def _route(self, order: Order) -> bool:
        """Place ``order`` at the broker if the kill switch lets it pass, else record the denial."""
        metrics, broker, ks = self.metrics, self.broker, self.kill_switch
        assert broker is not None and ks is not None
        metrics.signals_received += 1
        sym, side, quantity, ts = order.sym, order.side, order.quantity, order.ts
        # the position (working orders included) only matters to a kill switch that reads it
        position = broker.position[sym] + broker.pending_quantity(sym) if ks.reads_position else 0
        denial = ks.check(ts, side, quantity, position)
        if denial is not None:
            self._deny(ts, sym, side, quantity, *denial, order.signal_seq)
            return False
        metrics.signals_accepted += 1
        broker.place(order)
        return True

    def on_insights(self, ts: int, insights: list[Any]) -> None:
        """Record each insight, size it into signals, record and route each signal (steps 4-6)."""
        broker, record, seq, symbols = self.broker, self._record, self._seq, self._symbols
        legs_of, exits_first, uses_equity = self._sizing_hooks
        name, signal = self.strategy_name, self._signal
        pending, position, last_close = broker.pending, broker.position, broker.last_close
        deferred: list[tuple] = []
        for raw in insights:
            ins = raw if type(raw) is Insight else as_insight(raw)
            s = ins.sym
            iseq = seq()
            record(
                "insights",
                new_row(
                    InsightRow,
                    (iseq, ts, symbols[s], name, ins.view, ins.reason, ins.value, ins.reference),
                ),
            )
            held = position[s]
            if s in pending:
                self._cancel_superseded(ts, s, ins.view)
                held += broker.pending_quantity(s)
            equity = broker.equity() if uses_equity else 0.0
            for leg in legs_of(ins, held, last_close[s], equity):
                if exits_first and leg[2] == OPEN:
                    deferred.append((ins, iseq, leg))
                else:
                    signal(ts, ins, iseq, leg)
        for ins, iseq, leg in deferred:
            signal(ts, ins, iseq, leg)

    def _cancel_superseded(self, ts: int, s: int, view: str) -> None:
        """A new view cancels the symbol's working entries that go the other way (or any, on flat)."""
        broker = self.broker
        for order in list(broker.pending[s]):
            if order.intent != OPEN:
                continue
            if view == FLAT or (view == LONG) != (order.side == "buy"):
                broker.cancel(order, ts, CANCELLED_BY_STRATEGY)

    def _signal(self, ts: int, ins: Insight, iseq: int, leg: tuple) -> None:
        side, quantity, intent, fraction = leg
        s = ins.sym
        order_type, limit, stop, tif = ins.order_type, ins.limit, ins.stop, ins.tif
        if order_type != "market" or tif != "gtc":
            check_order_fields(
                self.strategy_name, self._symbols[s], _iso(ts), order_type, limit, stop, tif
            )
        sl = tp = None
        if intent == OPEN:
            orders = self.orders
            if (
                ins.stop_loss is not None
                or ins.take_profit is not None
                or orders.stop_loss is not None
                or orders.take_profit is not None
            ):  # else no bracket: skip the call
                sl, tp = self._bracket_levels(ins, side, self.broker.last_close[s])
        sseq = self._seq()
        self._record(
            "signals",
            new_row(
                SignalRow,
                (
                    sseq,
                    ts,
                    self._symbols[s],
                    side,
                    quantity,
                    ins.reason,
                    iseq,
                    order_type,
                    limit,
                    stop,
                    tif,
                    sl,
                    tp,
                    intent,
                ),
            ),
        )
        if order_type == "market":  # fills at the open: the insight's prices are only recorded
            limit = stop = None
        # every field by position: a class call binds keywords through a dict (~100 ns more)
        self._route(
            Order(
                s, side, quantity, ts, sseq, order_type, limit, stop, tif, intent, sl, tp, fraction
            )
        )

    def _bracket_levels(
        self, ins: Insight, side: str, close: float
    ) -> tuple[float | None, float | None]:
        """Return (stop-loss, take-profit) prices from the decision close (DESIGN 5b)."""
        sl_frac = ins.stop_loss if ins.stop_loss is not None else self.orders.stop_loss
        tp_frac = ins.take_profit if ins.take_profit is not None else self.orders.take_profit
        if sl_frac is None and tp_frac is None:
            return None, None
        sign = 1 if side == "buy" else -1
        sl = close * (1 - sign * sl_frac) if sl_frac is not None else None
        tp = close * (1 + sign * tp_frac) if tp_frac is not None else None
        return sl, tp


def _iso(ts_us: int) -> str:
    return dt.datetime.fromtimestamp(ts_us / 1e6, tz=dt.UTC).isoformat()


@register("execution", "default", ExecutionConfig)
def make_execution(config: ExecutionConfig) -> ExecutionHandler:
    return ExecutionHandler(config)
