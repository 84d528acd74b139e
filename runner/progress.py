"""What a run shows while it works: a progress bar on a terminal and metrics lines in runner.log.

- The bar (tqdm) appears only on an interactive terminal (stderr is a TTY), outside multirun jobs,
  and only once the run has lasted ``BAR_DELAY_S`` seconds, so short runs stay one clean summary.
  After the last bar it says ``writing report`` until the report files are in place.
  It shows bars done / total, bars/s, the ETA and the kill-switch state. ``run.progress=on|off``
  forces it either way.
- Every ``run.metrics_every_s`` seconds of wall time, and once at the end, a ``metrics:`` line goes
  to the log at DEBUG (runner.log always; the console only with ``run.log_level=DEBUG``): clock
  steps, bars, bars/s, ETA, signals, fills, denials and the kill-switch state.
- ``console_sink`` is the loguru console sink: it writes through tqdm, so a log line printed
  while the bar is visible never tears it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

BAR_DELAY_S = 0.5  # a run shorter than this never shows a bar
BAR_FORMAT = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} bars [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def console_sink(message: Any) -> None:
    """Write one formatted log record to stderr without breaking a visible progress bar."""
    from tqdm import tqdm

    tqdm.write(str(message), file=sys.stderr, end="")


def show_bar(mode: str, *, quiet: bool) -> bool:
    """Return True when the bar should be drawn: ``on``, or ``auto`` on a terminal outside multirun."""
    if mode == "on":
        return True
    if mode != "auto" or quiet:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _NoBar:
    def update(self, bars: int, state: str) -> None:
        return None

    def writing_report(self) -> None:
        return None

    def close(self) -> None:
        return None


class _Bar:
    """A tqdm bar counted in bars (not clock steps: a step can hold one bar or many).

    The tqdm bar is created only once ``delay`` seconds have passed (tqdm's own ``delay`` still
    draws an empty bar whenever a log line is written during the delay).
    """

    def __init__(
        self,
        total_bars: int,
        *,
        file: Any = None,
        delay: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total, self._file, self._clock = total_bars, file, clock
        self._show_at = clock() + (BAR_DELAY_S if delay is None else delay)
        self._bar: Any = None
        self._state = ""
        self._desc = "backtest "

    def _shown(self, bars: int) -> Any:
        """Return the tqdm bar, creating it at ``bars`` once the delay is over; None before."""
        if self._bar is None and self._clock() >= self._show_at:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self._total,
                initial=bars,
                unit=" bars",
                unit_scale=True,
                dynamic_ncols=True,
                file=self._file or sys.stderr,
                leave=False,
                mininterval=0.5,
                desc=self._desc,
                bar_format=BAR_FORMAT,
                postfix=state_text(self._state) if self._state else None,
            )
        return self._bar

    def update(self, bars: int, state: str) -> None:
        changed, self._state = state != self._state, state
        bar = self._shown(bars)
        if bar is None:
            return
        if changed:
            bar.set_postfix_str(state_text(state), refresh=False)
        bar.update(bars - bar.n)
        if changed:
            bar.refresh()  # a trip shows at once, not at the next mininterval

    def writing_report(self) -> None:
        """Say what the pause after the last bar is (plot, CSV, summary files)."""
        self._desc = "writing report "
        bar = self._shown(self._total)
        if bar is None:  # a short run: no bar, and none now
            return
        bar.set_description_str(self._desc, refresh=False)
        bar.update(self._total - bar.n)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def state_text(state: str) -> str:
    """Return the bar's kill-switch label: ``kill switch active`` or ``kill switch HALTED``."""
    return f"kill switch {state if state == 'active' else state.upper()}"


class RunMonitor:
    """Progress sink the engine calls after each chunk: drives the bar and the metrics lines.

    ``execution`` is the run's ExecutionHandler; its counters (signals, denials) and its bound
    broker (fills) are read only when a metrics line is due, so ``update`` stays cheap even when
    the engine calls it on every clock step (``market=direct``).
    """

    def __init__(
        self,
        bar: _Bar | _NoBar,
        *,
        total_bars: int,
        total_steps: int,
        execution: Any = None,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bar = bar
        self.total_bars, self.total_steps = total_bars, total_steps
        self.execution = execution
        self.every_s = every_s
        self._clock = clock
        self._started = clock()
        self._next_line = self._started + every_s if every_s > 0 else float("inf")
        self._last = (0, 0, "active")

    def update(self, steps: int, bars: int, state: str) -> None:
        """Record progress: ``steps`` clock steps and ``bars`` bars done, kill switch in ``state``."""
        self._last = (steps, bars, state)
        self.bar.update(bars, state)
        now = self._clock()
        if now >= self._next_line:
            self._next_line = now + self.every_s
            logger.debug(self.metrics_line(now))

    def metrics_line(self, now: float | None = None) -> str:
        """Return the ``metrics:`` line for the progress recorded so far."""
        steps, bars, state = self._last
        elapsed = max((self._clock() if now is None else now) - self._started, 1e-9)
        rate = bars / elapsed
        eta = (self.total_bars - bars) / rate if rate > 0 else float("nan")
        signals, denied, fills = self._counters()
        pct = 100.0 * bars / self.total_bars if self.total_bars else 100.0
        return (
            f"metrics: steps {steps:,}/{self.total_steps:,}, bars {bars:,}/{self.total_bars:,} ({pct:.1f} %), "
            f"{rate:,.0f} bars/s, elapsed {_clock_text(elapsed)}, ETA {_clock_text(eta)}, "
            f"signals {signals:,}, denied {denied:,}, fills {fills:,}, kill switch {state}"
        )

    def _counters(self) -> tuple[int, int, int]:
        metrics = getattr(self.execution, "metrics", None)
        broker = getattr(self.execution, "broker", None)
        signals = int(getattr(metrics, "signals_received", 0))
        denied = sum(getattr(metrics, "denied_by_reason", {}).values())
        return signals, int(denied), int(getattr(broker, "fills", 0))

    def writing_report(self) -> None:
        """The loop is over: show "writing report" until ``close``."""
        self.bar.writing_report()

    def close(self) -> None:
        """Remove the bar and log the final metrics line."""
        self.bar.close()
        logger.debug(self.metrics_line().replace("metrics:", "metrics at end:", 1))


def _clock_text(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # NaN or no rate yet
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def make_progress(
    mode: str,
    total_bars: int,
    *,
    quiet: bool,
    execution: Any = None,
    metrics_every_s: float = 5.0,
    total_steps: int = 0,
) -> RunMonitor:
    """Return the run's progress sink: a bar when ``show_bar`` says so, metrics lines always."""
    bar: _Bar | _NoBar = _Bar(total_bars) if show_bar(mode, quiet=quiet) else _NoBar()
    return RunMonitor(
        bar,
        total_bars=total_bars,
        total_steps=total_steps,
        execution=execution,
        every_s=metrics_every_s,
    )
