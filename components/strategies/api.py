"""The strategy API: write a strategy as typed config + indicators + a decision; chunks stay hidden.

This is the one module a strategy author imports (guide: ``docs/strategies.md``)::

    from dataclasses import dataclass
    from components.strategies.api import Strategy, register_strategy, rolling_max, rolling_min

    @dataclass
    class DonchianConfig:
        entry: int = 20  # bars in the breakout channel
        exit: int = 10  # bars in the exit channel

    @register_strategy("donchian", DonchianConfig)
    class Donchian(Strategy):
        def lookback(self) -> int:
            return max(self.config.entry, self.config.exit) + 1

        def indicators(self, bars):
            return {
                "upper": rolling_max(bars.high, self.config.entry, lag=1),
                "lower": rolling_min(bars.low, self.config.exit, lag=1),
            }

        def decide(self, ctx):
            if ctx.position == 0 and ctx.now.close > ctx.now.upper:
                ctx.buy(100)
            elif ctx.position > 0 and ctx.now.close < ctx.now.lower:
                ctx.close()

A strategy defines ``indicators`` (optional) and exactly one of three decision hooks:

- ``decide(ctx)``: called once per symbol with a bar at the clock step, past its warm-up, in symbol
  order; ``ctx`` is bound to that symbol (``ctx.now``, ``ctx.prev``, ``ctx.position``, ``ctx.buy``).
- ``rebalance(ctx)``: called once per clock step at which at least one symbol is past warm-up, for
  multi-asset logic (``ctx.bars``, ``ctx.target_weights``).
- ``target(bars)``: the vectorised form; return per bar +1 (long), 0 (flat), -1 (short) or NaN
  (keep the previous target). The framework emits an order where the target changes.

How results stay independent of chunking (DESIGN 5c): the framework keeps each symbol's bar
history (with a bounded ``lookback()``, only the bars it can still read) and recomputes the
indicators, after each chunk, over the last ``lookback()`` bars (plus a
few already-known bars it compares with their earlier values) or, when ``lookback()`` is None,
over the whole history. A value that changes once later bars exist (the indicator reads the
future, or needs more history than ``lookback()``) stops the run with a ``StrategyError``. The
warm-up W is the largest first-defined (first non-NaN) bar index over the indicators (0 without
indicators); no decision is made for a symbol before its bar W + 1 (backtesting.py's rule).
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from loguru import logger

from components.errors import UserFacingError
from components.market.base import BarChunk
from components.registry import register
from components.strategies.base import (
    FLAT,
    LONG,
    ORDER_TYPES,
    SHORT,
    TIME_IN_FORCE,
    BrokerView,
    Insight,
    WorkingOrder,
)
from components.strategies.indicators import rolling_sum

__all__ = [
    "FLAT",
    "LONG",
    "SHORT",
    "Bars",
    "Context",
    "Row",
    "Strategy",
    "StrategyError",
    "pct_change",
    "register_strategy",
    "rolling_max",
    "rolling_mean",
    "rolling_min",
    "rolling_std",
    "shift",
]

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_PLAIN_ORDER = frozenset(("reason", "value", "reference"))  # order keywords needing no checks
# the defaults of Insight's fields after ``quantity``: a plain market order's insight is built
# with one C call, tuple.__new__(Insight, head + _MARKET_TAIL), on the hot path
_MARKET_TAIL = tuple(Insight._field_defaults[f] for f in Insight._fields[7:])
_new = tuple.__new__
_CHECK_BARS = 8  # already-known bars recomputed with each chunk and compared (the causality check)
_HOOK_LABELS = {"__when__": "decide_when()", "__target__": "target()"}  # their columns, named


class StrategyError(UserFacingError):
    """A strategy broke the API's contract: the message names the strategy, the bar and the fix."""


# --------------------------------------------------------------------------- indicator helpers
# Each takes a 1-d array and returns one float per input value, NaN where not yet defined. Their
# values depend only on the window's contents, so they are identical whatever tail they run on.


def shift(values: Any, n: int = 1) -> np.ndarray:
    """Return ``values`` delayed by ``n`` bars (``out[t] = values[t - n]``; NaN for t < n)."""
    x = np.asarray(values, dtype=np.float64)
    if n < 0:
        raise ValueError(f"shift: n must be >= 0 (a negative shift reads the future), was {n}")
    out = np.empty(len(x))
    out[:n] = np.nan
    if n < len(x):
        out[n:] = x[: len(x) - n]
    return out


def _windowed(values: Any, window: int, lag: int, pairwise: np.ufunc) -> np.ndarray:
    """Fold ``pairwise`` (np.maximum / np.minimum: exact, NaN-propagating) over each window."""
    x = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1 bar, was {window}")
    out = np.full(len(x), np.nan)
    n = len(x) - window + 1
    if n >= 1:
        acc = x[:n].copy()  # window position j of every window is the slice x[j : j + n]
        for j in range(1, window):
            pairwise(acc, x[j : j + n], out=acc)
        out[window - 1 :] = acc
    return shift(out, lag) if lag else out


def rolling_max(values: Any, window: int, lag: int = 0) -> np.ndarray:
    """Return the max of the last ``window`` values, ``lag`` bars ago (``lag=1``: excluding today)."""
    return _windowed(values, window, lag, np.maximum)


def rolling_min(values: Any, window: int, lag: int = 0) -> np.ndarray:
    """Return the min of the last ``window`` values, ``lag`` bars ago."""
    return _windowed(values, window, lag, np.minimum)


def rolling_mean(values: Any, window: int, lag: int = 0) -> np.ndarray:
    """Return the mean of the last ``window`` values (summed left to right: chunking-exact)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < window:
        out = np.full(len(x), np.nan)
    else:
        out = _padded_mean(len(x), rolling_sum(x, window), window)
    return shift(out, lag) if lag else out


def _padded_mean(length: int, total: np.ndarray, window: int) -> np.ndarray:
    """Return ``total / window`` (the window sums) after window - 1 NaNs: one value per bar."""
    out = np.empty(length)
    out[: window - 1] = np.nan
    np.divide(total, window, out=out[window - 1 :])
    return out


def rolling_std(values: Any, window: int, lag: int = 0, ddof: int = 0) -> np.ndarray:
    """Return the standard deviation of the last ``window`` values (population by default)."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) >= window and window > ddof:
        mean = rolling_sum(x, window) / window
        view = np.lib.stride_tricks.sliding_window_view(x, window)
        dev = view - mean[:, None]
        total = (dev[:, 0] ** 2).copy()
        for j in range(1, window):
            total += dev[:, j] ** 2
        out[window - 1 :] = np.sqrt(total / (window - ddof))
    return shift(out, lag) if lag else out


def pct_change(values: Any, n: int = 1) -> np.ndarray:
    """Return ``values[t] / values[t - n] - 1`` (NaN for t < n)."""
    x = np.asarray(values, dtype=np.float64)
    return x / shift(x, n) - 1.0


# --------------------------------------------------------------------------- bar history


class Bars:
    """One symbol's bars, oldest first, as read-only numpy arrays (what ``indicators`` receives).

    ``ts`` is epoch microseconds (UTC); ``open``..``volume`` are float64; ``start`` is the bar index
    (from 0, per symbol) of the first element. ``target`` also sees the indicators as attributes.
    """

    def __init__(self, symbol: str, start: int, columns: Mapping[str, np.ndarray]) -> None:
        self.symbol = symbol
        self.start = start
        for name, values in columns.items():
            setattr(self, name, values)

    def __len__(self) -> int:
        return len(self.close)  # type: ignore[attr-defined]

    def frame(self) -> pd.DataFrame:
        """Return the OHLCV history as a pandas DataFrame indexed by UTC timestamp."""
        index = pd.to_datetime(self.ts, unit="us", utc=True)  # type: ignore[attr-defined]
        return pd.DataFrame({c: getattr(self, c) for c in PRICE_COLUMNS}, index=index)


class _Known(dict):
    """Indicator values already computed for the tail's earlier bars (NaN for the new ones).

    A recursive indicator (an EMA, Wilder's RSI) reads ``bars.known[name]`` to resume from its
    last value instead of needing the whole history. Built on first access; unknown names (and
    the first chunk) give all-NaN.
    """

    def __init__(self, n: int, history: Any = None, start: int = 0, n_old: int = 0) -> None:
        super().__init__()
        self.n, self._history, self._start, self._n_old = n, history, start, n_old

    def __missing__(self, name: str) -> np.ndarray:
        out = np.full(self.n, np.nan)
        h = self._history
        if h is not None and name in h.cols and not name.startswith("_") and name != "ts":
            out[: self._n_old - self._start] = h.view(name, self._start, self._n_old)
        self[name] = out
        return out


class _History:
    """A per-symbol store of bars and indicator values, indexed by bar number (from 0).

    ``cols[name][i]`` holds bar ``base + i``. Capacity doubles as bars arrive; with a bounded
    ``keep`` (the strategy's ``lookback`` plus the causality check's bars) the bars older than
    ``keep`` before the newest are dropped instead, so memory stays bounded by the chunk size
    and the lookback, not the history. ``keep`` None keeps every bar.
    """

    def __init__(self, names: tuple[str, ...], keep: int | None = None) -> None:
        self.n = 0  # bars stored so far (the next bar's number)
        self.base = 0  # bar number of cols[...][0]
        self.keep = keep
        self.cols: dict[str, np.ndarray] = {"ts": np.empty(64, dtype=np.int64)}
        for name in names:
            self.cols[name] = np.empty(64)
        self.first_defined: dict[str, int] = {}
        self.ready_from: float = math.inf
        self.target = 0.0  # last effective target (vectorised form)

    def add_columns(self, names: list[str]) -> None:
        cap = len(self.cols["ts"])
        for name in names:
            self.cols[name] = np.full(cap, np.nan)

    def reserve(self, m: int) -> None:
        """Make room for ``m`` more bars, dropping the bars no longer kept first."""
        used = self.n - self.base
        cap = len(self.cols["ts"])
        if used + m <= cap:
            return
        drop = 0 if self.keep is None else max(0, used - self.keep)
        live = used - drop
        grown_cap = cap
        while grown_cap < live + m:
            grown_cap *= 2
        for name, arr in self.cols.items():
            if grown_cap == cap:  # room enough once the old bars are gone: move the kept ones
                arr[:live] = arr[drop:used]
            else:
                grown = np.empty(grown_cap, dtype=arr.dtype)
                grown[:live] = arr[drop:used]
                self.cols[name] = grown
        self.base += drop

    def view(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Return bars ``lo``..``hi - 1`` of column ``name``, read-only."""
        out = self.cols[name][lo - self.base : hi - self.base]
        out.flags.writeable = False
        return out

    def get(self, name: str, bar: int) -> float:
        return float(self.cols[name][bar - self.base])


# --------------------------------------------------------------------------- the context


class Row:
    """Values of one symbol at one bar: ``open``..``volume`` and each indicator, as attributes.

    One object per strategy, refilled before each call (slots, no allocation per bar): read it
    inside the hook, copy what you keep (``row.as_dict()``).
    """

    __slots__ = ("_ctx", "_is_prev")

    def __init__(self, ctx: Any = None, is_prev: bool = False) -> None:
        self._ctx, self._is_prev = ctx, is_prev

    def __getattr__(self, name: str) -> Any:
        # a column the loader does not fill (not named in the strategy's code): read it now
        names = type(self).__slots__
        ctx = self._ctx
        if name not in names or ctx is None or ctx._s < 0:
            raise AttributeError(
                f"no column {name!r} at this bar (columns: {', '.join(names) or 'none'}; in "
                "rebalance() read ctx.bars)"
            )
        bar = ctx.bar_index - (1 if self._is_prev else 0)
        if bar < 0:
            return math.nan
        return ctx._strategy._histories[ctx._s].get(name, bar)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).__slots__}

    def __repr__(self) -> str:
        return "Row(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"


def _row_class(names: tuple[str, ...]) -> type[Row]:
    """Return a ``Row`` subclass with one slot per column name."""
    return type("Row", (Row,), {"__slots__": names})


def _loader(eager: tuple[str, ...]) -> Callable[[list[list[Any]]], Callable[[Row, int], None]]:
    """Return ``bind(columns) -> load(row, j)``: ``load`` copies position ``j`` of each column
    into the ``eager`` attribute of the same rank.

    Generated once per strategy so that a decision costs one call and one store per used column.
    """
    cells = "".join(f"c{i} = columns[{i}]\n    " for i in range(len(eager)))
    stores = (
        "".join(f"\n        row.{n} = c{i}[j]" for i, n in enumerate(eager)) or "\n        pass"
    )
    source = f"def bind(columns):\n    {cells}def load(row, j):{stores}\n    return load\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<strategy row loader>", "exec"), namespace)
    return namespace["bind"]


def _names_used(cls: type) -> set[str]:
    """Return every attribute name the per-bar code of ``cls`` (and its bases below Strategy)
    mentions: ``decide``/``rebalance`` and any helper, not the vectorised hooks."""
    names: set[str] = set()

    def walk(code: Any) -> None:
        names.update(code.co_names)
        for const in code.co_consts:
            if hasattr(const, "co_names"):
                walk(const)

    vectorised = {"indicators", "lookback", "target", "decide_when", "on_start"}  # not per bar
    for klass in cls.__mro__:
        if klass is Strategy or klass is object:
            continue
        for attr, value in vars(klass).items():
            if attr in vectorised:
                continue
            func = getattr(value, "__func__", value)
            if hasattr(func, "__code__"):
                walk(func.__code__)
    return names


class Snapshot:
    """A frozen copy of one symbol's values at this bar (what ``ctx.bars`` holds)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Snapshot({self.__dict__!r})"


class Context:
    """What a decision sees at one clock step (reused: read it inside the hook, do not keep it).

    Per symbol (``decide``): ``symbol``, ``now`` and ``prev`` (``Row``: OHLCV + indicators at this
    bar and the symbol's previous bar), ``bar_index``, ``position`` (signed units), ``working_orders``.
    Always: ``ts`` (epoch us), ``time`` (pandas Timestamp), ``cash``, ``equity``, ``symbols`` (the
    universe), ``bars`` (symbol -> ``Snapshot`` of every symbol with a bar at this step), ``ready``
    (those past warm-up), ``snapshot`` (analytics, when ``uses_analytics``), ``position_of(symbol)``.
    Orders: ``buy``, ``sell``, ``short``, ``cover``, ``close``, ``target_weights``.
    """

    def __init__(self, strategy: Strategy) -> None:
        self._strategy = strategy
        self._r = 0  # index into the selected rows' value lists
        self._s = -1
        self._lo = self._hi = 0
        self.ts = 0
        self.snapshot: Any = None
        self._out: list[Insight] = []
        self.now: Row = Row()  # this bar's values (refilled before each decide call)
        self._prev_row: Row = Row()
        self._load_prev: Callable[[Row, int], None] = lambda row, j: None
        self.position = 0  # signed units held (set before each decide call)
        self.symbol: str | None = None  # the symbol ``decide`` is called for (None in rebalance)

    # ---- reading
    @property
    def symbols(self) -> tuple[str, ...]:
        return self._strategy.symbols

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.ts, unit="us", tz="UTC")

    @property
    def bar_index(self) -> int:
        """This symbol's bar number, counted from 0 (its first bar in the run)."""
        st = self._strategy
        return int(st._bar_index[st._ready_rows[self._r]])

    @property
    def prev(self) -> Row:
        """The symbol's previous bar: OHLCV and indicators (NaN before its first bar)."""
        self._load_prev(self._prev_row, self._r)
        return self._prev_row

    def position_of(self, symbol: str) -> int:
        return self._strategy._view.position_of(self._strategy._sym_index(symbol, self))

    @property
    def cash(self) -> float:
        return float(self._strategy._view.cash)

    @property
    def equity(self) -> float:
        return float(self._strategy._view.equity())

    @property
    def working_orders(self) -> list[WorkingOrder]:
        return list(self._strategy._view.working_orders(self._s)) if self._s >= 0 else []

    @property
    def bars(self) -> dict[str, Snapshot]:
        """Every symbol with a bar at this step -> its values (OHLCV, indicators, ``ready``)."""
        st = self._strategy
        names = st._columns
        out: dict[str, Snapshot] = {}
        for r in range(self._lo, self._hi):
            values = {n: float(st._full[n][r]) for n in names}
            values["ready"] = bool(st._ready_mask[r])
            out[st.symbols[st._syms[r]]] = Snapshot(values)
        return out

    @property
    def ready(self) -> list[str]:
        """Symbols with a bar at this step that are past their warm-up, in symbol order."""
        st = self._strategy
        return [st.symbols[st._syms[r]] for r in range(self._lo, self._hi) if st._ready_mask[r]]

    # ---- orders
    def buy(self, quantity: int | None = None, **kw: Any) -> None:
        """Go long: buy ``quantity`` units (None: the sizing policy decides)."""
        self._order(LONG, quantity, "buy", kw)

    def sell(self, **kw: Any) -> None:
        """Exit a long position (all of it) at the next open; nothing when not long."""
        self._no_quantity("sell", kw)
        if self._position_for(kw) > 0:
            self._order(FLAT, None, "sell", kw)

    def short(self, quantity: int | None = None, **kw: Any) -> None:
        """Go short: sell ``quantity`` units short (None: the sizing policy decides)."""
        self._order(SHORT, quantity, "short", kw)

    def cover(self, **kw: Any) -> None:
        """Exit a short position (all of it) at the next open; nothing when not short."""
        self._no_quantity("cover", kw)
        if self._position_for(kw) < 0:
            self._order(FLAT, None, "cover", kw)

    def _position_for(self, kw: dict[str, Any]) -> int:
        symbol = kw.get("symbol")
        return self.position if symbol is None else self.position_of(symbol)

    def _no_quantity(self, what: str, kw: dict[str, Any]) -> None:
        if "quantity" in kw:
            raise self._strategy._error(
                self,
                f"{what}() exits the whole position and takes no quantity",
                "call ctx.sell() / ctx.cover() / ctx.close(), or hold less with ctx.target_weights",
            )

    def close(self, **kw: Any) -> None:
        """Want flat: close the whole position, long or short, at the next open (always recorded)."""
        self._order(FLAT, None, "close", kw)

    def target_weights(self, weights: Mapping[str, float], reason: str = "rebalance") -> None:
        """Hold each symbol at a signed fraction of equity (0 = flat); unnamed symbols are left as is."""
        for symbol, weight in sorted(weights.items()):
            w = float(weight)
            if not math.isfinite(w) or abs(w) > 1:
                raise self._strategy._error(
                    self,
                    f"target weight {w!r} for {symbol!r} is not in [-1, 1]",
                    "give each weight as a fraction of equity, e.g. 0.5 for half",
                )
            view = LONG if w > 0 else SHORT if w < 0 else FLAT
            self._order(view, None, reason, {"symbol": symbol, "weight": w})

    def _order(self, view: str, quantity: int | None, reason: str, kw: dict[str, Any]) -> None:
        st = self._strategy
        if (
            self._s >= 0
            and kw.keys() <= _PLAIN_ORDER
            and (quantity is None or (type(quantity) is int and quantity >= 1))
        ):  # the common case: a market order for this symbol, nothing to validate
            value = kw.get("value")
            if st._book is not None:  # no shadow book when a broker view is bound
                st._book.record(self._s, view, quantity)
            self._out.append(
                _new(
                    Insight,
                    (
                        self.ts,
                        self._s,
                        view,
                        kw.get("reason", reason),
                        float(self.now.close if value is None else value),
                        float(kw.get("reference", 0.0)),
                        quantity,
                        *_MARKET_TAIL,
                    ),
                )
            )
            return
        symbol = kw.pop("symbol", None)
        s = self._s if symbol is None else st._sym_index(symbol, self)
        if s < 0:
            raise st._error(
                self,
                f"{reason}() without a symbol in rebalance()",
                f"name it: ctx.{reason}(..., symbol='{st.symbols[0]}')",
            )
        limit, stop = kw.pop("limit", None), kw.pop("stop", None)
        order_type = kw.pop("order_type", None) or (
            "stop_limit"
            if limit is not None and stop is not None
            else "limit"
            if limit is not None
            else "stop"
            if stop is not None
            else "market"
        )
        tif = kw.pop("tif", "gtc")
        stop_loss, take_profit = kw.pop("stop_loss", None), kw.pop("take_profit", None)
        weight = kw.pop("weight", None)
        reason = kw.pop("reason", reason)
        value, reference = kw.pop("value", None), kw.pop("reference", 0.0)
        if kw:
            raise st._error(
                self,
                f"{reason}() got unknown argument(s) {sorted(kw)}",
                "use quantity, limit, stop, stop_loss, take_profit, tif, reason, symbol",
            )
        st._check_order(
            self, reason, quantity, order_type, limit, stop, tif, stop_loss, take_profit
        )
        if value is None:
            value = st._close_of(s, self)
        if st._book is not None:
            st._book.record(s, view, quantity)
        self._out.append(
            Insight(
                self.ts,
                s,
                view,
                reason,
                float(value),
                float(reference),
                None if quantity is None else int(quantity),
                weight,
                order_type,
                None if limit is None else float(limit),
                None if stop is None else float(stop),
                tif,
                None if stop_loss is None else float(stop_loss),
                None if take_profit is None else float(take_profit),
            )
        )


# --------------------------------------------------------------------------- the shadow book


class _ShadowBook:
    """Positions as the engine will hold them, for engines that do not bind a ``BrokerView``.

    Mirrors the fixed-size engine's rule (long while not long: +quantity; flat while long: 0);
    shorts and cash need the execution engine's ``bind``.
    """

    def __init__(self, n: int, strategy_name: str) -> None:
        self.position = [0] * n
        self.name = strategy_name

    @property
    def cash(self) -> float:
        raise StrategyError(
            f"strategy {self.name!r}: ctx.cash and ctx.equity need an engine that binds a broker "
            "view (strategy.bind); this engine does not. Decide without them or upgrade the engine."
        )

    def equity(self) -> float:
        return self.cash

    def position_of(self, sym: int) -> int:
        return self.position[sym]

    def working_orders(self, sym: int) -> list[WorkingOrder]:
        return []

    def record(self, s: int, view: str, quantity: int | None) -> None:
        if view == LONG and self.position[s] <= 0:
            self.position[s] = quantity or 100
        elif view == FLAT and self.position[s] > 0:
            self.position[s] = 0


# --------------------------------------------------------------------------- the base class


def _rect_width(chunk: BarChunk) -> int:
    """Return S when the chunk's rows repeat the same S increasing symbol indices (every clock
    step holds the same symbols: row r is then a bar of symbol ``sym[r % S]``), else 0."""
    n, sym = len(chunk), chunk.sym
    width = int(chunk.bounds[1]) if len(chunk.bounds) > 1 else 0  # the first step's rows
    if not width or n % width:
        return 0
    codes = sym[:width]
    if width > 1 and not bool((codes[1:] > codes[:-1]).all()):
        return 0
    return width if bool((sym.reshape(-1, width) == codes).all()) else 0


class Strategy:
    """Base class of API strategies; implements the engine's strategy protocol (start/on_chunk/on_step).

    Subclass it, set ``config`` fields through ``register_strategy``, define ``indicators`` and
    one of ``decide`` / ``rebalance`` / ``target``. ``self.config`` is the typed config.
    """

    name: ClassVar[str] = "strategy"
    uses_analytics: ClassVar[bool] = False
    # take rectangular chunks by reshaping, not sorting (False: always sort; tests compare both)
    _rect_path: ClassVar[bool] = True

    def __init__(self, config: Any = None) -> None:
        self.config = config
        self.symbols: tuple[str, ...] = ()
        self._view: Any = None
        self._bound: BrokerView | None = None
        self.active_steps: list[bool] | None = None  # per step of the chunk: has a decision row

    # ---- what a user overrides
    def on_start(self) -> None:
        """Reset your own state (called at the start of every run, after ``self.symbols`` is set)."""

    def lookback(self) -> int | None:
        """Bars (the current one included) that one indicator value depends on; None = all history."""
        return None

    def indicators(self, bars: Bars) -> Mapping[str, Any]:
        """Return name -> one value per bar of ``bars`` (NaN while undefined). Default: none."""
        return {}

    def decide_when(self, bars: Bars) -> Any:  # pragma: no cover - replaced by subclasses
        """Optional, vectorised: True on the bars where ``decide``/``rebalance`` may act.

        Bars where it is False are skipped (still after warm-up only): a fast path when the
        decision can only act on rare bars (a cross, a breakout). Default: every bar.
        """
        raise NotImplementedError

    def decide(self, ctx: Context) -> None:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError

    def rebalance(self, ctx: Context) -> None:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError

    def target(self, bars: Bars) -> Any:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError

    # ---- the engine protocol
    @property
    def warmup_bars(self) -> int:
        """W of the run so far: the largest first-defined bar index over indicators and symbols.

        The statistics read it after the run (buy & hold starts at bar W's close); 0 before any
        symbol is past its warm-up.
        """
        histories = getattr(self, "_histories", [])
        return max(
            (int(h.ready_from) - 1 for h in histories if math.isfinite(h.ready_from)), default=0
        )

    def bind(self, view: BrokerView) -> None:
        """Receive the broker view (the engine calls this before ``start``)."""
        self._bound = view

    def start(self, symbols: tuple[str, ...]) -> None:
        self.symbols = tuple(symbols)
        self._index = {name: i for i, name in enumerate(self.symbols)}
        hooks = [
            h
            for h in ("decide", "rebalance", "target")
            if getattr(type(self), h) is not getattr(Strategy, h)
        ]
        if len(hooks) != 1:
            raise StrategyError(
                f"strategy {self.name!r}: {type(self).__name__} defines "
                f"{' and '.join(hooks) or 'no decision hook'}; define exactly one of decide(ctx) "
                "(per symbol), rebalance(ctx) (per clock step) or target(bars) (vectorised)"
            )
        self._hook = hooks[0]
        self._has_when = type(self).decide_when is not Strategy.decide_when
        if self._has_when and self._hook == "target":
            raise StrategyError(
                f"strategy {self.name!r}: decide_when(bars) filters decide/rebalance calls; "
                "target(bars) is already vectorised: drop decide_when"
            )
        lookback = self.lookback()
        if lookback is not None and (not isinstance(lookback, int) or lookback < 1):
            raise StrategyError(
                f"strategy {self.name!r}: lookback() returned {lookback!r}; return a whole number "
                "of bars >= 1 (the current bar included), or None for the whole history"
            )
        self._lookback = lookback
        # with a bounded lookback only its bars and the causality check's are ever read again
        keep = None if lookback is None else lookback - 1 + _CHECK_BARS
        self._histories = [_History(PRICE_COLUMNS, keep) for _ in self.symbols]
        self._ind_names: tuple[str, ...] | None = None
        self._columns: tuple[str, ...] = PRICE_COLUMNS
        if self._bound is not None:
            self._view, self._book = self._bound, None
        else:
            shadow = _ShadowBook(len(self.symbols), self.name)
            self._view = self._book = shadow
        # a view whose ``position`` list is what position_of returns (the simulated broker, the
        # shadow book): index it directly, a C call instead of a Python method per decision
        positions = getattr(self._view, "position", None)
        self._position_of = (
            positions.__getitem__ if isinstance(positions, list) else self._view.position_of
        )
        self._ctx = Context(self)
        self._used = _names_used(type(self))
        self._set_columns(PRICE_COLUMNS)
        self._ready_rows: list[int] = []
        self._events: list[tuple[int, Insight]] = []
        self._ei = 0
        self.on_start()

    def on_chunk(self, chunk: BarChunk) -> None:
        n = len(chunk)
        self._chunk = chunk
        self._sym_list = None  # chunk.sym as a list, built on first use (``_syms``)
        events: list[tuple[int, Insight]] = []
        when: np.ndarray | None = None
        now_cols: dict[str, np.ndarray] = {}
        if n:
            self._bar_index, ready, when, now_cols = self._group_chunk(chunk, events)
        else:
            self._bar_index, ready = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        self._ready_mask = ready
        self._full = {
            c: getattr(chunk, c)
            if c in PRICE_COLUMNS
            else now_cols[c]
            if c in now_cols
            else np.full(n, np.nan)
            for c in self._columns
        }
        events.sort(key=lambda e: e[0])
        self._events, self._ei = events, 0
        if self._hook == "target":  # no per-bar call: the events above are the decisions
            self.active_steps = None
            return
        # decide/rebalance run only on these rows: convert just their values to Python floats
        selected = np.flatnonzero(ready if when is None else ready & when)
        ctx = self._ctx
        eager = self._eager  # the other columns are read from the history on access (Row)
        self._load_now = self._bind([self._full[c][selected].tolist() for c in eager])
        ctx._load_prev = self._bind(self._previous_values(selected, eager))
        self._ready_rows = selected.tolist()
        self._sel_syms = chunk.sym[selected].tolist()
        # selected rows of step k: positions step_lo[k]:step_lo[k + 1] of the lists above
        step_lo = np.searchsorted(selected, chunk.bounds)
        self._step_lo = step_lo.tolist()
        # the engine skips on_step on the steps with no decision row (Strategy protocol hint),
        # unless a subclass overrides on_step itself (it may want every step)
        if type(self).on_step is Strategy.on_step:
            self.active_steps = (step_lo[1:] != step_lo[:-1]).tolist()

    @property
    def _syms(self) -> list[int]:
        """The chunk's symbol index of each row, as a list (for rebalance's per-step reads)."""
        syms = self._sym_list
        if syms is None:
            syms = self._sym_list = self._chunk.sym.tolist()
        return syms

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> list[Insight] | None:
        hook = self._hook
        if hook == "target":
            return self._emit_events(hi)
        a, b = self._step_lo[k], self._step_lo[k + 1]
        if a == b:
            return None
        ctx = self._ctx
        ctx.ts, ctx.snapshot, ctx._lo, ctx._hi = ts, snapshot, lo, hi
        out: list[Insight] = []
        ctx._out = out
        try:
            if hook == "decide":
                decide, position_of = self.decide, self._position_of
                load, now, syms, names = self._load_now, ctx.now, self._sel_syms, self.symbols
                for j in range(a, b):
                    s = syms[j]
                    load(now, j)
                    ctx._r, ctx._s, ctx.position = j, s, position_of(s)
                    ctx.symbol = names[s]
                    decide(ctx)
            else:
                ctx._r, ctx._s, ctx.position, ctx.symbol = a, -1, 0, None
                self.rebalance(ctx)
        except StrategyError:
            raise
        except Exception as exc:
            raise self._raised(exc, hook) from None
        return out or None

    # ---- internals
    def _set_columns(self, names: tuple[str, ...]) -> None:
        # the loader fills only the columns the strategy's code names; the others are read on
        # first access (Row.__getattr__), so a dynamic getattr(ctx.now, name) still works
        self._eager = tuple(n for n in names if n in self._used)
        row_cls = _row_class(names)
        self._ctx.now, self._ctx._prev_row = row_cls(self._ctx, False), row_cls(self._ctx, True)
        self._bind = _loader(self._eager)
        self._load_now = self._bind([[] for _ in self._eager])

    def _group_chunk(
        self, chunk: BarChunk, events: list[tuple[int, Insight]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        """Append the chunk to each symbol's history and compute its indicators; return the
        chunk-wide columns: each row's bar index, ready (past warm-up), decide_when's flag (None
        without decide_when) and the indicator values.

        The chunk is taken in symbol order: a symbol's rows are then one slice, so its history
        grows by slice copies, and the chunk-wide arrays are assembled once for all symbols. A
        rectangular chunk (every clock step holds the same symbols: no bar missing, none late)
        needs no sort: symbol i's rows are i, i + S, i + 2 S, ... (``_rect_width``).
        """
        n = len(chunk)
        names = ("ts", *PRICE_COLUMNS)
        width = _rect_width(chunk) if self._rect_path else 0
        order = np.zeros(0, dtype=np.intp)
        if width:
            syms_of = chunk.sym[:width].tolist()  # the chunk's symbols, in symbol order
            columns = [getattr(chunk, c) for c in names]
            starts = ends = []
        else:
            sym = chunk.sym
            if len(self.symbols) <= 32767:  # a stable argsort of int16 is a radix sort, ~4x faster
                sym = sym.astype(np.int16)
            order = np.argsort(sym, kind="stable")
            by_sym = chunk.sym[order]
            cuts = (np.flatnonzero(by_sym[1:] != by_sym[:-1]) + 1).tolist()
            starts, ends = [0, *cuts], [*cuts, n]
            columns = [getattr(chunk, c)[order] for c in names]
            syms_of = by_sym[starts].tolist()
        tails: dict[str, list[np.ndarray]] = {}
        n_olds: list[int] = []
        ready_from: list[float] = []
        for i, s in enumerate(syms_of):
            rows = slice(i, n, width) if width else slice(starts[i], ends[i])
            src = [col[rows] for col in columns]  # this symbol's bars, oldest first
            h = self._histories[s]
            n_old = h.n
            n_olds.append(n_old)
            h.reserve(len(src[0]))
            hi = n_old + len(src[0])
            p, q = n_old - h.base, hi - h.base  # where bars n_old..hi - 1 go in h.cols
            for c, col in zip(names, src, strict=True):
                h.cols[c][p:q] = col
            h.n = hi
            values, start = self._compute(s, h, n_old)
            assert self._ind_names is not None
            for name, v in values.items():
                new = v[n_old - start :]
                tails.setdefault(name, []).append(new)
                if name not in h.cols:  # __when__ / __target__: for the causality check
                    h.cols[name] = np.full(len(h.cols["ts"]), np.nan)
                h.cols[name][p:q] = new
            if math.isinf(h.ready_from):
                for name in self._ind_names:
                    if name not in h.first_defined:
                        defined = np.flatnonzero(~np.isnan(h.cols[name][p:q]))
                        if len(defined):
                            h.first_defined[name] = n_old + int(defined[0])
                if len(h.first_defined) == len(self._ind_names):
                    h.ready_from = max(h.first_defined.values(), default=0) + 1
            ready_from.append(h.ready_from)
            if self._hook == "target":
                self._target_events(
                    s,
                    h,
                    np.arange(i, n, width) if width else order[rows],
                    tails["__target__"][-1],
                    np.arange(n_old, hi),
                    chunk,
                    events,
                )
        if width:  # row k * width + i is bar n_olds[i] + k of symbol syms_of[i]
            m = n // width
            steps = np.arange(m)[:, None]
            bar_index = (steps + np.asarray(n_olds)).reshape(n)
            # past warm-up from step ready_from - n_old on (int: no float compare of every row)
            first_ready = [
                m if r - k > m else max(0, int(r - k))
                for r, k in zip(ready_from, n_olds, strict=True)
            ]
            ready = (steps >= np.asarray(first_ready)).reshape(n)

            def spread(parts: list[np.ndarray]) -> np.ndarray:
                # symbol-major rows, transposed into row order by one copy
                return np.concatenate(parts).reshape(width, m).T.ravel()

        else:
            counts = np.asarray(ends) - np.asarray(starts)
            first_of = np.repeat(np.asarray(starts), counts)  # sorted position of the 1st row
            bar_sorted = np.arange(n) - first_of + np.repeat(np.asarray(n_olds), counts)
            bar_index = np.empty(n, dtype=np.int64)
            bar_index[order] = bar_sorted
            ready = np.empty(n, dtype=bool)
            ready[order] = bar_sorted >= np.repeat(np.asarray(ready_from), counts)

            def spread(parts: list[np.ndarray]) -> np.ndarray:
                out = np.empty(n)
                out[order] = np.concatenate(parts)
                return out

            # by symbol index: the sorted position and the bar index of its first row here
            self._first_pos = np.zeros(len(self.symbols), dtype=np.intp)
            self._first_pos[syms_of] = starts
            self._first_bar = np.zeros(len(self.symbols), dtype=np.int64)
            self._first_bar[syms_of] = n_olds
        self._width, self._order = width, order
        when = spread(tails["__when__"]) != 0 if "__when__" in tails else None
        now_cols = {name: spread(tails[name]) for name in self._ind_names or ()}
        return bar_index, ready, when, now_cols

    def _previous_values(self, selected: np.ndarray, names: tuple[str, ...]) -> list[list[Any]]:
        """Return, per column of ``names``, its value on the previous bar of each ``selected``
        row's symbol: the symbol's row before in this chunk or, for its first row in the chunk,
        the last bar of its history (NaN when there is none)."""
        if not len(selected) or not names:
            return [[] for _ in names]
        sym, bars = self._chunk.sym[selected], self._bar_index[selected]
        if self._width:  # the row one clock step before (a negative row: not in this chunk)
            prev = selected - self._width
        else:  # the row before in symbol order, when it is the same symbol's
            rank = bars - self._first_bar[sym]  # the row's rank among its symbol's rows
            prev = np.where(rank > 0, self._order[self._first_pos[sym] + rank - 1], -1)
        outside = np.flatnonzero(prev < 0).tolist()
        take = np.maximum(prev, 0) if outside else prev
        firsts = [
            (j, self._histories[s], b - 1)
            for j, s, b in zip(outside, sym[outside].tolist(), bars[outside].tolist(), strict=True)
        ]
        out = []
        for name in names:
            values = self._full[name][take].tolist()
            for j, h, bar in firsts:
                values[j] = h.get(name, bar) if bar >= 0 else np.nan
            out.append(values)
        return out

    def _compute(self, s: int, h: _History, n_old: int) -> tuple[dict[str, np.ndarray], int]:
        """Recompute every indicator over the needed tail; check the already-known overlap."""
        lookback = self._lookback
        start = 0 if lookback is None else max(0, n_old - (lookback - 1) - _CHECK_BARS)
        cols = {c: h.view(c, start, h.n) for c in ("ts", *PRICE_COLUMNS)}
        bars = Bars(self.symbols[s], start, cols)
        bars.new_from = n_old - start  # bars[:new_from] were computed before (bars.known)
        bars.known = _Known(len(bars), h if self._ind_names else None, start, n_old)
        try:
            raw = self.indicators(bars)
        except StrategyError:
            raise
        except Exception as exc:
            raise self._raised(exc, "indicators", s, h.n - 1) from None
        if not isinstance(raw, Mapping):
            raise self._at(
                s,
                h.n - 1,
                f"indicators() returned {type(raw).__name__}",
                "return a dict of name -> array, e.g. {'upper': rolling_max(bars.high, 20)}",
            )
        values = {name: self._as_series(name, v, len(bars), s, h) for name, v in raw.items()}
        self._declare(list(values), s, h)
        if self._hook == "target":
            for name, v in values.items():
                setattr(bars, name, v)
            try:
                tgt = self.target(bars)
            except StrategyError:
                raise
            except Exception as exc:
                raise self._raised(exc, "target", s, h.n - 1) from None
            values["__target__"] = self._as_series("target", tgt, len(bars), s, h)
        if self._has_when:
            for name, v in values.items():
                setattr(bars, name, v)
            try:
                when = self.decide_when(bars)
            except StrategyError:
                raise
            except Exception as exc:
                raise self._raised(exc, "decide_when", s, h.n - 1) from None
            flags = self._as_series("decide_when", when, len(bars), s, h)
            if not (isinstance(when, np.ndarray) and when.dtype == np.bool_):
                flags = np.where(np.isnan(flags), 0.0, flags)  # NaN: not a decision bar
            values["__when__"] = flags
        self._check_overlap(values, start, n_old, s, h)
        return values, start

    def _as_series(self, name: str, v: Any, n: int, s: int, h: _History) -> np.ndarray:
        arr = v.to_numpy() if isinstance(v, pd.Series | pd.DataFrame) else v
        try:
            arr = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError):
            raise self._at(
                s,
                h.n - 1,
                f"indicator {name!r} returned {type(v).__name__}, not numbers",
                "return a numpy array or pandas Series of floats",
            ) from None
        if arr.ndim != 1 or len(arr) != n:
            shape = f"{len(arr)} values" if arr.ndim == 1 else f"an array of shape {arr.shape}"
            raise self._at(
                s,
                h.n - 1,
                f"{'target' if name == 'target' else 'indicator ' + repr(name)} returned "
                f"{shape} for {n} bars",
                "return one value per input bar, NaN where it is not defined yet (e.g. "
                "np.full(len(bars), np.nan) or the api's rolling_*/shift helpers, which pad)",
            )
        return arr

    def _declare(self, names: list[str], s: int, h: _History) -> None:
        if self._ind_names is None:
            for name in names:
                if (
                    not (isinstance(name, str) and name.isidentifier())
                    or keyword.iskeyword(name)
                    or name in PRICE_COLUMNS
                    or name.startswith("_")
                    or name == "ready"
                ):
                    raise self._at(
                        s,
                        h.n - 1,
                        f"indicator name {name!r} is not allowed",
                        "use an identifier that is not open/high/low/close/volume/ready",
                    )
            self._ind_names = tuple(names)
            self._columns = PRICE_COLUMNS + self._ind_names
            for hist in self._histories:
                hist.add_columns(names)
            self._set_columns(self._columns)
        elif tuple(names) != self._ind_names:
            raise self._at(
                s,
                h.n - 1,
                f"indicators() returned {names}, earlier {list(self._ind_names)}",
                "return the same names, in the same order, on every call",
            )

    def _check_overlap(
        self, values: dict[str, np.ndarray], start: int, n_old: int, s: int, h: _History
    ) -> None:
        lookback = self._lookback
        valid_lo = start + (lookback - 1) if lookback is not None and start > 0 else start
        lo = max(valid_lo, n_old - _CHECK_BARS, 0)
        if lo >= n_old:
            return
        assert self._ind_names is not None
        labels = _HOOK_LABELS
        for name in (*self._ind_names, *(n for n in labels if n in values and n in h.cols)):
            old = h.cols[name][lo - h.base : n_old - h.base]
            new = values[name][lo - start : n_old - start]
            if old.tobytes() != new.tobytes() and not np.array_equal(old, new, equal_nan=True):
                j = int(np.flatnonzero(~((old == new) | (np.isnan(old) & np.isnan(new))))[0])
                bar = lo + j
                raise self._at(
                    s,
                    bar,
                    f"{labels.get(name, f'indicator {name!r}')} changed its value from "
                    f"{float(old[j])!r} to {float(new[j])!r} "
                    f"once later bars arrived (lookback()={lookback})",
                    "make it causal (no shift(-n), centred windows or whole-series statistics) and "
                    "exact on a tail (use the api's rolling_* helpers), or return a larger "
                    "lookback() (None = the whole history)",
                )

    def _target_events(
        self,
        s: int,
        h: _History,
        rows: np.ndarray,
        target: np.ndarray,
        bar_index: np.ndarray,
        chunk: BarChunk,
        events: list[tuple[int, Insight]],
    ) -> None:
        target = np.where(bar_index >= h.ready_from, target, np.nan)
        bad = ~np.isnan(target) & ~np.isin(target, (-1.0, 0.0, 1.0))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise self._at(
                s,
                int(bar_index[j]),
                f"target() returned {float(target[j])!r}",
                "return +1 (long), 0 (flat), -1 (short) or NaN (keep) per bar",
            )
        previous = h.target
        for j in np.flatnonzero(~np.isnan(target)).tolist():
            t = float(target[j])
            if t != previous:
                r = int(rows[j])
                view = LONG if t > 0 else SHORT if t < 0 else FLAT
                head = (int(chunk.ts[r]), s, view, "target", float(chunk.close[r]), t, None)
                events.append((r, _new(Insight, head + _MARKET_TAIL)))
                previous = t
        h.target = previous

    def _emit_events(self, hi: int) -> list[Insight] | None:
        events, i = self._events, self._ei
        if i >= len(events) or events[i][0] >= hi:
            return None
        out = []
        while i < len(events) and events[i][0] < hi:
            out.append(events[i][1])
            i += 1
        self._ei = i
        return out

    def _sym_index(self, symbol: str, ctx: Context) -> int:
        s = self._index.get(symbol)
        if s is None:
            close = difflib.get_close_matches(str(symbol), self.symbols, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise self._error(
                ctx,
                f"order or lookup for unknown symbol {symbol!r} (run symbols: "
                f"{', '.join(self.symbols)}).{hint}",
                "use one of the run's symbols, or add it with symbols=[...]",
            )
        return s

    def _close_of(self, s: int, ctx: Context) -> float:
        if s == ctx._s:
            return ctx.now.close
        for r in range(ctx._lo, ctx._hi):
            if self._syms[r] == s:
                return float(self._full["close"][r])
        return 0.0

    def _check_order(
        self,
        ctx: Context,
        what: str,
        quantity: Any,
        order_type: str,
        limit: Any,
        stop: Any,
        tif: str,
        stop_loss: Any,
        take_profit: Any,
    ) -> None:
        def bad(problem: str, fix: str) -> StrategyError:
            return self._error(ctx, f"{what}(): {problem}", fix)

        if quantity is not None and (
            isinstance(quantity, bool) or not isinstance(quantity, int | np.integer) or quantity < 1
        ):
            raise bad(
                f"quantity must be a whole number of units >= 1, was {quantity!r}",
                "e.g. ctx.buy(100), or ctx.buy() to let the sizing policy decide",
            )
        if order_type not in ORDER_TYPES:
            raise bad(
                f"order_type {order_type!r} is not one of {', '.join(ORDER_TYPES)}",
                "pass limit= and/or stop= prices instead of order_type",
            )
        if order_type in ("limit", "stop_limit") and limit is None:
            raise bad(
                f"a {order_type} order needs a limit price",
                f"pass limit=<price>, e.g. {what}(limit=ctx.now.close)",
            )
        if order_type in ("stop", "stop_limit") and stop is None:
            raise bad(
                f"a {order_type} order needs a stop price",
                f"pass stop=<price>, e.g. {what}(stop=ctx.now.high)",
            )
        for label, price in (("limit", limit), ("stop", stop)):
            if price is not None and not (
                isinstance(price, int | float) and math.isfinite(price) and price > 0
            ):
                raise bad(
                    f"{label} price must be a finite number > 0, was {price!r}",
                    f"pass {label}=<price in quote currency>",
                )
        if tif not in TIME_IN_FORCE:
            raise bad(
                f"tif {tif!r} is not one of {', '.join(TIME_IN_FORCE)}",
                "use tif='gtc' or tif='day'",
            )
        for label, frac in (("stop_loss", stop_loss), ("take_profit", take_profit)):
            if frac is not None and not (isinstance(frac, int | float) and 0 < frac < 1):
                raise bad(
                    f"{label} must be a fraction in (0, 1) of the decision close, was {frac!r}",
                    f"e.g. {label}=0.05 for 5 %",
                )

    def _where(self, s: int, bar: int) -> str:
        h = self._histories[s]
        ts = pd.Timestamp(int(h.cols["ts"][bar - h.base]), unit="us", tz="UTC").isoformat()
        return f"at {self.symbols[s]} bar {bar} ({ts})"

    def _at(self, s: int, bar: int, problem: str, fix: str) -> StrategyError:
        return StrategyError(
            f"strategy {self.name!r}: {problem} {self._where(s, bar)}; fix: {fix}."
        )

    def _error(self, ctx: Context, problem: str, fix: str) -> StrategyError:
        if ctx._s >= 0:
            return self._at(ctx._s, ctx.bar_index, problem, fix)
        ts = pd.Timestamp(ctx.ts, unit="us", tz="UTC").isoformat()
        return StrategyError(f"strategy {self.name!r}: {problem} at step {ts}; fix: {fix}.")

    def _raised(
        self, exc: Exception, hook: str, s: int | None = None, bar: int | None = None
    ) -> StrategyError:
        logger.opt(exception=exc).debug("strategy {} raised in {}", self.name, hook)
        problem = f"{hook}() raised {type(exc).__name__}: {exc}"
        fix = f"correct {type(self).__name__}.{hook} (the traceback is in runner.log)"
        if s is not None and bar is not None:
            return self._at(s, bar, problem, fix)
        return self._error(self._ctx, problem, fix)


# --------------------------------------------------------------------------- registration


def register_strategy(kind: str, config_cls: type | None = None) -> Callable[[type], type]:
    """Register a ``Strategy`` subclass as ``strategy=<kind>`` with ``config_cls`` as its schema.

    ``config_cls`` is a dataclass whose fields (each with a default) become the ``strategy.*``
    keys, checked at compose time; its ``__post_init__`` runs before the strategy is built. A
    ``kind`` field is added when the dataclass has none. The schema is stored in Hydra's
    ConfigStore as ``<kind>_schema``, so ``conf/strategy/<kind>.yaml`` starts with
    ``defaults: [<kind>_schema, _self_]``.
    """

    def decorator(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(
                f"@register_strategy({kind!r}) decorates a Strategy subclass, got {cls!r}"
            )
        given = config_cls or getattr(cls, "Config", None) or _Empty
        schema = _schema_with_kind(kind, given)
        cls.name = kind
        cls.Config = schema  # type: ignore[attr-defined]
        if schema is not given:
            # the schema made with a kind field is not a module attribute: name it as the
            # class attribute it is, so pickle finds it by reference (a joblib sweep pickles
            # Hydra's ConfigStore, which holds it, to its workers)
            schema.__qualname__ = f"{cls.__qualname__}.Config"

        def factory(config: Any) -> Strategy:
            return cls(config)

        factory.__name__ = f"make_{kind}"
        factory.__qualname__ = f"make_{kind}"
        factory.__module__ = cls.__module__
        register("strategy", kind, schema)(factory)
        return cls

    return decorator


@dataclasses.dataclass
class _Empty:
    pass


def _schema_with_kind(kind: str, config_cls: type) -> type:
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(
            f"@register_strategy({kind!r}): the config must be a @dataclass, got {config_cls!r}"
        )
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if "kind" in fields:
        if fields["kind"].default != kind:
            raise TypeError(
                f"@register_strategy({kind!r}): {config_cls.__name__}.kind defaults to "
                f"{fields['kind'].default!r}; make it {kind!r} or drop the field"
            )
        return config_cls
    schema = dataclasses.make_dataclass(
        config_cls.__name__, [("kind", str, dataclasses.field(default=kind))], bases=(config_cls,)
    )
    schema.__module__ = config_cls.__module__
    schema.__doc__ = config_cls.__doc__
    return schema
