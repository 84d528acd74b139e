"""SimulatedBroker: order types, costs, partial fills, short selling and brackets (DESIGN 5b).

Orders decided at the close of bar k-1 work from the open of bar k. Per clock step the broker
(1) fills at the open, closing orders of every symbol first, then entries; a strategy exit
cancels its position's brackets before they are checked; (2) checks the brackets of open lots
against the bar, a lot filled at this same open included (the stop is tested before the take
profit); (3) tests working limit/stop orders against the bar's range; then the engine marks
equity at the close. Cash moves by the fill's notional and commission, so equity (cash plus
every position marked at its last close) equals DESIGN 5b's P&L form. Every rule is written out
for users in docs/execution.md.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from components.execution.orders import CLOSING, FLATTEN, OPEN, REVERSE, BracketView, Order
from components.execution.records import FillRow, TradeRow, new_row, record_denial
from components.registry import register

US_PER_YEAR = 365 * 86_400_000_000  # borrow accrues ACT/365 on the time between bar stamps
MAX_UNITS = 10**12  # largest order or position in units (keeps every product far from int64)

INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
NOTHING_TO_CLOSE = "NOTHING_TO_CLOSE"
EXPIRED_DAY = "EXPIRED_DAY"
ZERO_SIZE = "ZERO_SIZE"
CANCELLED_BY_STRATEGY = "CANCELLED_BY_STRATEGY"


def _finite_at_least(key: str, value: float, low: float, example: str) -> None:
    if not (math.isfinite(value) and value >= low):
        raise ValueError(f"{key} must be a finite number >= {low:g}, was {value}; e.g. {example}")


@dataclass
class CommissionConfig:
    fixed: float = 0.0  # quote currency per fill
    rate: float = 0.0  # fraction of the fill's notional (quantity x price); 0.001 = 10 bp
    per_unit: float = 0.0  # quote currency per unit filled, clamped to [min, max] per fill
    min: float | None = None  # floor of the per-unit charge of one fill; null = none
    max: float | None = None  # cap of the per-unit charge of one fill; null = none

    def __post_init__(self) -> None:
        _finite_at_least("broker.commission.fixed", self.fixed, 0, "broker.commission.fixed=1.0")
        _finite_at_least("broker.commission.rate", self.rate, 0, "broker.commission.rate=0.001")
        if self.rate >= 1:
            raise ValueError(
                f"broker.commission.rate must be a fraction below 1 of the notional, was "
                f"{self.rate}; write 0.001 for 10 bp"
            )
        _finite_at_least(
            "broker.commission.per_unit", self.per_unit, 0, "broker.commission.per_unit=0.005"
        )
        for key in ("min", "max"):
            value = getattr(self, key)
            if value is None:
                continue
            _finite_at_least(f"broker.commission.{key}", value, 0, f"broker.commission.{key}=1.0")
            if not self.per_unit:
                raise ValueError(
                    f"broker.commission.{key} clamps the per-unit charge, but "
                    "broker.commission.per_unit is 0; set e.g. broker.commission.per_unit=0.005 "
                    f"or remove broker.commission.{key}"
                )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(
                f"broker.commission.min ({self.min}) must not exceed broker.commission.max "
                f"({self.max}); e.g. broker.commission.min=1.0 broker.commission.max=50.0"
            )

    def fee(self, quantity: int, price: float) -> float:
        """Return the commission of one fill of ``quantity`` units at ``price``."""
        fee = self.fixed + self.rate * quantity * price
        if self.per_unit:
            unit = self.per_unit * quantity
            if self.min is not None and unit < self.min:
                unit = self.min
            if self.max is not None and unit > self.max:
                unit = self.max
            fee += unit
        return fee


@dataclass
class BrokerConfig:
    kind: str = "simulated"
    cash: float = 1_000_000.0  # starting cash, in the quote currency
    commission: CommissionConfig = field(default_factory=CommissionConfig)
    spread: float = 0.0  # bid-ask spread as a fraction, charged once per round trip at the entry
    max_volume_fraction: float | None = None  # a fill takes at most this fraction of bar volume
    borrow_rate: float = 0.0  # annual fraction of short notional, accrued ACT/365 while held
    order_size: int | None = None  # removed: the sizing policy decides (sizing.units)

    def __post_init__(self) -> None:
        if self.order_size is not None:
            raise ValueError(
                f"broker.order_size={self.order_size} was replaced by the sizing group: write "
                f"sizing.units={self.order_size} (sizing=fixed_units) instead"
            )
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise ValueError(
                f"broker.cash must be a finite amount > 0, was {self.cash}; try broker.cash=1000000"
            )
        _finite_at_least("broker.spread", self.spread, 0, "broker.spread=0.0005")
        if self.spread >= 1:
            raise ValueError(
                f"broker.spread must be a fraction below 1, was {self.spread}; "
                "write 0.0005 for 5 bp"
            )
        mvf = self.max_volume_fraction
        if mvf is not None and not (math.isfinite(mvf) and 0 < mvf <= 1):
            raise ValueError(
                f"broker.max_volume_fraction must be a fraction in (0, 1] or null (off), was {mvf}; "
                "e.g. broker.max_volume_fraction=0.1"
            )
        _finite_at_least("broker.borrow_rate", self.borrow_rate, 0, "broker.borrow_rate=0.03")


class Lot:
    """One entry fill still (partly) open: the unit of trades and of brackets."""

    __slots__ = ("entry_ts", "fee", "order_ts", "price", "qty", "signal_seq", "sl", "tp")

    def __init__(
        self,
        entry_ts: int,
        price: float,
        qty: int,
        fee: float,
        sl: float | None,
        tp: float | None,
        signal_seq: int,
        order_ts: int,
    ) -> None:
        self.entry_ts = entry_ts
        self.price = price  # entry fill price, after spread
        self.qty = qty  # signed units still open
        self.fee = fee  # the entry commission not yet booked into a closed trade
        self.sl, self.tp = sl, tp  # bracket levels (prices), None = none
        self.signal_seq, self.order_ts = signal_seq, order_ts


class Broker(Protocol):
    """What the engine and the ExecutionHandler use of a broker (the strategy sees ``BrokerView``)."""

    cash: float
    position: list[int]
    last_close: list[float]
    pending: dict[int, list[Order]]
    bracketed: set[int]
    closed: list[TradeRow]

    def position_of(self, sym: int) -> int: ...
    def equity(self) -> float: ...
    def working_orders(self, sym: int) -> list[Any]: ...
    def pending_quantity(self, sym: int) -> int: ...
    def submit(
        self, sym: int, side: str, quantity: int, ts: int, signal_seq: int, **kw: Any
    ) -> Order: ...
    def place(self, order: Order) -> None: ...
    def on_step(self, ts: int, rows: range, bars: Any) -> None: ...
    def cancel(self, order: Order, ts: int, code: str) -> None: ...
    def cancel_brackets(self, sym: int, ts: int, code: str | None) -> None: ...
    def flatten_all(self, ts: int) -> None: ...
    def open_positions(self) -> list[dict[str, object]]: ...


Record = Callable[[str, tuple], None]
Deny = Callable[[int, int, str, int, str, float | None, float | None, int], None]
INF = math.inf


class SimulatedBroker:
    """Hold working orders and lots; fill at the open or within the bar; book costs and trades."""

    def __init__(
        self,
        config: BrokerConfig,
        n_symbols: int,
        symbols: tuple[str, ...],
        record: Record,
        next_seq: Callable[[], int],
    ) -> None:
        self.config = config
        self.cash = config.cash
        self.commission = config.commission
        self.spread = config.spread
        self.max_volume_fraction = config.max_volume_fraction
        self.borrow_rate = config.borrow_rate
        self._fees = bool(
            config.commission.fixed or config.commission.rate or config.commission.per_unit
        )
        self.position = [0] * n_symbols
        self.pending: dict[int, list[Order]] = {}
        self.lots: list[deque[Lot]] = [deque() for _ in range(n_symbols)]  # per symbol, FIFO
        self.last_close = [0.0] * n_symbols
        self.held: set[int] = set()
        self.shorts: set[int] = set()
        self.bracketed: set[int] = set()
        # a bar can touch a bracket only if low <= low_trigger or high >= high_trigger
        self.low_trigger = [-INF] * n_symbols
        self.high_trigger = [INF] * n_symbols
        self._borrow_from = [0] * n_symbols
        self.fills = 0
        self.rejections = 0
        self.trades = 0
        self.realized_pnl = 0.0
        self.total_fees = 0.0  # every commission charged (open positions' entries included)
        self.borrow_paid = 0.0
        self.closed: list[TradeRow] = []  # trade rows, kept for the run's reports
        self._symbols = symbols
        self._record = record
        self._seq = next_seq
        # recorded as is when no ExecutionHandler is bound (tools, unit tests); the handler binds
        # its _deny here, which also counts the refusal by reason
        self.deny: Deny = functools.partial(record_denial, record, next_seq, symbols)

    # -- the strategy's view (BrokerView) ----------------------------------------------------------
    def position_of(self, sym: int) -> int:
        """Return the signed units held of ``sym`` (negative = short)."""
        return self.position[sym]

    def equity(self) -> float:
        """Return cash plus open positions marked at their last close."""
        value, position, last_close = self.cash, self.position, self.last_close
        for sym in self.held:
            # float * int: the float's multiply takes the int at once (int * float asks the int
            # first); the same product, as IEEE multiplication is commutative
            value += last_close[sym] * position[sym]
        return value

    def working_orders(self, sym: int) -> list[Any]:
        """Return ``sym``'s orders not yet filled, then its brackets, in submission order."""
        out: list[Any] = list(self.pending.get(sym, ()))
        for lot in self.lots[sym]:
            side = "sell" if lot.qty > 0 else "buy"
            if lot.sl is not None:
                out.append(BracketView(sym, side, abs(lot.qty), "stop", None, lot.sl))
            if lot.tp is not None:
                out.append(BracketView(sym, side, abs(lot.qty), "limit", lot.tp, None))
        return out

    def pending_quantity(self, sym: int) -> int:
        """Return the signed units of orders not yet filled for ``sym``."""
        orders = self.pending.get(sym)
        if not orders:
            return 0
        return sum(o.signed_remaining for o in orders)

    # -- orders ------------------------------------------------------------------------------------
    def submit(
        self, sym: int, side: str, quantity: int, ts: int, signal_seq: int, **fields: Any
    ) -> Order:
        """Queue an order for the next bar (fields: order_type, limit, stop, tif, intent, sl, tp)."""
        order = Order(sym, side, quantity, ts, signal_seq, **fields)
        self.place(order)
        return order

    def place(self, order: Order) -> None:
        """Queue ``order`` for the next bar, after its symbol's other working orders."""
        orders = self.pending.get(order.sym)
        if orders is None:
            self.pending[order.sym] = [order]
        else:
            orders.append(order)

    def remove(self, order: Order) -> None:
        orders = self.pending[order.sym]
        orders.remove(order)
        if not orders:
            del self.pending[order.sym]

    def cancel(self, order: Order, ts: int, code: str) -> None:
        """Cancel the rest of ``order`` and record it as a denial with ``code``."""
        self.remove(order)
        self.deny(ts, order.sym, order.side, order.remaining, code, None, None, order.signal_seq)

    def cancel_brackets(self, sym: int, ts: int, code: str | None) -> None:
        """Drop every bracket of ``sym``'s lots; record each one as a denial when ``code`` is set."""
        for lot in self.lots[sym]:
            if code is not None and (lot.sl is not None or lot.tp is not None):
                side = "sell" if lot.qty > 0 else "buy"
                self.deny(ts, sym, side, abs(lot.qty), code, None, None, lot.signal_seq)
            lot.sl = lot.tp = None
        self._retrigger(sym)

    def flatten_all(self, ts: int) -> None:
        """Queue a market order closing every open position at the next open (kill switch)."""
        for sym in sorted(self.held):
            pos = self.position[sym]
            self.submit(sym, "sell" if pos > 0 else "buy", abs(pos), ts, 0, intent=FLATTEN)

    # -- one clock step ----------------------------------------------------------------------------
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
            fill = self._fill
            # (1a) closing orders of every symbol first, at the open; then (1b) entries (and
            # orders whose trigger the open crossed)
            for closing in (True, False):
                for r in working:
                    orders = pending.get(syms[r])
                    if orders:
                        for order in tuple(orders):  # the orders working when the phase began
                            if (order.intent in CLOSING) is not closing:
                                continue
                            if order.order_type == "market":  # fills at the open, whatever it is
                                fill(order, ts, opens[r], caps)
                            else:
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
        for r in working:  # (a loop, not any(): usually no working row is left)
            if syms[r] in pending:
                highs, lows = bars.highs, bars.lows
                for r in working:
                    if syms[r] in pending:
                        self._intrabar(syms[r], ts, opens[r], highs[r], lows[r], caps)
                break

    def fill_at_open(self, sym: int, ts: int, price: float) -> None:
        """Fill ``sym``'s working orders on a bar that trades only at ``price`` (tests, tools)."""
        bars = _OneBar([sym], [price], [price], [price], [INF])
        self.on_step(ts, range(1), bars)

    def charge_borrow(self, ts: int) -> None:
        """Accrue borrow on every short up to ``ts`` at its last close (the engine's mark)."""
        for sym in self.shorts:
            self._accrue_borrow(sym, ts, self.last_close[sym])

    def _accrue_borrow(self, sym: int, ts: int, price: float) -> None:
        elapsed = ts - self._borrow_from[sym]
        if elapsed > 0:
            charge = self.borrow_rate * -self.position[sym] * price * elapsed / US_PER_YEAR
            self.cash -= charge
            self.borrow_paid += charge
        self._borrow_from[sym] = ts

    # -- fills -------------------------------------------------------------------------------------
    def _try_open(self, order: Order, ts: int, o: float, caps: dict[int, float]) -> None:
        """Fill ``order`` at the open when a market order, or when the open crosses its price."""
        kind, buy = order.order_type, order.side == "buy"
        if kind == "market":
            price = o
        elif kind == "limit":
            price = o if (o <= order.limit if buy else o >= order.limit) else None
        elif kind == "stop":
            price = o if (o >= order.stop if buy else o <= order.stop) else None
        else:  # stop_limit: the open may trigger it; then it is a limit at the open
            if not order.triggered and (o >= order.stop if buy else o <= order.stop):
                order.triggered = True
            hit = order.triggered and (o <= order.limit if buy else o >= order.limit)
            price = o if hit else None
        if price is not None:
            self._fill(order, ts, price, caps)

    def _intrabar(self, s: int, ts: int, o: float, h: float, low: float, caps: dict) -> None:
        working = self.pending[s]
        for order in list(working):
            if order.order_type != "market" and order in working:
                price = self._range_price(order, o, h, low)
                if price is not None:
                    self._fill(order, ts, price, caps)
            order.bars += 1
            if order.tif == "day" and s in self.pending and order in self.pending[s]:
                self.cancel(order, ts, EXPIRED_DAY)

    @staticmethod
    def _range_price(order: Order, o: float, h: float, low: float) -> float | None:
        """Return the price at which the bar's range (the open did not) reaches the order."""
        kind, buy = order.order_type, order.side == "buy"
        if kind == "limit":
            return order.limit if (low <= order.limit if buy else h >= order.limit) else None
        if kind == "stop":
            return order.stop if (h >= order.stop if buy else low <= order.stop) else None
        if kind == "stop_limit":
            if order.triggered:
                return order.limit if (low <= order.limit if buy else h >= order.limit) else None
            if h >= order.stop if buy else low <= order.stop:
                order.triggered = True
                # limit beyond the stop: filled at the stop; otherwise the price would have to
                # come back to the limit after the trigger, which one bar cannot tell: next bars
                inside = order.limit >= order.stop if buy else order.limit <= order.stop
                return order.stop if inside else None
        return None

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
        pos, buy = self.position[s], order.side == "buy"
        want = order.quantity - order.filled  # order.remaining, without the property call
        against = 0
        if pos < 0 if buy else pos > 0:
            units = pos if pos > 0 else -pos
            against = want if want <= units else units
        intent = order.intent
        closing = intent in CLOSING
        if closing:
            if not against:
                self.cancel(order, ts, NOTHING_TO_CLOSE)
                return
            want = against
        cap = caps.get(s, INF) if caps else INF
        take = want if want <= cap else int(cap)
        if take <= 0:
            return  # no volume left in this bar: the order keeps working
        close_q = take if take <= against else against
        open_q = take - close_q
        if close_q:
            reason = (
                intent if intent in (REVERSE, FLATTEN) else REVERSE if intent == OPEN else "signal"
            )
            self._close(s, order, ts, price, close_q, reason)
        if open_q:
            entry = self._entry_price(order, price) if self.spread else price
            fee = self.commission.fee(open_q, entry) if self._fees else 0.0
            # the common case needs no call: no short open, and the entry fits in the cash
            if (self.shorts or open_q * entry + fee > self.cash) and not self._affordable(
                s, 1 if buy else -1, open_q, entry, fee, ts, order
            ):
                return
            self._open(s, order, ts, entry, open_q, fee)
        if caps:
            caps[s] = cap - take
        left = order.quantity - order.filled
        if closing and left and not self.position[s]:
            self.cancel(order, ts, NOTHING_TO_CLOSE)  # the position is closed: nothing left to do
        elif not left:
            self.remove(order)

    def _entry_price(self, order: Order, price: float) -> float:
        if not self.spread:
            return price
        return price * (1 + self.spread) if order.side == "buy" else price * (1 - self.spread)

    def _affordable(
        self, s: int, sign: int, qty: int, entry: float, fee: float, ts: int, order: Order
    ) -> bool:
        """Gross exposure may not exceed equity: refuse (and cancel) an entry that would."""
        need = qty * entry + fee
        power = self.cash
        if self.shorts:
            power -= 2 * sum(-self.position[j] * self.last_close[j] for j in self.shorts)
        if need <= power:
            return True
        self.rejections += 1
        self.remove(order)
        code = INSUFFICIENT_CASH if sign > 0 else INSUFFICIENT_MARGIN
        self.deny(ts, s, order.side, order.remaining, code, need, power, order.signal_seq)
        return False

    def _open(self, s: int, order: Order, ts: int, entry: float, qty: int, fee: float) -> None:
        side = order.side
        signed = qty if side == "buy" else -qty
        shorts = self.shorts
        if self.borrow_rate and s in shorts:
            self._accrue_borrow(s, ts, entry)  # adding to a short: book the borrow so far
        self.cash -= signed * entry + fee
        self.total_fees += fee
        position = self.position
        position[s] = held = position[s] + signed
        self.held.add(s)
        if held < 0 and s not in shorts:
            shorts.add(s)
            self._borrow_from[s] = ts
        sl, tp = order.sl, order.tp
        self.lots[s].append(Lot(ts, entry, signed, fee, sl, tp, order.signal_seq, order.ts))
        if sl is not None or tp is not None:
            self.bracketed.add(s)
            low, high = (sl, tp) if signed > 0 else (tp, sl)
            if low is not None and low > self.low_trigger[s]:
                self.low_trigger[s] = low
            if high is not None and high < self.high_trigger[s]:
                self.high_trigger[s] = high
        order.filled = filled = order.filled + qty
        self._record_fill(
            ts,
            s,
            side,
            qty,
            entry,
            order.ts,
            order.signal_seq,
            fee,
            order.quantity - filled,
            "entry",
        )

    def _close(self, s: int, order: Order, ts: int, price: float, qty: int, reason: str) -> None:
        """Close ``qty`` units FIFO at ``price`` for a strategy or kill-switch order."""
        if s in self.bracketed:
            self.cancel_brackets(s, ts, None)  # a strategy exit cancels the brackets first
        fee = self.commission.fee(qty, price) if self._fees else 0.0
        lots = self.lots[s]
        left = qty
        while left:
            lot = lots[0]
            units = lot.qty if lot.qty > 0 else -lot.qty
            take = left if left <= units else units
            self._close_lot(
                s, lot, take, ts, price, fee if take == qty else fee * take / qty, reason
            )
            left -= take
        order.filled = filled = order.filled + qty
        self._record_fill(
            ts,
            s,
            order.side,
            qty,
            price,
            order.ts,
            order.signal_seq,
            fee,
            order.quantity - filled,
            reason,
        )

    def _close_lot(
        self, s: int, lot: Lot, take: int, ts: int, price: float, exit_fee: float, reason: str
    ) -> None:
        """Book the round trip of ``take`` units of ``lot``; cash, position and borrow follow."""
        shorts = self.shorts
        if self.borrow_rate and s in shorts:
            self._accrue_borrow(s, ts, price)
        lot_qty = lot.qty
        size, lot_units = (take, lot_qty) if lot_qty > 0 else (-take, -lot_qty)
        entry_fee = lot.fee if take == lot_units else lot.fee * take / lot_units
        fees = entry_fee + exit_fee
        pnl = size * (price - lot.price) - fees
        self.cash += size * price - exit_fee
        self.total_fees += exit_fee
        position = self.position
        position[s] = held = position[s] - size
        lot.qty = lot_qty - size
        lot.fee -= entry_fee
        if lot_qty == size:
            self.lots[s].remove(lot)
        if not held:
            self.held.discard(s)
        if held >= 0:
            shorts.discard(s)
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

    def _check_brackets(self, s: int, ts: int, o: float, h: float, low: float, caps: dict) -> None:
        """Exit lots whose stop (tested first) or take profit the bar reaches (DESIGN 5b)."""
        exited = False
        for lot in list(self.lots[s]):
            sl, tp = lot.sl, lot.tp
            if lot.qty > 0:
                if sl is not None and low <= sl:
                    price, reason = (o if o < sl else sl), "stop_loss"
                elif tp is not None and h >= tp:
                    price, reason = (o if o > tp else tp), "take_profit"
                else:
                    continue
            else:
                if sl is not None and h >= sl:
                    price, reason = (o if o > sl else sl), "stop_loss"
                elif tp is not None and low <= tp:
                    price, reason = (o if o < tp else tp), "take_profit"
                else:
                    continue
            cap = caps.get(s, INF)
            units = abs(lot.qty)
            take = units if units <= cap else int(cap)
            if take <= 0:
                break
            if caps:
                caps[s] = cap - take
            fee = self.commission.fee(take, price) if self._fees else 0.0
            side = "sell" if lot.qty > 0 else "buy"
            seq, order_ts = lot.signal_seq, lot.order_ts
            self._close_lot(s, lot, take, ts, price, fee, reason)
            left = abs(lot.qty)
            self._record_fill(ts, s, side, take, price, order_ts, seq, fee, left, reason)
            exited = True
        if exited:
            self._retrigger(s)

    def _retrigger(self, s: int) -> None:
        """Recompute the bar levels that can touch one of ``s``'s brackets (a cheap pre-test)."""
        low, high = -INF, INF
        for lot in self.lots[s]:
            sl, tp = lot.sl, lot.tp
            if lot.qty > 0:
                if sl is not None and sl > low:
                    low = sl
                if tp is not None and tp < high:
                    high = tp
            else:
                if tp is not None and tp > low:
                    low = tp
                if sl is not None and sl < high:
                    high = sl
        self.low_trigger[s], self.high_trigger[s] = low, high
        if low == -INF and high == INF:
            self.bracketed.discard(s)

    def _record_fill(
        self,
        ts: int,
        s: int,
        side: str,
        qty: int,
        price: float,
        order_ts: int,
        signal_seq: int,
        fee: float,
        remaining: int,
        reason: str,
    ) -> None:
        self.fills += 1
        self._record(
            "fills",
            new_row(
                FillRow,
                (
                    self._seq(),
                    ts,
                    self._symbols[s],
                    side,
                    qty,
                    price,
                    order_ts,
                    signal_seq,
                    fee,
                    remaining,
                    reason,
                ),
            ),
        )

    # -- reports -----------------------------------------------------------------------------------
    def open_positions(self) -> list[dict[str, object]]:
        """Describe each open lot, marked at the symbol's last close (unrealized pnl is gross)."""
        out = []
        for sym in sorted(self.held):
            for lot in self.lots[sym]:
                entry_ts, price, qty, fee = lot.entry_ts, lot.price, lot.qty, lot.fee
                mark = self.last_close[sym]
                out.append(
                    {
                        "symbol": self._symbols[sym],
                        "entry_ts_us": int(entry_ts),
                        "entry_price": price,
                        "size": int(qty),
                        "entry_fee": fee,
                        "mark_price": mark,
                        "unrealized_pnl": (mark - price) * qty,
                        "stop_loss": lot.sl,
                        "take_profit": lot.tp,
                    }
                )
        return out


def _rows_of(keys: Any, rows: range, syms: list[int]) -> list[int]:
    """Return the rows of this clock step whose symbol is in ``keys``, in row order.

    Few keys (a handful of symbols with working orders or brackets out of many): when the step
    holds symbol ``s`` at row ``lo + s`` (every symbol, in symbol order) that row is read
    directly; otherwise, and with many keys, the step's rows are scanned.
    """
    if len(keys) * 4 < len(rows):
        lo, hi, out = rows.start, rows.stop, []
        for s in sorted(keys) if len(keys) > 1 else keys:
            r = lo + s
            if r >= hi or syms[r] != s:
                return [r for r in rows if syms[r] in keys]
            out.append(r)
        return out
    return [r for r in rows if syms[r] in keys]


class _OneBar:
    """Column lists of a single bar, shaped like the engine's per-chunk lists."""

    def __init__(self, syms: list, opens: list, highs: list, lows: list, volumes: list) -> None:
        self.syms, self.opens, self.highs, self.lows, self.volumes = (
            syms,
            opens,
            highs,
            lows,
            volumes,
        )


class SimulatedBrokerFactory:
    """Build the broker once the engine knows the universe (the registry builds this, no I/O)."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config

    def __call__(
        self, symbols: tuple[str, ...], record: Record, next_seq: Callable[[], int]
    ) -> SimulatedBroker:
        return SimulatedBroker(self.config, len(symbols), symbols, record, next_seq)


@register("broker", "simulated", BrokerConfig)
def make_simulated_broker(config: BrokerConfig) -> SimulatedBrokerFactory:
    return SimulatedBrokerFactory(config)
