"""Orders at the broker and the ``orders`` group (brackets attached to every entry).

An ``Order`` is what the ExecutionHandler hands the broker once a signal passed the kill switch:
market, limit, stop or stop-limit, time in force ``gtc`` or ``day``. Its intent says whether it
opens (``open``), closes (``close``, ``reverse``: the first leg of a reversal) or is the kill
switch's ``flatten``; closing intents never open the other side (the broker clips them to the
position). Fill prices follow docs/execution.md (backtesting.py 0.6.6's rules, DESIGN 5b).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from components.errors import UserFacingError
from components.registry import register
from components.strategies.base import ORDER_TYPES, TIME_IN_FORCE

OPEN, CLOSE, REVERSE, FLATTEN = "open", "close", "reverse", "flatten"
CLOSING = (CLOSE, REVERSE, FLATTEN)


class OrderError(UserFacingError, ValueError):
    """A strategy asked for an order the broker cannot place (e.g. a limit order without a price)."""


@dataclass
class OrdersConfig:
    kind: str = "default"
    stop_loss: float | None = None  # fraction of the decision bar's close; 0.02 = exit 2 % below
    take_profit: float | None = None  # fraction of the decision bar's close; 0.04 = exit 4 % above

    def __post_init__(self) -> None:
        for key in ("stop_loss", "take_profit"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"orders.{key} must be a fraction > 0 of the decision close or null (none), "
                    f"was {value}; e.g. orders.{key}=0.02 for 2 %"
                )
        if self.stop_loss is not None and self.stop_loss >= 1:
            raise ValueError(
                f"orders.stop_loss must be below 1 (a long's stop would be at or below 0), was "
                f"{self.stop_loss}; e.g. orders.stop_loss=0.02 for 2 %"
            )


@register("orders", "default", OrdersConfig)
def make_orders(config: OrdersConfig) -> OrdersConfig:
    """Return the config: the ExecutionHandler attaches its brackets to each entry."""
    return config


class Order:
    """One working order (a ``WorkingOrder`` for strategies); mutable, as fills consume it."""

    __slots__ = (
        "bars",
        "filled",
        "fraction",
        "intent",
        "limit",
        "order_type",
        "quantity",
        "side",
        "signal_seq",
        "sl",
        "stop",
        "sym",
        "tif",
        "tp",
        "triggered",
        "ts",
    )
    is_bracket = False

    def __init__(
        self,
        sym: int,
        side: str,
        quantity: int,
        ts: int,
        signal_seq: int,
        order_type: str = "market",
        limit: float | None = None,
        stop: float | None = None,
        tif: str = "gtc",
        intent: str | None = None,
        sl: float | None = None,
        tp: float | None = None,
        fraction: float | None = None,
    ) -> None:
        self.sym, self.side, self.quantity, self.filled = sym, side, quantity, 0
        self.order_type, self.limit, self.stop, self.tif = order_type, limit, stop, tif
        self.ts, self.signal_seq, self.intent = ts, signal_seq, intent
        self.sl, self.tp, self.fraction = sl, tp, fraction
        self.triggered = False  # stop_limit: the stop was touched, it now works as a limit
        self.bars = 0  # bars this order has been working through (a day order gets one)

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    @property
    def signed_remaining(self) -> int:
        return self.remaining if self.side == "buy" else -self.remaining

    def __repr__(self) -> str:
        return (
            f"Order({self.side} {self.remaining}/{self.quantity} sym={self.sym} {self.order_type} "
            f"limit={self.limit} stop={self.stop} {self.tif} {self.intent})"
        )


class BracketView(NamedTuple):
    """A stop-loss or take-profit exit attached to an open lot, as ``working_orders`` shows it."""

    sym: int
    side: str
    quantity: int
    order_type: str  # stop (stop_loss) | limit (take_profit)
    limit: float | None
    stop: float | None
    tif: str = "gtc"
    is_bracket: bool = True


def check_order_fields(
    strategy: str,
    symbol: str,
    ts_iso: str,
    order_type: str,
    limit: float | None,
    stop: float | None,
    tif: str,
) -> None:
    """Raise ``OrderError`` (one line, exit 2) when an insight's order fields cannot be placed."""
    where = f"strategy {strategy}: insight for {symbol} at {ts_iso}"
    if order_type not in ORDER_TYPES:
        raise OrderError(
            f"{where} asks for order_type={order_type!r}; use one of {', '.join(ORDER_TYPES)}"
        )
    if tif not in TIME_IN_FORCE:
        raise OrderError(f"{where} asks for tif={tif!r}; use one of {', '.join(TIME_IN_FORCE)}")
    needs_limit = order_type in ("limit", "stop_limit")
    needs_stop = order_type in ("stop", "stop_limit")
    for name, value, needed in (("limit", limit, needs_limit), ("stop", stop, needs_stop)):
        if needed and (value is None or not (math.isfinite(value) and value > 0)):
            raise OrderError(
                f"{where} asks for a {order_type} order with {name}={value}; give Insight.{name} a "
                f"price > 0 (or use order_type='market')"
            )
