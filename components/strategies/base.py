"""The strategy seam. Strategies emit insights (what they saw); a sizing policy makes signals.

An insight is an ``Insight`` record (a NamedTuple, so the hot loop may still unpack it). ``view`` is
``"long"`` (wants to hold the symbol long), ``"flat"`` (wants no position) or ``"short"`` (wants to be
short). The optional order fields say how the resulting order is to be placed; left at their
defaults, the sizing policy decides the quantity and the order is a market order at the next open
with the configured brackets (``orders.stop_loss`` / ``orders.take_profit``). Strategies may compute
indicators for a whole chunk in ``on_chunk`` as long as the value at a bar depends only on bars up
to and including it (causal); ``on_step`` then hands out the insights of one clock step.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from components.market.base import BarChunk

LONG, FLAT, SHORT = "long", "flat", "short"
VIEWS = (LONG, FLAT, SHORT)
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIME_IN_FORCE = ("gtc", "day")


class Insight(NamedTuple):
    """What a strategy saw at ``ts`` for symbol index ``sym`` and the position it wants."""

    ts: int  # epoch microseconds (UTC) of the decision bar
    sym: int  # index into Universe.symbols
    view: str  # long | flat | short
    reason: str  # short code, e.g. "sma_up_cross"
    value: float = 0.0  # the indicator value behind the decision (stored, digested)
    reference: float = 0.0  # the level it was compared with
    quantity: int | None = None  # explicit units; None = the sizing policy decides
    weight: float | None = None  # target weight of equity (sizing=target_weight); None = n/a
    order_type: str = "market"  # market | limit | stop | stop_limit
    limit: float | None = None  # limit price (limit, stop_limit)
    stop: float | None = None  # stop trigger price (stop, stop_limit)
    tif: str = "gtc"  # gtc | day (a day order not filled by the end of its first bar expires)
    stop_loss: float | None = (
        None  # fraction below/above the decision close; None = orders.stop_loss
    )
    take_profit: float | None = None  # fraction; None = orders.take_profit


class Strategy(Protocol):
    name: str
    uses_analytics: bool

    def start(self, symbols: tuple[str, ...]) -> None:
        """Reset state for a run over ``symbols`` (sorted)."""

    def on_chunk(self, chunk: BarChunk) -> None:
        """Precompute what the chunk's steps need, causally."""

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> list[Insight] | None:
        """Return the insights of clock step ``k`` (rows ``lo:hi`` of the current chunk).

        Optional hint: after ``on_chunk`` a strategy may set ``active_steps`` to one bool per
        step of the chunk (or None); the engine then skips ``on_step`` on the steps marked False,
        where the strategy promises to return nothing, when it reads no analytics snapshots.
        """


class EventStrategy:
    """Base for strategies that precompute a sorted list of insight rows per chunk."""

    name = "event"
    uses_analytics = False

    def __init__(self) -> None:
        self._events: list[tuple[int, Insight]] = []
        self._next = 0

    def _set_events(self, events: list[tuple[int, Insight]]) -> None:
        events.sort(key=lambda e: e[0])
        self._events = events
        self._next = 0

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> list[Insight] | None:
        events, i = self._events, self._next
        if i >= len(events) or events[i][0] >= hi:
            return None
        out = []
        while i < len(events) and events[i][0] < hi:
            out.append(events[i][1])
            i += 1
        self._next = i
        return out


class WorkingOrder(Protocol):
    """An order at the broker that has not (fully) filled yet, as a strategy may read it."""

    sym: int
    side: str  # buy | sell
    quantity: int  # units still to fill
    order_type: str  # market | limit | stop | stop_limit
    limit: float | None
    stop: float | None
    tif: str  # gtc | day
    is_bracket: bool  # a stop-loss / take-profit exit attached to a position


class BrokerView(Protocol):
    """What a strategy may read of the broker at the close of a bar (after that bar's fills/brackets).

    The engine calls ``strategy.bind(view)`` before ``start`` when the strategy defines ``bind``.
    """

    cash: float

    def position_of(self, sym: int) -> int:
        """Signed units held (negative = short)."""

    def equity(self) -> float:
        """Cash plus open positions marked at their last close (DESIGN 5b: P&L-based)."""

    def working_orders(self, sym: int) -> list[WorkingOrder]:
        """Orders of ``sym`` not yet filled, brackets included, in submission order."""
