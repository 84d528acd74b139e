"""Kill switch: a latching state machine that stops every further signal from reaching execution.

States: ``active`` (trading), ``reduce_only`` (only position-reducing orders pass) and ``halted``.
A breached threshold or ``activate(reason)`` moves it out of ``active``; only ``reset(reason)``
brings it back. Every denial carries a reason code, the observed value and the limit; every state
change is recorded as an event (the audit trail).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

US_PER_DAY = 86_400_000_000


class KillState(str, Enum):
    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"


@dataclass
class KillSwitchConfig:
    max_daily_trades: int | None = None  # orders per trading day; the (N+1)-th is denied and halts
    day_tz: str = "UTC"  # IANA zone whose midnight starts a trading day
    max_daily_loss_usd: float | None = None  # halt when equity falls this far below the day's start
    max_drawdown_pct: float | None = None  # halt when equity falls this fraction below its peak (0-1)
    max_orders_per_window: int | None = None  # orders allowed in any rolling window of window_minutes
    window_minutes: float = 60.0  # length of that rolling window, in minutes
    max_position_per_symbol: int | None = None  # units; an order that would exceed it is denied
    on_breach: str = "halt"  # halt | reduce_only (then only position-reducing orders pass)

    def __post_init__(self) -> None:
        for key in ("max_daily_trades", "max_daily_loss_usd", "max_orders_per_window", "max_position_per_symbol"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ValueError(
                    f"execution.kill_switch.{key} must be >= 0 or null (off), was {value}; "
                    f"e.g. execution.kill_switch.{key}=10"
                )
        if self.max_drawdown_pct is not None and not 0.0 < self.max_drawdown_pct < 1.0:
            raise ValueError(
                f"execution.kill_switch.max_drawdown_pct must be a fraction in (0, 1), was "
                f"{self.max_drawdown_pct}; write 0.2 for 20%"
            )
        if self.window_minutes <= 0:
            raise ValueError(
                f"execution.kill_switch.window_minutes must be > 0, was {self.window_minutes}; try 60"
            )
        if self.on_breach not in ("halt", "reduce_only"):
            raise ValueError(
                f"execution.kill_switch.on_breach must be halt or reduce_only, was {self.on_breach!r}"
            )
        try:
            ZoneInfo(self.day_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"execution.kill_switch.day_tz must be an IANA time zone, was {self.day_tz!r}; "
                "e.g. UTC or America/New_York"
            ) from None


Denial = tuple[str, float | None, float | None]  # (code, observed, limit)
EventSink = Callable[[tuple], None]


class TradingDay:
    """Map epoch microseconds to a trading-day number in a time zone (cached per UTC day)."""

    def __init__(self, tz: str) -> None:
        self._utc = tz in ("UTC", "Etc/UTC")
        self._zone = ZoneInfo(tz)

    def __call__(self, ts_us: int) -> int:
        if self._utc:
            return ts_us // US_PER_DAY
        local = dt.datetime.fromtimestamp(ts_us / 1e6, tz=self._zone)
        return local.date().toordinal()


class KillSwitch:
    """Check orders against the thresholds; latch once tripped."""

    def __init__(self, config: KillSwitchConfig, sink: EventSink | None = None) -> None:
        self.config = config
        self.state = KillState.ACTIVE
        self.reason = ""
        self.code = ""
        self._sink = sink
        self._day_of = TradingDay(config.day_tz)
        self._day: int | None = None
        self._day_orders = 0
        self._day_start_equity: float | None = None
        self._peak = float("-inf")
        self._window: deque[int] = deque()
        self._pending_manual: str | None = None

    # -- state changes -------------------------------------------------------------------------
    def _move(self, to: KillState, ts: int, code: str, reason: str, observed: float | None,
              limit: float | None, actor: str) -> None:
        if to == self.state:
            return
        before, self.state = self.state, to
        self.code, self.reason = code, reason
        if self._sink is not None:
            wall = int(dt.datetime.now(dt.UTC).timestamp() * 1e6)
            self._sink((ts, wall, before.value, to.value, code, reason, observed, limit, actor))

    def _trip(self, ts: int, code: str, reason: str, observed: float, limit: float) -> None:
        target = KillState.REDUCE_ONLY if self.config.on_breach == "reduce_only" else KillState.HALTED
        if self.state != KillState.HALTED:
            self._move(target, ts, code, reason, observed, limit, "threshold")

    def activate(self, reason: str, ts: int, actor: str = "user") -> None:
        """Halt now (manual kill switch); latches until ``reset``."""
        self._move(KillState.HALTED, ts, "MANUAL", reason, None, None, actor)

    def reset(self, reason: str, ts: int, actor: str = "user") -> None:
        """Return to ``active``; the only way out of a tripped state. Requires a reason."""
        if not reason.strip():
            raise ValueError("kill switch reset needs a reason, e.g. reset('limits reviewed by ops')")
        self._move(KillState.ACTIVE, ts, "RESET", reason, None, None, actor)

    @property
    def halted(self) -> bool:
        return self.state != KillState.ACTIVE

    # -- checks ----------------------------------------------------------------------------------
    def on_equity(self, ts: int, equity: float) -> None:
        """Track peak and day-start equity; trip on drawdown or daily loss."""
        cfg = self.config
        self._roll_day(ts, equity)
        if equity > self._peak:
            self._peak = equity
        if self.state == KillState.HALTED:
            return
        if cfg.max_drawdown_pct is not None and self._peak > 0:
            drawdown = 1.0 - equity / self._peak
            if drawdown > cfg.max_drawdown_pct:
                self._trip(ts, "MAX_DRAWDOWN", f"drawdown {drawdown:.4f} from peak {self._peak:.2f}",
                           drawdown, cfg.max_drawdown_pct)
        if cfg.max_daily_loss_usd is not None and self._day_start_equity is not None:
            loss = self._day_start_equity - equity
            if loss > cfg.max_daily_loss_usd:
                self._trip(ts, "MAX_DAILY_LOSS", f"daily loss {loss:.2f}", loss, cfg.max_daily_loss_usd)

    def _roll_day(self, ts: int, equity: float | None = None) -> None:
        day = self._day_of(ts)
        if day != self._day:
            self._day, self._day_orders = day, 0
            self._day_start_equity = equity

    def check(self, ts: int, side: str, quantity: int, position: int) -> Denial | None:
        """Return a denial for this order, or None when it may go to the broker (and count it)."""
        cfg = self.config
        self._roll_day(ts, self._day_start_equity)
        reduces = side == "sell" and position > 0 and quantity <= position
        if self.state == KillState.HALTED:
            return ("HALTED", None, None)
        if self.state == KillState.REDUCE_ONLY and not reduces:
            return ("REDUCE_ONLY", float(position), None)
        if cfg.max_position_per_symbol is not None and side == "buy":
            after = position + quantity
            if after > cfg.max_position_per_symbol:
                return ("MAX_POSITION", float(after), float(cfg.max_position_per_symbol))
        if cfg.max_daily_trades is not None and self._day_orders >= cfg.max_daily_trades:
            observed = float(self._day_orders + 1)
            self._trip(ts, "MAX_DAILY_TRADES", f"order {self._day_orders + 1} of the trading day",
                       observed, float(cfg.max_daily_trades))
            return ("MAX_DAILY_TRADES", observed, float(cfg.max_daily_trades))
        if cfg.max_orders_per_window is not None:
            horizon = ts - int(cfg.window_minutes * 60_000_000)
            while self._window and self._window[0] <= horizon:
                self._window.popleft()
            if len(self._window) >= cfg.max_orders_per_window:
                observed = float(len(self._window) + 1)
                self._trip(ts, "MAX_ORDER_RATE", f"{observed:.0f} orders within {cfg.window_minutes} min",
                           observed, float(cfg.max_orders_per_window))
                return ("MAX_ORDER_RATE", observed, float(cfg.max_orders_per_window))
        self._day_orders += 1
        self._window.append(ts)
        return None
