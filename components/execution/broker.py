"""SimulatedBroker: fills at the next bar's open of the order's symbol; FIFO lots make trades.

Long only and no costs (reference semantics, DESIGN section 5). An order decided on a symbol's
last bar never fills; a position open after the last bar is reported, not counted as a trade.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class BrokerConfig:
    kind: str = "simulated"
    cash: float = 1_000_000.0  # starting cash, in the quote currency
    order_size: int = 100  # units per entry order (the sizing policy's fixed size)

    def __post_init__(self) -> None:
        if self.cash <= 0:
            raise ValueError(f"broker.cash must be > 0, was {self.cash}; try broker.cash=1000000")
        if self.order_size < 1:
            raise ValueError(
                f"broker.order_size must be >= 1 unit, was {self.order_size}; try broker.order_size=100"
            )


Record = Callable[[str, tuple], None]


class SimulatedBroker:
    """Hold pending orders, fill them at the next open, track cash, positions and round trips."""

    def __init__(
        self,
        config: BrokerConfig,
        n_symbols: int,
        symbols: tuple[str, ...],
        record: Record,
        next_seq: Callable[[], int],
    ) -> None:
        self.cash = config.cash
        self.position = [0] * n_symbols
        self.pending: dict[
            int, list[tuple[str, int, int, int]]
        ] = {}  # sym -> [(side, qty, ts, signal_seq)]
        self.lots: list[deque[list[float]]] = [
            deque() for _ in range(n_symbols)
        ]  # [entry_ts, price, qty]
        self.last_close = [0.0] * n_symbols
        self.held: set[int] = set()
        self.fills = 0
        self.rejections = 0
        self.trades = 0
        self.realized_pnl = 0.0
        self.closed: list[tuple] = []  # trade rows, kept for the run's reports
        self._symbols = symbols
        self._record = record
        self._seq = next_seq

    def pending_quantity(self, sym: int) -> int:
        """Return the signed units of orders not yet filled for ``sym``."""
        return sum(q if side == "buy" else -q for side, q, _, _ in self.pending.get(sym, ()))

    def submit(self, sym: int, side: str, quantity: int, ts: int, signal_seq: int) -> None:
        self.pending.setdefault(sym, []).append((side, quantity, ts, signal_seq))

    def fill_at_open(self, sym: int, ts: int, price: float) -> None:
        """Fill every pending order of ``sym`` at this bar's open."""
        for side, qty, order_ts, signal_seq in self.pending.pop(sym):
            if side == "buy":
                if qty * price > self.cash:
                    self.rejections += 1
                    self._record(
                        "denials",
                        (
                            self._seq(),
                            ts,
                            self._symbols[sym],
                            side,
                            qty,
                            "INSUFFICIENT_CASH",
                            qty * price,
                            self.cash,
                            signal_seq,
                        ),
                    )
                    continue
                self.cash -= qty * price
                self.position[sym] += qty
                self.lots[sym].append([ts, price, qty])
                self.held.add(sym)
            else:
                qty = min(qty, self.position[sym])
                if qty <= 0:
                    continue
                self.cash += qty * price
                self.position[sym] -= qty
                self._close_lots(sym, qty, ts, price)
                if not self.position[sym]:
                    self.held.discard(sym)
            self.fills += 1
            self._record(
                "fills",
                (self._seq(), ts, self._symbols[sym], side, qty, price, order_ts, signal_seq),
            )

    def _close_lots(self, sym: int, qty: int, ts: int, price: float) -> None:
        lots = self.lots[sym]
        while qty > 0:
            lot = lots[0]
            take = min(qty, int(lot[2]))
            pnl = (price - lot[1]) * take
            self.realized_pnl += pnl
            self.trades += 1
            row = (self._seq(), self._symbols[sym], int(lot[0]), lot[1], ts, price, take, pnl)
            self.closed.append(row)
            self._record("trades", row)
            lot[2] -= take
            qty -= take
            if not lot[2]:
                lots.popleft()

    def equity(self) -> float:
        """Return cash plus open positions marked at their last close."""
        value = self.cash
        for sym in self.held:
            value += self.position[sym] * self.last_close[sym]
        return value

    def open_positions(self) -> list[dict[str, object]]:
        """Describe each open lot, marked at the symbol's last close."""
        out = []
        for sym in sorted(self.held):
            for entry_ts, price, qty in self.lots[sym]:
                mark = self.last_close[sym]
                out.append(
                    {
                        "symbol": self._symbols[sym],
                        "entry_ts_us": int(entry_ts),
                        "entry_price": price,
                        "size": int(qty),
                        "mark_price": mark,
                        "unrealized_pnl": (mark - price) * qty,
                    }
                )
        return out
