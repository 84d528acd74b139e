"""Stateful property test of the kill switch (issue 6, item 7).

Hypothesis drives the real ExecutionHandler, KillSwitch and SimulatedBroker through random bars,
signals, thresholds, manual halts and resets, the way the engine does (cancel what the state forbids
before each open, fill, mark, then route signals). It checks after every step that no order reached
the broker while halted, that reduce-only lets only reducing orders through, that the switch
leaves a tripped state only when a reset is asked for, and that the audit trail has every change.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pandas as pd
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from loguru import logger

from components.execution.broker import BrokerConfig, SimulatedBroker
from components.execution.handler import ExecutionConfig, ExecutionHandler
from components.execution.kill_switch import KillState, KillSwitchConfig, TradingDay, reduces

SYMBOLS = ("AAA", "BBB")
MIN = 60_000_000
THRESHOLD_CODES = {"MAX_DAILY_TRADES", "MAX_ORDER_RATE", "MAX_POSITION"}
AT_FILL_CODES = {"INSUFFICIENT_CASH", "INSUFFICIENT_MARGIN", "NOTHING_TO_CLOSE", "EXPIRED_DAY"}


def optional(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


class KillSwitchMachine(RuleBasedStateMachine):
    """One trading session; every rule is one thing the engine or an operator can do."""

    @initialize(
        max_daily_trades=optional(st.integers(0, 6)),
        max_orders_per_window=optional(st.integers(0, 4)),
        window_minutes=st.sampled_from([1.0, 30.0, 240.0]),
        max_position=optional(st.integers(0, 400)),
        max_drawdown_pct=optional(st.sampled_from([0.01, 0.05, 0.2])),
        max_daily_loss_usd=optional(st.sampled_from([0.0, 50.0, 2_000.0])),
        on_breach=st.sampled_from(["halt", "reduce_only"]),
        day_tz=st.sampled_from(["UTC", "America/New_York"]),
        start=st.sampled_from(["2024-03-09T22:00", "2024-11-02T22:00", "2024-06-30T23:30"]),
    )
    def setup(
        self,
        max_daily_trades: int | None,
        max_orders_per_window: int | None,
        window_minutes: float,
        max_position: int | None,
        max_drawdown_pct: float | None,
        max_daily_loss_usd: float | None,
        on_breach: str,
        day_tz: str,
        start: str,
    ) -> None:
        logger.remove()  # state changes log a warning each; keep the test output readable
        self.config = KillSwitchConfig(
            max_daily_trades=max_daily_trades,
            max_orders_per_window=max_orders_per_window,
            window_minutes=window_minutes,
            max_position_per_symbol=max_position,
            max_drawdown_pct=max_drawdown_pct,
            max_daily_loss_usd=max_daily_loss_usd,
            on_breach=on_breach,
            day_tz=day_tz,
        )
        self.rows: dict[str, list[tuple]] = defaultdict(list)
        seq = itertools.count(1).__next__
        self.broker = SimulatedBroker(
            BrokerConfig(cash=100_000.0), len(SYMBOLS), SYMBOLS, self._record, seq
        )
        self.handler = ExecutionHandler(ExecutionConfig(kill_switch=self.config))
        self.handler.bind(self.broker, self._record, seq, SYMBOLS)
        self.ks = self.handler.kill_switch
        self.ts = pd.Timestamp(start, tz="UTC").value // 1000
        self.prices = [100.0, 40.0]
        self.day_of = TradingDay(day_tz)
        self.broker_orders: list[
            tuple[str, str, int, int]
        ] = []  # (state, side, qty, position) at submit
        self.fill_states: list[str] = []
        self.accepted: list[int] = []  # ts of accepted orders since the last reset
        self.resets_asked = 0
        self.state_before = self.ks.state
        self.reset_asked_now = False
        self._wrap_broker()

    def _record(self, table: str, row: tuple) -> None:
        self.rows[table].append(row)

    def _wrap_broker(self) -> None:
        submit, fill = self.broker.submit, self.broker.fill_at_open

        def watched_submit(sym: int, side: str, quantity: int, ts: int, signal_seq: int) -> None:
            position = self.broker.position[sym] + self.broker.pending_quantity(sym)
            self.broker_orders.append((self.ks.state.value, side, quantity, position))
            submit(sym, side, quantity, ts, signal_seq)

        def watched_fill(sym: int, ts: int, price: float) -> None:
            self.fill_states.append(self.ks.state.value)
            fill(sym, ts, price)

        self.broker.submit, self.broker.fill_at_open = watched_submit, watched_fill  # type: ignore[method-assign]

    # -- rules ---------------------------------------------------------------------------------
    @rule(
        minutes=st.sampled_from([1, 2, 7, 45, 180, 600, 1440]),
        moves=st.tuples(st.floats(-0.15, 0.15), st.floats(-0.15, 0.15)),
    )
    def bar(self, minutes: int, moves: tuple[float, float]) -> None:
        """A new clock step: cancel what the state forbids, fill at the open, mark to the close."""
        self.ts += minutes * MIN
        broker = self.broker
        if broker.pending and self.ks.state is not KillState.ACTIVE:
            self.handler.cancel_blocked_orders(self.ts)
        for sym in sorted(broker.pending):
            broker.fill_at_open(sym, self.ts, self.prices[sym])
        self.prices = [p * (1 + m) for p, m in zip(self.prices, moves, strict=True)]
        broker.last_close[:] = self.prices
        self.ks.on_equity(self.ts, broker.equity())

    @rule(
        sym=st.integers(0, len(SYMBOLS) - 1),
        side=st.sampled_from(["buy", "sell"]),
        quantity=st.sampled_from([1, 50, 100, 150, 300]),
    )
    def signal(self, sym: int, side: str, quantity: int) -> None:
        """A signal inside the current step goes through the handler, then the end-of-step cancel."""
        state = self.ks.state
        position = self.broker.position[sym] + self.broker.pending_quantity(sym)
        accepted = self.handler.submit(self.ts, sym, side, quantity, 0)
        if accepted:
            assert state is not KillState.HALTED
            if state is KillState.ACTIVE:
                self.accepted.append(self.ts)
                limit = self.config.max_position_per_symbol
                assert limit is None or abs(
                    position + (quantity if side == "buy" else -quantity)
                ) <= max(limit, abs(position))
        if self.broker.pending and self.ks.state is not KillState.ACTIVE:
            self.handler.cancel_blocked_orders(self.ts)

    @rule(reason=st.sampled_from(["", "risk desk", "HALT file"]))
    def halt(self, reason: str) -> None:
        self.handler.activate_kill_switch(reason, self.ts, actor="test")

    @rule(reason=st.sampled_from(["limits reviewed", "new day"]))
    def reset(self, reason: str) -> None:
        if self.ks.state is not KillState.ACTIVE:
            self.resets_asked += 1
            self.accepted.clear()  # a reset re-arms the counters
        self.reset_asked_now = True
        self.handler.reset_kill_switch(reason, self.ts, actor="ops")

    @precondition(lambda self: self.ks.state is not KillState.ACTIVE)
    @rule()
    def many_bars_while_tripped(self) -> None:
        """Days pass while tripped: the switch still latches."""
        for _ in range(3):
            self.bar(1440, (0.0, 0.0))

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def no_order_reaches_the_broker_while_halted(self) -> None:
        for state, side, quantity, position in self.broker_orders:
            assert state != "halted"
            if state == "reduce_only":
                assert reduces(side, quantity, position)
        assert "halted" not in self.fill_states
        if self.ks.state is KillState.HALTED:
            assert not self.broker.pending

    @invariant()
    def leaves_a_tripped_state_only_when_reset_is_asked(self) -> None:
        if self.state_before is not KillState.ACTIVE and self.ks.state is KillState.ACTIVE:
            assert self.reset_asked_now
        if self.state_before is KillState.HALTED:
            assert self.ks.state in (
                KillState.HALTED,
                KillState.ACTIVE,
            )  # never lifted to reduce_only
        self.state_before, self.reset_asked_now = self.ks.state, False

    @invariant()
    def audit_trail_holds_every_state_change(self) -> None:
        events = self.rows["kill_switch_events"]
        state = "active"
        for event in events:
            assert event[2] == state and event[3] != state
            assert (event[4] == "RESET") == (event[3] == "active")
            state = event[3]
        assert state == self.ks.state.value
        assert sum(1 for e in events if e[4] == "RESET") == self.resets_asked

    @invariant()
    def every_denial_is_recorded_with_code_observed_and_limit(self) -> None:
        metrics = self.handler.metrics
        denials = self.rows["denials"]
        cancelled = sum(1 for d in denials if d[5].startswith("CANCELLED_BY_"))
        at_fill = sum(1 for d in denials if d[5] in AT_FILL_CODES)
        refused = len(denials) - cancelled - at_fill
        assert metrics.signals_received == metrics.signals_accepted + refused
        # one denial path (issue 10): the broker's refusals at the fill are counted too
        by_code: dict[str, int] = defaultdict(int)
        for d in denials:
            by_code[d[5]] += 1
        assert dict(by_code) == metrics.denied_by_reason
        for d in denials:
            if d[5] in THRESHOLD_CODES:
                assert d[6] is not None and d[7] is not None and d[6] > d[7]

    @invariant()
    def counted_limits_hold_between_resets(self) -> None:
        n, window = self.config.max_daily_trades, self.config.max_orders_per_window
        if n is not None:
            per_day: dict[int, int] = defaultdict(int)
            for ts in self.accepted:
                per_day[self.day_of(ts)] += 1
            assert max(per_day.values(), default=0) <= n
        if window is not None:
            span = round(self.config.window_minutes * MIN)
            for ts in self.accepted:
                assert sum(1 for u in self.accepted if ts - span < u <= ts) <= window


TestKillSwitchStateMachine = KillSwitchMachine.TestCase
TestKillSwitchStateMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
