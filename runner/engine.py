"""The backtest loop: one clock across symbols, single-threaded and causal (DESIGN section 5).

Per clock step: (1) fill orders decided earlier at this bar's open, (2) mark positions to the
close, (3) read the as-of analytics snapshot, (4) let the strategy emit insights, (5) size them into
signals, (6) route each signal through the ExecutionHandler (kill switch), (7) record everything
in the WriteBuffer.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.execution.broker import Broker
from components.execution.handler import ExecutionHandler
from components.execution.kill_switch import US_PER_DAY, KillState
from components.execution.orders import OrdersConfig
from components.execution.write_buffer import WriteBuffer
from components.market.base import MarketProvider, Universe
from components.strategies.base import Strategy
from runner import startup


class CausalityError(RuntimeError):
    """A provider served a clock step out of order: a bug in the provider, never user input."""


@dataclass
class StopFlags:
    """Set from signal handlers and the halt file; read by the loop once per clock step."""

    stop_signal: int | None = None  # SIGTERM / SIGINT: stop at the next bar, flush, exit
    halt_reason: str | None = None  # SIGUSR1 / halt file: activate the kill switch
    _previous: dict[int, Any] = field(default_factory=dict, repr=False)

    def install(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            self.stop_signal = signum

        def halt(signum: int, _frame: Any) -> None:
            self.halt_reason = f"signal {signal.Signals(signum).name}"

        handlers = [(signal.SIGINT, stop), (signal.SIGUSR1, halt)]
        if not startup.sigterm_kills():  # a joblib pool worker: SIGTERM ends it (runner.startup)
            handlers.insert(0, (signal.SIGTERM, stop))
        for signum, handler in handlers:
            self._previous[signum] = signal.signal(signum, handler)

    def uninstall(self) -> None:
        """Restore the handlers ``install`` replaced (in-process runs must not keep ours)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


@dataclass
class LoopResult:
    status: str  # completed | halted | interrupted
    stopped_at_us: int | None
    metrics: dict[str, Any]
    open_positions: list[dict[str, Any]]
    final_equity: float
    realized_pnl: float
    n_trades: int
    unfilled_orders: int
    kill_switch: dict[str, Any]
    digest: str
    total_fees: float = 0.0  # commissions of closed trades (both legs)
    borrow_paid: float = 0.0  # borrow charged on shorts, quote currency
    record_counts: dict[str, int] = field(default_factory=dict)


class Engine:
    """Wire providers, strategy, execution, broker and buffer, then run the clock."""

    def __init__(
        self,
        *,
        universe: Universe,
        market: MarketProvider,
        analytics: Any,
        strategy: Strategy,
        execution: ExecutionHandler,
        buffer: WriteBuffer,
        broker: Callable[..., Broker],
        sizing: Any = None,
        orders: OrdersConfig | None = None,
        flags: StopFlags | None = None,
        halt_file: Path | None = None,
        progress: Callable[[int, int, str], None] | None = None,
        day_tz: str = "UTC",
        before_step: Callable[[Engine, int, int], None] | None = None,
    ) -> None:
        self.universe, self.market, self.analytics = universe, market, analytics
        self.strategy, self.execution, self.buffer = strategy, execution, buffer
        self.flags = flags or StopFlags()
        self.halt_file = halt_file
        self.progress = progress
        self.day_tz = day_tz
        self.before_step = before_step  # test hook: called with (engine, step, ts) before each step
        self._seq = itertools.count(1).__next__
        # the registry built the broker's factory; only the engine knows the universe and sinks
        self.broker = broker(universe.symbols, buffer.add, self._seq)
        execution.bind(
            self.broker,
            buffer.add,
            self._seq,
            universe.symbols,
            sizing=sizing,
            orders=orders,
            strategy_name=strategy.name,
        )
        self.last_ts: int | None = None

    def _check_halt_file(self, ts: int) -> None:
        if self.halt_file is not None and self.halt_file.exists():
            reason = (
                self.halt_file.read_text(errors="replace").strip()
                or f"halt file {self.halt_file.name}"
            )
            self.execution.activate_kill_switch(reason, ts, actor="halt_file")
            self.halt_file = None

    def run(self) -> LoopResult:
        """Run every clock step; return the outcome. Exceptions propagate after the caller flushes."""
        with _loop_gc():
            return self._run()

    def _run(self) -> LoopResult:
        strategy, analytics, execution, broker, buffer = (
            self.strategy,
            self.analytics,
            self.execution,
            self.broker,
            self.buffer,
        )
        ks = execution.kill_switch
        assert ks is not None
        metrics = execution.metrics
        flags = self.flags
        if hasattr(strategy, "bind"):
            strategy.bind(broker)  # the strategy reads the broker through BrokerView only
        strategy.start(self.universe.symbols)
        # no analytics query for a strategy that never reads snapshots (issue 14, item 19)
        snapshot_at = analytics.at if getattr(strategy, "uses_analytics", True) else None
        on_insights = execution.on_insights
        on_equity = ks.on_equity if ks.watches_equity else None
        borrow = broker.borrow_rate > 0
        pending, bracketed, last_close = broker.pending, broker.bracketed, broker.last_close
        n_symbols = len(self.universe.symbols)
        status = "completed"
        step = 0
        days: set[Any] = set()
        previous_ts = -(2**63)
        for chunk in self.market.chunks():
            if int(chunk.step_ts[0]) <= previous_ts:
                raise CausalityError(
                    f"market provider {type(self.market).__name__} served ts {chunk.step_ts[0]} after "
                    f"{previous_ts}: clock steps must strictly increase across chunks"
                )
            previous_ts = int(chunk.step_ts[-1])
            strategy.on_chunk(chunk)
            # steps where the strategy says it has nothing to decide (Strategy.on_step's hint)
            active = getattr(strategy, "active_steps", None) if snapshot_at is None else None
            bars = _ChunkLists(chunk)
            # read per step (a float per close as it is marked): a list of the chunk's closes
            # was 10k floats allocated at once, and cost more than the reads
            closes, syms = memoryview(chunk.close), bars.syms
            bounds, stamps = chunk.bounds.tolist(), chunk.step_ts.tolist()
            # a step holding every symbol in symbol order marks the closes with one slice
            whole = n_symbols if _steps_in_symbol_order(chunk) else -1
            days.update(_trading_days(chunk.step_ts, self.day_tz))
            self._check_halt_file(stamps[0])
            # the chunk's equity rows, by column: one extend of the buffer when the chunk ends
            # (a row tuple and a buffer call per step cost ~0.6 us; two appends ~0.06 us)
            cash_column: list[float] = []
            equity_column: list[float] = []
            cash_of, equity_of = cash_column.append, equity_column.append
            try:
                for k, ts in enumerate(stamps):
                    if flags.stop_signal is not None:
                        status = "interrupted"
                        break
                    if flags.halt_reason is not None:
                        execution.activate_kill_switch(flags.halt_reason, ts, actor="signal")
                        flags.halt_reason = None
                    # the halt file is checked every 256 steps, besides at each chunk start
                    if not step & 255 and self.halt_file is not None:
                        self._check_halt_file(ts)
                    if self.before_step is not None:
                        self.before_step(self, step, ts)
                    lo, hi = bounds[k], bounds[k + 1]
                    # (1) fills at this bar's open, (2) brackets and working orders within the bar
                    if pending or bracketed:
                        if pending and ks.halted:
                            execution.cancel_blocked_orders(ts)  # halted before this open
                        broker.on_step(ts, range(lo, hi), bars)
                    # (3) mark to the close
                    if hi - lo == whole:
                        last_close[:] = closes[lo:hi].tolist()
                    else:
                        for r in range(lo, hi):
                            last_close[syms[r]] = closes[r]
                    if borrow and broker.shorts:
                        broker.charge_borrow(ts)
                    equity = broker.equity()
                    cash_of(broker.cash)
                    equity_of(equity)
                    if on_equity is not None:
                        on_equity(ts, equity)
                    # (4) snapshot and insights; (5) sizing and (6) the kill switch, in the handler
                    if active is None or active[k]:
                        insights = strategy.on_step(
                            k, lo, hi, ts, snapshot_at(ts) if snapshot_at is not None else None
                        )
                        if insights:
                            on_insights(ts, insights)
                    if pending and ks.halted:
                        execution.cancel_blocked_orders(ts)
                    step += 1
                    self.last_ts = ts
            except BaseException:
                # the steps marked before the error: kept for the caller's failure path, which
                # flushes (or, when the disk refused a batch, keeps) every pending row
                buffer.queue("equity", _equity_rows(stamps, cash_column, equity_column))
                raise
            buffer.add_many("equity", _equity_rows(stamps, cash_column, equity_column))
            metrics.bars += len(chunk) if status == "completed" else bounds[k]
            metrics.steps = step
            if self.progress is not None:
                self.progress(step, metrics.bars, ks.state.value)
            if status != "completed":
                break
        if status == "completed" and ks.state != KillState.ACTIVE:
            status = "halted"
        metrics.trading_days = len(days)
        metrics.fills, metrics.rejections = broker.fills, broker.rejections
        metrics.market_queries = self.market.queries
        metrics.analytics_queries = analytics.queries
        metrics.cache_hits, metrics.cache_misses = analytics.hits, analytics.misses
        buffer.flush()  # the digest covers every emitted row, so fold in (and persist) the last batch
        metrics.finish()
        return LoopResult(
            status=status,
            stopped_at_us=self.last_ts,
            metrics=metrics.as_dict(),
            open_positions=broker.open_positions(),
            final_equity=broker.equity(),
            realized_pnl=broker.realized_pnl,
            n_trades=broker.trades,
            unfilled_orders=sum(len(v) for v in broker.pending.values()),
            total_fees=sum(t.fees for t in broker.closed),
            borrow_paid=broker.borrow_paid,
            kill_switch=ks.describe(),
            digest=buffer.digest.hexdigest(),
            record_counts=dict(buffer.digest.counts),
        )


GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections inside the loop (default 700)
_SWEEP_FREEZE: list[bool] = []  # [True] while ``freeze_for_sweep`` holds the freeze


def freeze_for_sweep() -> None:
    """Freeze this process's objects once for a whole in-process sweep (``unfreeze_after_sweep``).

    ``_loop_gc`` used to freeze and unfreeze around every job's loop. ``gc.freeze`` moves every
    tracked object, the previous jobs' cyclic garbage included, into the permanent generation,
    ``gc.unfreeze`` puts it back into the oldest one, and in between no collection can free it;
    the young generations' counters also start again at every freeze. Over a sweep of short jobs
    the full collections that would free the leftovers of earlier jobs (numpy buffers held by
    reference cycles of the statistics and reporting code) hardly ever ran: 1 in 200 jobs, and
    the per-job peak RSS grew by ~0.34 MB a job (69 MB over 200 jobs, ~300 MB over 1,000). A
    sweep's jobs now freeze what exists before the first job's loop (modules, Hydra, the caches
    and the first job's objects) once and keep it frozen until the sweep ends, so each later
    job's garbage stays in the collected generations.
    """
    if not _SWEEP_FREEZE:
        gc.freeze()
        _SWEEP_FREEZE.append(True)


def unfreeze_after_sweep() -> None:
    """Undo ``freeze_for_sweep`` (``runner.job_cache.release``: the sweep ended, or a test)."""
    if _SWEEP_FREEZE:
        _SWEEP_FREEZE.clear()
        gc.unfreeze()


@contextlib.contextmanager
def _loop_gc() -> Iterator[None]:
    """Collect less often inside the loop; leave the collector as it was afterwards.

    The loop allocates hundreds of thousands of small containers (records, orders, lots) that
    hold no reference cycles, and the buffer's pending lists and the closed-trade list are young
    and large, so CPython's default young-generation threshold (700) ran ~500 collections and
    5 full ones per 1M bars, ~0.9 s of a 6.5 s loop. Objects from before the loop (configs,
    modules, caches) are frozen out of every collection for its duration; both settings are
    restored at the end, so an in-process sweep's next job starts from the same state. Cyclic
    garbage is still collected, only later: no effect on results (the digests say so). In a
    sweep (``freeze_for_sweep``) the freeze is the sweep's, taken once: only the threshold is
    set here.
    """
    thresholds = gc.get_threshold()
    own_freeze = not _SWEEP_FREEZE and not gc.get_freeze_count()
    if not _SWEEP_FREEZE:
        gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if own_freeze:
            gc.unfreeze()


def _equity_rows(stamps: list[int], cash: list[float], equity: list[float]) -> list[tuple]:
    """Return the equity rows (ts, cash, equity) of the steps marked so far in a chunk."""
    return list(zip(stamps[: len(equity)], cash, equity, strict=True))


class _ChunkLists:
    """The chunk's columns for the broker, indexed by row.

    ``syms`` is a list; high, low and volume become lists on first use only (the broker needs
    them for working orders and brackets). ``opens`` is a memoryview of the chunk's float64
    array: the broker reads the open of a row only when the symbol has working orders, and a
    read builds that one float (the same value ``tolist`` gives) instead of a float per bar.
    """

    def __init__(self, chunk: Any) -> None:
        self._chunk = chunk
        self.syms = chunk.sym.tolist()
        self.opens = memoryview(chunk.open)

    def __getattr__(self, name: str) -> list[Any]:
        column = {"highs": "high", "lows": "low", "volumes": "volume"}.get(name)
        if column is None:
            raise AttributeError(name)
        values = getattr(self._chunk, column).tolist()
        setattr(self, name, values)
        return values


def _steps_in_symbol_order(chunk: Any) -> bool:
    """Return True when the rows of every clock step have strictly increasing symbol codes."""
    same_step = np.diff(chunk.ts) == 0
    return bool(np.all(np.diff(chunk.sym)[same_step] > 0))


_DAYS: dict[tuple[str, bytes], frozenset[Any]] = {}  # the jobs of a sweep share their clock


def _trading_days(step_ts: np.ndarray, tz: str) -> frozenset[Any]:
    """Return the trading days (local calendar days of ``tz``) the clock steps fall on.

    Remembered for the last few clocks (~0.4 ms a chunk of 2,000 steps in a local time zone):
    every job of a sweep over one universe and window walks the same steps.
    """
    if not len(step_ts):
        return frozenset()
    key = (tz, np.ascontiguousarray(step_ts).tobytes())
    days = _DAYS.get(key)
    if days is None:
        if tz in ("UTC", "Etc/UTC"):
            days = frozenset(np.unique(step_ts // US_PER_DAY).tolist())
        else:
            stamps = pd.to_datetime(step_ts, unit="us", utc=True).tz_convert(tz)
            days = frozenset(stamps.normalize().unique().tolist())
        if len(_DAYS) >= 64:
            _DAYS.clear()
        _DAYS[key] = days
    return days
