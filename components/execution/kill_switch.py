"""Kill switch: a latching state machine that stops every further signal from reaching execution.

States: ``active`` (trading), ``reduce_only`` (only position-reducing orders pass) and ``halted``.
A breached threshold or ``activate(reason)`` moves it out of ``active``; only ``reset(reason)``
brings it back. Every denial carries a reason code, the observed value and the limit; every state
change is recorded as an event (the audit trail, table ``kill_switch_events``).

Thresholds trip when the observed value goes *above* the limit: with ``max_daily_trades=N`` the
(N+1)-th order of a trading day is denied and trips, exactly N pass. The order that trips a
threshold is always denied; ``on_breach`` decides the state it leaves behind.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

US_PER_DAY = 86_400_000_000
US_PER_MINUTE = 60_000_000

# Reason codes (denials and events). Denials of a threshold use the threshold's code.
MAX_DAILY_TRADES = "MAX_DAILY_TRADES"
MAX_DAILY_LOSS = "MAX_DAILY_LOSS"
MAX_DRAWDOWN = "MAX_DRAWDOWN"
MAX_ORDER_RATE = "MAX_ORDER_RATE"
MAX_POSITION = "MAX_POSITION"
MANUAL = "MANUAL"
RESET = "RESET"
HALTED_CODE = "HALTED"
REDUCE_ONLY_CODE = "REDUCE_ONLY"
CANCELLED_BY_HALT = "CANCELLED_BY_HALT"
CANCELLED_BY_REDUCE_ONLY = "CANCELLED_BY_REDUCE_ONLY"

ON_BREACH = ("halt", "reduce_only", "flatten")


class KillState(StrEnum):
    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"


@dataclass
class KillSwitchConfig:
    max_daily_trades: int | None = None  # orders per trading day; the (N+1)-th is denied and trips
    day_tz: str = "UTC"  # IANA zone whose local midnight starts a trading day
    max_daily_loss_usd: float | None = (
        None  # trip when equity falls more than this below the day's start
    )
    max_drawdown_pct: float | None = (
        None  # trip when equity falls more than this fraction below its peak
    )
    max_orders_per_window: int | None = (
        None  # orders allowed in any rolling window of window_minutes
    )
    window_minutes: float = 60.0  # length of that rolling window, in minutes
    max_position_per_symbol: int | None = (
        None  # units; a buy that would hold more is denied and trips
    )
    # halt | reduce_only (then only position-reducing orders pass, brackets keep working) |
    # flatten (close every open position at the next open, then halted)
    on_breach: str = "halt"

    def __post_init__(self) -> None:
        for key in (
            "max_daily_trades",
            "max_daily_loss_usd",
            "max_orders_per_window",
            "max_position_per_symbol",
        ):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"execution.kill_switch.{key} must be a finite number >= 0 or null (off), was {value}; "
                    f"e.g. execution.kill_switch.{key}=10"
                )
        if self.max_drawdown_pct is not None and not 0.0 < self.max_drawdown_pct < 1.0:
            raise ValueError(
                f"execution.kill_switch.max_drawdown_pct must be a fraction in (0, 1), was "
                f"{self.max_drawdown_pct}; write 0.2 for 20%"
            )
        if not (math.isfinite(self.window_minutes) and self.window_minutes > 0):
            raise ValueError(
                f"execution.kill_switch.window_minutes must be > 0, was {self.window_minutes}; "
                "e.g. execution.kill_switch.window_minutes=60"
            )
        if self.on_breach not in ON_BREACH:
            raise ValueError(
                f"execution.kill_switch.on_breach must be one of {', '.join(ON_BREACH)}, was "
                f"{self.on_breach!r}; e.g. execution.kill_switch.on_breach=reduce_only"
            )
        try:
            ZoneInfo(self.day_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"execution.kill_switch.day_tz must be an IANA time zone, was {self.day_tz!r}; "
                "e.g. execution.kill_switch.day_tz=America/New_York (or UTC)"
            ) from None


Denial = tuple[str, float | None, float | None]  # (code, observed, limit)
EventSink = Callable[
    [tuple], None
]  # receives (ts, wall_time, from, to, code, reason, observed, limit, actor)


class TradingDay:
    """Map epoch microseconds to a trading-day number: local calendar days of ``tz``.

    The bounds of the last day seen are cached, so a call inside that day costs two compares;
    the day's length comes from the zone (23 h and 25 h on DST change days).
    """

    def __init__(self, tz: str) -> None:
        self._utc = tz in ("UTC", "Etc/UTC")
        self._zone = ZoneInfo(tz)
        self._start = self._end = 0
        self._day = 0

    def __call__(self, ts_us: int) -> int:
        if self._utc:
            return ts_us // US_PER_DAY
        if self._start <= ts_us < self._end:
            return self._day
        return self._locate(ts_us)

    def _locate(self, ts_us: int) -> int:
        local = dt.datetime.fromtimestamp(ts_us / 1e6, tz=self._zone)
        day = local.date()
        start = _local_midnight_us(day, self._zone)
        end = _local_midnight_us(day + dt.timedelta(days=1), self._zone)
        if start <= ts_us < end:  # zones whose midnight does not exist on some days are not cached
            self._start, self._end, self._day = start, end, day.toordinal()
        return day.toordinal()

    def bounds(self, ts_us: int) -> tuple[int, int]:
        """Return [start, end) of the trading day holding ``ts_us``, in epoch microseconds."""
        if self._utc:
            start = ts_us // US_PER_DAY * US_PER_DAY
            return start, start + US_PER_DAY
        self(ts_us)
        return self._start, self._end


def _local_midnight_us(day: dt.date, zone: ZoneInfo) -> int:
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    return round(midnight.timestamp() * 1_000_000)


class KillSwitch:
    """Check orders against the thresholds; latch once tripped; record every state change."""

    def __init__(self, config: KillSwitchConfig, sink: EventSink | None = None) -> None:
        self.config = config
        self.state = KillState.ACTIVE
        # True unless trading is fully allowed (``reduce_only`` counts as halted for new risk);
        # an attribute ``_move`` keeps current: the loop reads it per step, and an enum member
        # read (``KillState.ACTIVE``) costs ~60 ns
        self.halted = False
        self.code = ""
        self.reason = ""
        self.observed: float | None = None
        self.limit: float | None = None
        self.mode: str | None = None  # what stopped trading: halt | reduce_only | flatten
        self.n_events = 0
        self._sink = sink
        self._day_of = TradingDay(config.day_tz)
        self._order_day: int | None = None
        self._day_orders = 0
        self._window: deque[int] = deque()
        self._window_us = round(config.window_minutes * US_PER_MINUTE)
        self._trip_to = (
            KillState.REDUCE_ONLY if config.on_breach == "reduce_only" else KillState.HALTED
        )
        # False when no threshold reads equity: ``on_equity`` then does nothing (the engine
        # skips the call)
        self.watches_equity = (
            config.max_drawdown_pct is not None or config.max_daily_loss_usd is not None
        )
        # False when ``check`` ignores its ``position`` argument (active, no position limit): the
        # handler then need not add up the symbol's working orders; ``_move`` keeps it current
        self._limits_position = config.max_position_per_symbol is not None
        self.reads_position = self._limits_position
        # no order-count or position limit: an order while active only counts towards its day
        self._counts_only = (
            config.max_position_per_symbol is None
            and config.max_daily_trades is None
            and config.max_orders_per_window is None
        )
        self._utc_days = config.day_tz in ("UTC", "Etc/UTC")  # TradingDay's integer rule
        self._equity_day: int | None = None
        self._day_start_equity: float | None = None
        self._last_equity: float | None = None
        self._peak = -math.inf

    # -- state changes -------------------------------------------------------------------------
    def _move(
        self,
        to: KillState,
        ts: int,
        code: str,
        reason: str,
        observed: float | None,
        limit: float | None,
        actor: str,
    ) -> None:
        if to == self.state:
            return
        before, self.state = self.state, to
        self.halted = to != KillState.ACTIVE
        self.reads_position = self.halted or self._limits_position
        self.code, self.reason, self.observed, self.limit = code, reason, observed, limit
        self.n_events += 1
        if self._sink is not None:
            wall = int(dt.datetime.now(dt.UTC).timestamp() * 1e6)
            self._sink((ts, wall, before.value, to.value, code, reason, observed, limit, actor))

    def _trip(self, ts: int, code: str, reason: str, observed: float, limit: float) -> None:
        """Leave ``active`` after a breach; a breach never lifts ``halted`` back to ``reduce_only``."""
        if self.state == KillState.ACTIVE:
            self.mode = self.config.on_breach
            self._move(self._trip_to, ts, code, reason, observed, limit, "threshold")

    def activate(self, reason: str, ts: int, actor: str = "user") -> None:
        """Halt now (manual kill switch); latches until ``reset``."""
        if self.state != KillState.HALTED:
            self.mode = "halt"
        self._move(KillState.HALTED, ts, MANUAL, reason.strip() or "manual halt", None, None, actor)

    def reset(self, reason: str, ts: int, actor: str = "user") -> None:
        """Return to ``active``, the only way out of a tripped state; ``reason`` is required.

        A reset re-arms every threshold from the current observations, so it does not trip again
        on the breach it clears: the day's order count and the rolling window restart, and the
        peak and day-start equity become the last equity seen.
        """
        if not reason.strip():
            raise ValueError(
                "kill switch reset needs a reason, e.g. reset('limits reviewed by ops', ts)"
            )
        if self.state == KillState.ACTIVE:
            return
        self._day_orders = 0
        self._window.clear()
        if self._last_equity is not None:
            self._peak = self._day_start_equity = self._last_equity
        self.mode = None
        self._move(KillState.ACTIVE, ts, RESET, reason.strip(), None, None, actor)

    def describe(self) -> dict[str, Any]:
        """Return the state for summary.json: state, mode, code, reason, observed, limit, events.

        ``mode`` says what stopped trading (``halt``, ``reduce_only`` or ``flatten``; null while
        active).
        """
        return {
            "state": self.state.value,
            "mode": self.mode,
            "code": self.code,
            "reason": self.reason,
            "observed": self.observed,
            "limit": self.limit,
            "events": self.n_events,
        }

    # -- checks ----------------------------------------------------------------------------------
    def on_equity(self, ts: int, equity: float) -> None:
        """Track peak and day-start equity (once per clock step); trip on drawdown or daily loss."""
        if not self.watches_equity:
            return
        day = self._day_of(ts)
        if day != self._equity_day:  # the day starts from the last mark of the previous day
            self._equity_day = day
            self._day_start_equity = equity if self._last_equity is None else self._last_equity
        self._last_equity = equity
        if equity > self._peak:
            self._peak = equity
        if self.state != KillState.ACTIVE:
            return
        cfg = self.config
        if cfg.max_drawdown_pct is not None and self._peak > 0:
            drawdown = 1.0 - equity / self._peak
            if drawdown > cfg.max_drawdown_pct:
                self._trip(
                    ts,
                    MAX_DRAWDOWN,
                    f"equity {equity:.2f} is {drawdown:.2%} below its peak "
                    f"{self._peak:.2f} (limit {cfg.max_drawdown_pct:.2%})",
                    drawdown,
                    cfg.max_drawdown_pct,
                )
                return
        if cfg.max_daily_loss_usd is not None and self._day_start_equity is not None:
            loss = self._day_start_equity - equity
            if loss > cfg.max_daily_loss_usd:
                self._trip(
                    ts,
                    MAX_DAILY_LOSS,
                    f"lost {loss:.2f} since the trading day started at "
                    f"{self._day_start_equity:.2f} (limit {cfg.max_daily_loss_usd:.2f})",
                    loss,
                    float(cfg.max_daily_loss_usd),
                )

    def check(self, ts: int, side: str, quantity: int, position: int) -> Denial | None:
        """Return a denial for this order, or None when it may go to the broker (then count it).

        ``position`` is the symbol's signed position including orders not yet filled.
        """
        day = ts // US_PER_DAY if self._utc_days else self._day_of(ts)
        if day != self._order_day:
            self._order_day, self._day_orders = day, 0
        if self._counts_only and not self.halted:
            self._day_orders += 1  # what _check_limits does when no limit is set
            return None
        state = self.state
        if state == KillState.HALTED:
            return (HALTED_CODE, None, None)
        if state == KillState.REDUCE_ONLY:
            if reduces(side, quantity, position):
                return None  # the breach already happened; de-risking is never throttled
            return (
                REDUCE_ONLY_CODE,
                float(abs(_after(side, quantity, position))),
                float(abs(position)),
            )
        return self._check_limits(ts, side, quantity, position)

    def _check_limits(self, ts: int, side: str, quantity: int, position: int) -> Denial | None:
        cfg = self.config
        if cfg.max_position_per_symbol is not None:
            after = abs(_after(side, quantity, position))
            if after > cfg.max_position_per_symbol and after > abs(position):
                return self._deny_and_trip(
                    ts,
                    MAX_POSITION,
                    f"order would hold {after} units of one symbol",
                    after,
                    cfg.max_position_per_symbol,
                )
        if cfg.max_daily_trades is not None and self._day_orders >= cfg.max_daily_trades:
            n = self._day_orders + 1
            return self._deny_and_trip(
                ts, MAX_DAILY_TRADES, f"order {n} of the trading day", n, cfg.max_daily_trades
            )
        if cfg.max_orders_per_window is not None:
            horizon = ts - self._window_us
            window = self._window
            while window and window[0] <= horizon:
                window.popleft()
            if len(window) >= cfg.max_orders_per_window:
                n = len(window) + 1
                return self._deny_and_trip(
                    ts,
                    MAX_ORDER_RATE,
                    f"order {n} within {cfg.window_minutes:g} min",
                    n,
                    cfg.max_orders_per_window,
                )
            window.append(ts)
        self._day_orders += 1
        return None

    def _deny_and_trip(
        self, ts: int, code: str, reason: str, observed: float, limit: float
    ) -> Denial:
        self._trip(ts, code, reason, float(observed), float(limit))
        return (code, float(observed), float(limit))

    def blocks(self, side: str, quantity: int, position: int) -> bool:
        """Return True when an order already at the broker must be cancelled in the current state."""
        if self.state == KillState.HALTED:
            return True
        return self.state == KillState.REDUCE_ONLY and not reduces(side, quantity, position)


def reduces(side: str, quantity: int, position: int) -> bool:
    """Return True when the order shrinks the position towards flat without crossing it."""
    if side == "sell":
        return position > 0 and quantity <= position
    return position < 0 and quantity <= -position


def _after(side: str, quantity: int, position: int) -> int:
    return position + quantity if side == "buy" else position - quantity
