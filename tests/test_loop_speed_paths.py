"""The loop's fast paths give exactly what the code they replaced gave (hypothesis).

The reference classes below hold, verbatim, the broker, handler and kill-switch methods as they
were before the fast paths (the market-order fill without the affordability call for a fitting
entry, fills recorded inline, the kill switch's no-limit check, the handler's direct submit of a
plain order). Random bars, views, order fields, costs, brackets, sizing policies and kill-switch
limits are played through both; every record (kill-switch events without their wall time), the
broker's cash, positions and counters, and the kill switch's state must be equal. The write
buffer's conversion of rows to Arrow (one struct array) is compared with the column-by-column
conversion it replaced the same way, and the engine's memoryview reads of a chunk's prices with
the lists it built before.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.execution.broker import (
    CLOSING,
    FLATTEN,
    INF,
    MAX_UNITS,
    NOTHING_TO_CLOSE,
    OPEN,
    REVERSE,
    ZERO_SIZE,
    BrokerConfig,
    CommissionConfig,
    Lot,
    Order,
    SimulatedBroker,
    TradeRow,
    _rows_of,
)
from components.execution.handler import (
    ExecutionConfig,
    ExecutionHandler,
    InsightRow,
    SignalRow,
    _iso,
    as_insight,
    check_order_fields,
)
from components.execution.kill_switch import (
    HALTED_CODE,
    REDUCE_ONLY_CODE,
    Denial,
    KillState,
    KillSwitch,
    KillSwitchConfig,
    _after,
    reduces,
)
from components.execution.orders import OrdersConfig
from components.execution.records import RECORDS, TABLES, arrow_schema, new_row
from components.execution.sizing import FixedUnits, PercentEquity, TargetWeight
from components.execution.write_buffer import to_arrow
from components.strategies.base import Insight
from runner.engine import _ChunkLists
from tests.execution_harness import Bars

T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000_000


class _ReferenceBroker(SimulatedBroker):
    """``SimulatedBroker`` with the fill path as it was before the fast paths."""

    def on_step(self, ts: int, rows: range, bars: Any) -> None:
        """Run steps (1)-(3) of the bar for every row of this clock step (``bars``: chunk lists).

        Each phase runs over every symbol of the step before the next one starts: (1a) closing
        orders at the open, (1b) entries at the open, (2) brackets, (3) within the bar.
        """
        syms, opens, pending = bars.syms, bars.opens, self.pending
        caps: dict[int, float] = {}
        working = _rows_of(pending, rows, syms) if pending else ()
        if working:
            if self.max_volume_fraction is not None:
                volumes, mvf = bars.volumes, self.max_volume_fraction
                for r in rows:
                    caps[syms[r]] = math.floor(mvf * volumes[r])
            for r in working:  # (1a) closing orders of every symbol first, at the open
                orders = pending.get(syms[r])
                if orders:
                    for order in [o for o in orders if o.intent in CLOSING]:
                        self._try_open(order, ts, opens[r], caps)
            for r in working:  # (1b) entries (and orders whose trigger the open crossed)
                orders = pending.get(syms[r])
                if orders:
                    for order in [o for o in orders if o.intent not in CLOSING]:
                        self._try_open(order, ts, opens[r], caps)
        bracketed = self.bracketed
        if bracketed:  # (2) brackets, a lot filled at this open included
            highs, lows = bars.highs, bars.lows
            low_trigger, high_trigger = self.low_trigger, self.high_trigger
            if not caps and self.max_volume_fraction is not None:
                volumes, mvf = bars.volumes, self.max_volume_fraction
                for r in rows:
                    caps[syms[r]] = math.floor(mvf * volumes[r])
            for r in _rows_of(bracketed, rows, syms):
                s = syms[r]
                if lows[r] <= low_trigger[s] or highs[r] >= high_trigger[s]:
                    self._check_brackets(s, ts, opens[r], highs[r], lows[r], caps)
        # (3) limit / stop orders touched within the bar; day orders expire. Market orders
        # filled at the open leave nothing to test: the high/low lists are not even built
        if working and any(syms[r] in pending for r in working):
            highs, lows = bars.highs, bars.lows
            for r in working:
                if syms[r] in pending:
                    self._intrabar(syms[r], ts, opens[r], highs[r], lows[r], caps)

    def _fill(self, order: Order, ts: int, price: float, caps: dict[int, float]) -> None:
        """Fill as much of ``order`` at ``price`` as volume, position and margin allow."""
        s = order.sym
        if order.fraction is not None and order.filled == 0:
            units = math.floor(order.fraction * self.equity() / self._entry_price(order, price))
            order.quantity = min(units, MAX_UNITS)
            if order.quantity < 1:
                order.quantity = 0
                self.remove(order)
                self.deny(ts, s, order.side, 0, ZERO_SIZE, None, None, order.signal_seq)
                return
        pos, sign = self.position[s], 1 if order.side == "buy" else -1
        against = min(order.remaining, abs(pos)) if pos * sign < 0 else 0
        want = order.remaining
        if order.intent in CLOSING:
            if not against:
                self.cancel(order, ts, NOTHING_TO_CLOSE)
                return
            want = against
        cap = caps.get(s, INF)
        take = want if want <= cap else int(cap)
        if take <= 0:
            return  # no volume left in this bar: the order keeps working
        close_q = min(take, against)
        open_q = take - close_q
        if close_q:
            intent = order.intent
            reason = (
                intent if intent in (REVERSE, FLATTEN) else REVERSE if intent == OPEN else "signal"
            )
            self._close(s, order, ts, price, close_q, reason)
        if open_q:
            entry = self._entry_price(order, price)
            fee = self.commission.fee(open_q, entry) if self._fees else 0.0
            if not self._affordable(s, sign, open_q, entry, fee, ts, order):
                return
            self._open(s, order, ts, entry, open_q, fee)
        if caps:
            caps[s] = cap - take
        if order.intent in CLOSING and order.remaining and not self.position[s]:
            self.cancel(order, ts, NOTHING_TO_CLOSE)  # the position is closed: nothing left to do
        elif not order.remaining:
            self.remove(order)

    def _open(self, s: int, order: Order, ts: int, entry: float, qty: int, fee: float) -> None:
        signed = qty if order.side == "buy" else -qty
        if self.borrow_rate and s in self.shorts:
            self._accrue_borrow(s, ts, entry)  # adding to a short: book the borrow so far
        self.cash -= signed * entry + fee
        self.total_fees += fee
        self.position[s] += signed
        self.held.add(s)
        if self.position[s] < 0 and s not in self.shorts:
            self.shorts.add(s)
            self._borrow_from[s] = ts
        self.lots[s].append(
            Lot(ts, entry, signed, fee, order.sl, order.tp, order.signal_seq, order.ts)
        )
        sl, tp = order.sl, order.tp
        if sl is not None or tp is not None:
            self.bracketed.add(s)
            low, high = (sl, tp) if signed > 0 else (tp, sl)
            if low is not None and low > self.low_trigger[s]:
                self.low_trigger[s] = low
            if high is not None and high < self.high_trigger[s]:
                self.high_trigger[s] = high
        order.filled += qty
        self._record_fill(
            ts, s, order.side, qty, entry, order.ts, order.signal_seq, fee, order.remaining, "entry"
        )

    def _close(self, s: int, order: Order, ts: int, price: float, qty: int, reason: str) -> None:
        """Close ``qty`` units FIFO at ``price`` for a strategy or kill-switch order."""
        if s in self.bracketed:
            self.cancel_brackets(s, ts, None)  # a strategy exit cancels the brackets first
        fee = self.commission.fee(qty, price) if self._fees else 0.0
        left = qty
        while left:
            lot = self.lots[s][0]
            take = min(left, abs(lot.qty))
            self._close_lot(
                s, lot, take, ts, price, fee if take == qty else fee * take / qty, reason
            )
            left -= take
        order.filled += qty
        self._record_fill(
            ts, s, order.side, qty, price, order.ts, order.signal_seq, fee, order.remaining, reason
        )

    def _close_lot(
        self, s: int, lot: Lot, take: int, ts: int, price: float, exit_fee: float, reason: str
    ) -> None:
        """Book the round trip of ``take`` units of ``lot``; cash, position and borrow follow."""
        if self.borrow_rate and s in self.shorts:
            self._accrue_borrow(s, ts, price)
        size = take if lot.qty > 0 else -take
        lot_units = abs(lot.qty)
        entry_fee = lot.fee if take == lot_units else lot.fee * take / lot_units
        fees = entry_fee + exit_fee
        pnl = size * (price - lot.price) - fees
        self.cash += size * price - exit_fee
        self.total_fees += exit_fee
        self.position[s] -= size
        lot.qty -= size
        lot.fee -= entry_fee
        if not lot.qty:
            self.lots[s].remove(lot)
        if not self.position[s]:
            self.held.discard(s)
        if self.position[s] >= 0:
            self.shorts.discard(s)
        self.realized_pnl += pnl
        self.trades += 1
        row = new_row(
            TradeRow,
            (
                self._seq(),
                self._symbols[s],
                int(lot.entry_ts),
                lot.price,
                ts,
                price,
                size,
                fees,
                pnl,
                reason,
            ),
        )
        self.closed.append(row)
        self._record("trades", row)


class _ReferenceHandler(ExecutionHandler):
    """``ExecutionHandler`` with the signal path as it was before the fast paths."""

    def submit(
        self, ts: int, sym: int, side: str, quantity: int, signal_seq: int, **fields: Any
    ) -> bool:
        """Route one signal: True when it became an order for the next bar."""
        metrics, broker, ks = self.metrics, self.broker, self.kill_switch
        assert broker is not None and ks is not None
        metrics.signals_received += 1
        position = broker.position[sym] + broker.pending_quantity(sym)
        denial = ks.check(ts, side, quantity, position)
        if denial is not None:
            self._deny(ts, sym, side, quantity, *denial, signal_seq)
            return False
        metrics.signals_accepted += 1
        broker.submit(sym, side, quantity, ts, signal_seq, **fields)
        return True

    def on_insights(self, ts: int, insights: list[Any]) -> None:
        """Record each insight, size it into signals, record and route each signal (steps 4-6)."""
        broker, record, seq, symbols = self.broker, self._record, self._seq, self._symbols
        sizing, name = self.sizing, self.strategy_name
        uses_equity = getattr(sizing, "uses_equity", True)  # a policy without the flag gets it
        deferred: list[tuple] = []
        for raw in insights:
            ins = as_insight(raw)
            s = ins.sym
            iseq = seq()
            record(
                "insights",
                new_row(
                    InsightRow,
                    (iseq, ts, symbols[s], name, ins.view, ins.reason, ins.value, ins.reference),
                ),
            )
            if s in broker.pending:
                self._cancel_superseded(ts, s, ins.view)
            held = broker.position[s] + broker.pending_quantity(s)
            equity = broker.equity() if uses_equity else 0.0
            legs = sizing.legs(ins, held, broker.last_close[s], equity)
            for leg in legs:
                if sizing.exits_first and leg[2] == OPEN:
                    deferred.append((ins, iseq, leg))
                else:
                    self._signal(ts, ins, iseq, leg)
        for ins, iseq, leg in deferred:
            self._signal(ts, ins, iseq, leg)

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
        fields: dict[str, Any] = {"intent": intent}
        if order_type != "market":
            fields.update(order_type=order_type, limit=limit, stop=stop)
        if tif != "gtc":
            fields["tif"] = tif
        if sl is not None or tp is not None:
            fields.update(sl=sl, tp=tp)
        if fraction is not None:
            fields["fraction"] = fraction
        self.submit(ts, s, side, quantity, sseq, **fields)


class _ReferenceKillSwitch(KillSwitch):
    """``KillSwitch`` with ``check`` as it was before the no-limit fast path."""

    def check(self, ts: int, side: str, quantity: int, position: int) -> Denial | None:
        """Return a denial for this order, or None when it may go to the broker (then count it).

        ``position`` is the symbol's signed position including orders not yet filled.
        """
        day = self._day_of(ts)
        if day != self._order_day:
            self._order_day, self._day_orders = day, 0
        if self.state == KillState.HALTED:
            return (HALTED_CODE, None, None)
        if self.state == KillState.REDUCE_ONLY:
            if reduces(side, quantity, position):
                return None  # the breach already happened; de-risking is never throttled
            return (
                REDUCE_ONLY_CODE,
                float(abs(_after(side, quantity, position))),
                float(abs(position)),
            )
        return self._check_limits(ts, side, quantity, position)


def _desk(reference: bool, params: dict[str, Any]) -> tuple[Any, Any, dict[str, list]]:
    rows: dict[str, list] = defaultdict(list)

    def record(table: str, row: tuple) -> None:
        rows[table].append(
            tuple(row)[:1] + tuple(row)[2:] if table == "kill_switch_events" else row
        )

    seq = itertools.count(1).__next__
    symbols = tuple(f"S{i}" for i in range(params["n_symbols"]))
    config = BrokerConfig(
        cash=params["cash"],
        commission=CommissionConfig(fixed=params["fixed"], rate=params["rate"]),
        spread=params["spread"],
        max_volume_fraction=params["mvf"],
        borrow_rate=params["borrow"],
    )
    broker_cls = _ReferenceBroker if reference else SimulatedBroker
    broker = broker_cls(config, len(symbols), symbols, record, seq)
    handler_cls = _ReferenceHandler if reference else ExecutionHandler
    handler = handler_cls(ExecutionConfig(kill_switch=params["kill_switch"]))
    sizing = {
        "fixed": FixedUnits(params["units"]),
        "percent": PercentEquity(0.3),
        "weight": TargetWeight(1.0),
    }[params["sizing"]]
    handler.bind(broker, record, seq, symbols, sizing=sizing, orders=params["orders"])
    if reference:
        old = handler.kill_switch
        handler.kill_switch = _ReferenceKillSwitch(old.config, sink=handler._on_state_change)
    return broker, handler, rows


def _play(reference: bool, params: dict[str, Any], steps: list[tuple]) -> tuple:
    broker, handler, rows = _desk(reference, params)
    ks = handler.kill_switch
    ts = T0
    for bars, insights in steps:
        ts += HOUR
        bars = bars[: params["n_symbols"]]
        syms = list(range(len(bars)))
        opens = [b[0] for b in bars]
        highs = [max(b) for b in bars]
        lows = [min(b) for b in bars]
        closes = [b[1] for b in bars]
        volumes = [b[2] * 1000.0 for b in bars]
        if broker.pending and ks.state is not KillState.ACTIVE:
            handler.cancel_blocked_orders(ts)
        if broker.pending or broker.bracketed:
            broker.on_step(ts, range(len(syms)), Bars(syms, opens, highs, lows, volumes))
        broker.last_close[: len(closes)] = closes
        if broker.borrow_rate and broker.shorts:
            broker.charge_borrow(ts)
        ks.on_equity(ts, broker.equity())
        out = []
        for sym, view, fields in insights:
            if sym < len(syms):
                out.append(Insight(ts, sym, view, "test", 1.5, 0.5, **fields))
        if out:
            handler.on_insights(ts, out)
        if broker.pending and ks.state is not KillState.ACTIVE:
            handler.cancel_blocked_orders(ts)
    state = (
        broker.cash,
        list(broker.position),
        broker.fills,
        broker.trades,
        broker.rejections,
        broker.realized_pnl,
        broker.total_fees,
        broker.borrow_paid,
        broker.open_positions(),
        {s: [repr(o) for o in v] for s, v in broker.pending.items()},
        ks.describe(),
        ks._day_orders,
        handler.metrics.as_dict()["denied_by_reason"],
        handler.metrics.signals_received,
        handler.metrics.signals_accepted,
    )
    return dict(rows), state


_price = st.floats(min_value=50.0, max_value=150.0, allow_nan=False).map(lambda x: round(x, 2))
_bar = st.tuples(_price, _price, st.integers(min_value=0, max_value=3))
_fields = st.one_of(
    st.just({}),
    st.just({}),
    st.builds(lambda q: {"quantity": q}, st.integers(min_value=1, max_value=300)),
    st.builds(lambda p: {"limit": p, "order_type": "limit"}, _price),
    st.builds(lambda p: {"stop": p, "order_type": "stop"}, _price),
    # a market order with prices: recorded on the signal, dropped from the order
    st.builds(lambda p, q: {"limit": p, "stop": q}, _price, _price),
    st.builds(lambda: {"tif": "day"}),
    st.builds(
        lambda sl, tp: {"stop_loss": sl, "take_profit": tp},
        st.sampled_from([None, 0.01, 0.05]),
        st.sampled_from([None, 0.02, 0.1]),
    ),
    st.builds(lambda w: {"weight": w}, st.sampled_from([-0.5, 0.0, 0.25, 0.5])),
)
_insight = st.tuples(
    st.integers(min_value=0, max_value=2), st.sampled_from(["long", "flat", "short"]), _fields
)
_kill_switch = st.one_of(
    st.just(KillSwitchConfig()),
    st.just(KillSwitchConfig()),
    st.builds(
        KillSwitchConfig,
        max_daily_trades=st.sampled_from([None, 3, 10]),
        max_position_per_symbol=st.sampled_from([None, 150, 400]),
        max_drawdown_pct=st.sampled_from([None, 0.001]),
        max_orders_per_window=st.sampled_from([None, 4]),
        on_breach=st.sampled_from(["halt", "reduce_only", "flatten"]),
        day_tz=st.sampled_from(["UTC", "America/New_York"]),
    ),
)
_params = st.fixed_dictionaries(
    {
        "n_symbols": st.integers(min_value=1, max_value=3),
        "cash": st.sampled_from([30_000.0, 1_000_000.0]),
        "fixed": st.sampled_from([0.0, 1.0]),
        "rate": st.sampled_from([0.0, 0.001]),
        "spread": st.sampled_from([0.0, 0.0005]),
        "mvf": st.sampled_from([None, None, 0.05]),
        "borrow": st.sampled_from([0.0, 0.03]),
        "units": st.sampled_from([100, 250]),
        "sizing": st.sampled_from(["fixed", "fixed", "percent", "weight"]),
        "orders": st.sampled_from(
            [OrdersConfig(), OrdersConfig(), OrdersConfig(stop_loss=0.02, take_profit=0.03)]
        ),
        "kill_switch": _kill_switch,
    }
)
_steps = st.lists(
    st.tuples(st.lists(_bar, min_size=3, max_size=3), st.lists(_insight, max_size=3)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=_params, steps=_steps)
def test_fast_paths_when_random_orders_and_bars_then_records_equal_reference(
    params: dict[str, Any], steps: list[tuple]
) -> None:
    """Broker fills, handler routing and kill-switch checks equal the code they replaced."""
    # Arrange / Act
    expected = _play(True, params, steps)
    actual = _play(False, params, steps)
    # Assert
    assert actual == expected


@settings(max_examples=300, deadline=None)
@given(
    tz=st.sampled_from(["UTC", "Etc/UTC", "America/New_York", "Asia/Kolkata"]),
    orders=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5 * 86_400_000_000),
            st.sampled_from(["buy", "sell"]),
            st.integers(min_value=1, max_value=500),
            st.integers(min_value=-500, max_value=500),
        ),
        max_size=30,
    ),
    activate_at=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
)
def test_kill_switch_check_when_no_limit_then_equals_reference(
    tz: str, orders: list[tuple[int, str, int, int]], activate_at: int | None
) -> None:
    """The no-limit check counts orders per trading day exactly as the general path does."""
    # Arrange
    config = KillSwitchConfig(day_tz=tz)
    fast, ref = KillSwitch(config), _ReferenceKillSwitch(config)
    orders = sorted(orders)
    # Act / Assert
    for i, (offset, side, quantity, position) in enumerate(orders):
        ts = T0 + offset
        if activate_at == i:
            fast.activate("test", ts)
            ref.activate("test", ts)
        assert fast.check(ts, side, quantity, position) == ref.check(ts, side, quantity, position)
        assert (fast._order_day, fast._day_orders) == (ref._order_day, ref._day_orders)


def _reference_to_arrow(table: str, rows: list[tuple]) -> pa.Table:
    """``write_buffer.to_arrow`` as it was: rows transposed by zip, converted column by column."""
    schema = arrow_schema(table)
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


def _column_values(batch: pa.Table) -> list[str]:
    """Each column's values as text: timestamps as integers, floats by repr (-0.0 and NaN too)."""
    out = []
    for column in batch.columns:
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        out.append(repr(column.to_pylist()))
    return out


_CELLS = {
    "TIMESTAMPTZ": st.integers(min_value=-(2**62), max_value=2**62),
    "BIGINT": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "DOUBLE": st.one_of(st.floats(), st.integers(min_value=-(2**53), max_value=2**53)),
    "VARCHAR": st.text(max_size=12),
}


@st.composite
def _table_rows(draw: st.DrawFn) -> tuple[str, list[tuple]]:
    table = draw(st.sampled_from(sorted(TABLES)))
    record = RECORDS[table]
    cells = []
    for name, (sql, _) in TABLES[table]:
        cell = _CELLS[sql]
        if "None" in str(record.__annotations__[name]):  # an optional column
            cell = st.one_of(st.none(), cell)
        cells.append(cell)
    rows = draw(st.lists(st.tuples(*cells), min_size=1, max_size=25))
    return table, [new_row(record, row) for row in rows]


@settings(max_examples=200, deadline=None)
@given(table_rows=_table_rows())
def test_to_arrow_when_random_rows_of_any_table_then_equals_column_conversion(
    table_rows: tuple[str, list[tuple]],
) -> None:
    """The struct-array conversion gives the schema and values the column conversion gave."""
    # Arrange
    table, rows = table_rows
    # Act
    actual, expected = to_arrow(table, rows), _reference_to_arrow(table, rows)
    # Assert
    assert actual.schema == expected.schema
    assert actual.num_rows == expected.num_rows == len(rows)
    assert _column_values(actual) == _column_values(expected)


@settings(max_examples=200, deadline=None)
@given(
    prices=st.lists(
        st.one_of(st.floats(), st.sampled_from([-0.0, 5e-324, math.inf])), min_size=1, max_size=40
    )
)
def test_chunk_prices_when_read_through_memoryview_then_floats_equal_tolist(
    prices: list[float],
) -> None:
    """The broker's opens and the engine's closes, read from the chunk's float64 arrays through a
    memoryview (row by row, or a step's slice), are the floats ``tolist`` gave (sign, NaN)."""
    # Arrange
    column = np.ascontiguousarray(prices, dtype=np.float64)
    chunk = SimpleNamespace(sym=np.zeros(len(prices), dtype=np.int64), open=column)
    expected = [repr(x) for x in column.tolist()]
    # Act
    opens = _ChunkLists(chunk).opens
    by_row = [opens[r] for r in range(len(prices))]
    by_slice = memoryview(column)[0 : len(prices)].tolist()
    # Assert
    assert all(type(x) is float for x in by_row + by_slice)
    assert [repr(x) for x in by_row] == [repr(x) for x in by_slice] == expected
