"""ExecutionHandler: the only path from a signal to the broker, guarded by the kill switch."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from components.execution.broker import SimulatedBroker
from components.execution.kill_switch import (
    CANCELLED_BY_HALT,
    CANCELLED_BY_REDUCE_ONLY,
    KillState,
    KillSwitch,
    KillSwitchConfig,
)
from components.registry import register


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
    """Check each signal against the kill switch; pass it to the broker or record a denial."""

    def __init__(self, config: ExecutionConfig) -> None:
        self.config = config
        self.metrics = ExecutionMetrics()
        self.kill_switch: KillSwitch | None = None
        self.broker: SimulatedBroker | None = None
        self._record: Any = None
        self._seq: Any = None
        self._symbols: tuple[str, ...] = ()

    def bind(
        self, broker: SimulatedBroker, record: Any, next_seq: Any, symbols: tuple[str, ...]
    ) -> None:
        """Attach the broker and the record sink (the write buffer) before the loop starts."""
        self.broker, self._record, self._seq, self._symbols = broker, record, next_seq, symbols
        self.kill_switch = KillSwitch(self.config.kill_switch, sink=self._on_state_change)

    def _on_state_change(self, event: tuple) -> None:
        """Store the event (audit trail), log it, and cancel the orders the new state forbids."""
        ts, _wall, before, after, code, reason, observed, limit, actor = event
        self._record("kill_switch_events", event)
        figures = (
            f" (observed {observed:g}, limit {limit:g})"
            if observed is not None and limit is not None
            else ""
        )
        logger.warning(
            "kill switch {} -> {} at {} by {}: {}: {}{}",
            before,
            after,
            _iso(ts),
            actor,
            code,
            reason,
            figures,
        )
        if after != KillState.ACTIVE and self.broker is not None and self.broker.pending:
            self.cancel_blocked_orders(
                ts
            )  # at the moment of the change, so no later open can fill them

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

        Halted cancels every order; reduce-only cancels those that would not reduce the position.
        Each cancellation is recorded as a denial, so nothing reaches a fill after a halt.
        """
        broker, ks = self.broker, self.kill_switch
        assert broker is not None and ks is not None
        code = CANCELLED_BY_HALT if ks.state == KillState.HALTED else CANCELLED_BY_REDUCE_ONLY
        cancelled = 0
        for sym in sorted(broker.pending):
            keep = []
            position = broker.position[sym]
            for order in broker.pending[sym]:
                side, qty, _order_ts, signal_seq = order
                if not ks.blocks(side, qty, position):
                    keep.append(order)
                    position += qty if side == "buy" else -qty
                    continue
                cancelled += 1
                self._deny(ts, sym, side, qty, code, None, None, signal_seq)
            if keep:
                broker.pending[sym] = keep
            else:
                del broker.pending[sym]
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
        self._record(
            "denials",
            (
                self._seq(),
                ts,
                self._symbols[sym],
                side,
                quantity,
                code,
                observed,
                limit,
                signal_seq,
            ),
        )

    def submit(self, ts: int, sym: int, side: str, quantity: int, signal_seq: int) -> bool:
        """Route one signal: True when it became an order for the next open."""
        metrics, broker, ks = self.metrics, self.broker, self.kill_switch
        assert broker is not None and ks is not None
        metrics.signals_received += 1
        position = broker.position[sym] + broker.pending_quantity(sym)
        denial = ks.check(ts, side, quantity, position)
        if denial is not None:
            self._deny(ts, sym, side, quantity, *denial, signal_seq)
            return False
        metrics.signals_accepted += 1
        broker.submit(sym, side, quantity, ts, signal_seq)
        return True


def _iso(ts_us: int) -> str:
    return dt.datetime.fromtimestamp(ts_us / 1e6, tz=dt.UTC).isoformat()


@register("execution", "default", ExecutionConfig)
def make_execution(config: ExecutionConfig) -> ExecutionHandler:
    return ExecutionHandler(config)
