"""Run one backtest: plan, open the market DB read-only, loop, persist, report.

Exit codes: 0 completed or halted by the kill switch; 2 bad input or configuration (one clear
line, no traceback); 1 the run failed (traceback in runner.log only); 128+N stopped by signal N.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
from loguru import logger
from omegaconf import DictConfig

from components.data.duckdb_client import get_connection, translate_error
from components.errors import UserFacingError
from components.execution.write_buffer import RESULTS_DB, RESULTS_DIR, FlushError, WriteBuffer
from components.market import cache as bar_cache
from components.results import runs
from runner import fast_compose, job_cache, outputs, run_stats, startup
from runner.engine import Engine, LoopResult, StopFlags, freeze_for_sweep
from runner.plan import Plan, build_typed, make_plan, resolved_and_typed
from runner.progress import console_sink, make_progress
from runner.resources import peak_rss_mb

_HANDLERS: dict[str, Any] = {}  # console level and handler ids kept across the jobs of a sweep


def _remember_loguru_lib_dirs() -> None:
    """Let loguru find its "library directories" once per ``sys.path``, not once per handler.

    Every ``logger.add`` builds an exception formatter that asks ``sysconfig`` for the paths of
    every install scheme (~12 ms); a run adds two handlers. The answer depends on ``sys.path``
    only, so it is kept per ``sys.path``. Skipped where loguru's internals differ.
    """
    try:
        from loguru import _better_exceptions
    except ImportError:
        return
    formatter = getattr(_better_exceptions, "ExceptionFormatter", None)
    original = getattr(formatter, "_get_lib_dirs", None)
    if original is None or getattr(original, "remembered", False):
        return
    known: dict[tuple[str, ...], list[str]] = {}

    def lib_dirs() -> list[str]:
        key = tuple(sys.path)
        if key not in known:
            known[key] = original()
        return list(known[key])

    lib_dirs.remembered = True  # type: ignore[attr-defined]
    formatter._get_lib_dirs = staticmethod(lib_dirs)  # type: ignore[union-attr]


def configure_logging(run_dir: Path, level: str, *, keep_console: bool = False) -> Path:
    """Console: concise; runner.log in the run dir: everything (STYLE P9).

    ``keep_console`` (multirun jobs in one process): keep the handlers of the previous job and
    point the file handler at this job's runner.log; adding loguru handlers costs ~5 ms a job.
    """
    log_path = run_dir / "runner.log"
    logger.level(level.upper())  # an unknown level fails here, before the old handlers are gone
    try:  # a disk too full for the log is one line and exit 2, not a loguru error block per record
        handle = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - the job log keeps it open
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} | runner.log of {run_dir}\n")
        handle.flush()
    except OSError as exc:
        raise RunDirWriteError(_write_error_message(log_path, exc)) from None
    job_log = _HANDLERS.get("job_log")
    if keep_console and _HANDLERS.get("level") == level and job_log is not None:
        if job_log.handler_id in logger._core.handlers:  # type: ignore[attr-defined]
            job_log.switch(handle)
            return log_path
        _HANDLERS.clear()  # someone reset loguru in between: set up both again
    if not keep_console:
        handle.close()
    logger.remove()
    _remember_loguru_lib_dirs()
    console = logger.add(
        console_sink, level=level, format="{time:HH:mm:ss} | {level: <7} | {message}"
    )  # tqdm-safe
    _HANDLERS.clear()
    _HANDLERS.update(level=level, console=console)
    if keep_console:
        job_log = _JobLog(handle)
        job_log.handler_id = logger.add(
            job_log.write, level="DEBUG", backtrace=True, diagnose=False, enqueue=False
        )
        _HANDLERS["job_log"] = job_log
    else:
        _HANDLERS["file"] = _add_file_handler(log_path)
    return log_path


class _JobLog:
    """The runner.log sink of multirun jobs: one loguru handler, pointed at each job's file.

    Same records and text as a file handler (loguru formats a callable sink's messages with the
    same default format, uncoloured); each message is flushed, so a job killed halfway keeps its
    log up to the last record.
    """

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.handler_id = -1

    def switch(self, handle: Any) -> None:
        old, self.handle = self.handle, handle
        old.close()

    def write(self, message: str) -> None:
        self.handle.write(message)
        self.handle.flush()


class RunDirWriteError(UserFacingError, OSError):
    """The run directory cannot be written (full disk, file-size limit, read-only file system)."""


def _write_error_message(path: Path, exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    return (
        f"could not write {path}: {reason}; free space on that disk (or raise the file-size limit), or "
        "put the run elsewhere with hydra.run.dir=<dir on another disk>, then run again."
    )


_DISK_FULL = ("No space left", "File too large", "Disk quota", "Read-only file system")


REPORTING = runs.REPORTING  # runs.status while the report files are written; then the outcome


def _add_file_handler(log_path: Path) -> int:
    return logger.add(log_path, level="DEBUG", backtrace=True, diagnose=False, enqueue=False)


def resolved_yaml(cfg: DictConfig) -> str:
    """Return the resolved config as sorted YAML (logged once, hashed into ``config_hash``)."""
    return fast_compose.to_yaml(cfg, resolve=True, sort_keys=True)


def config_hash(resolved: dict[str, Any]) -> str:
    """Return the hash of the resolved config (sorted JSON: ~10x cheaper than its YAML)."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_backtest(
    cfg: DictConfig,
    run_dir: Path,
    *,
    quiet: bool = False,
    engine_hook: Any = None,
    shared: bool = False,
    resolved: dict[str, Any] | None = None,
) -> int:
    """Run the backtest described by ``cfg`` into ``run_dir``; return the process exit code.

    ``shared`` (multirun jobs): reuse this process's market DB connection, plan and bars from
    earlier jobs of the sweep (``runner.job_cache``), keep the console log handler, and skip
    ``equity.png`` / ``report.html`` unless ``run.plot=true`` / ``run.html=true`` was asked.
    """
    resolved, configs = resolved_and_typed(cfg, resolved)
    for name in (RESULTS_DB, RESULTS_DIR):
        results_path = run_dir / name
        if results_path.exists():  # before runner.log: an earlier run's log is not appended to
            raise UserFacingError(
                f"{results_path} already exists; a run dir is never reused. Choose a new "
                "hydra.run.dir."
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirWriteError(_write_error_message(run_dir, exc)) from None
    log_path = configure_logging(run_dir, configs_level(cfg), keep_console=shared)
    logger.debug("run dir {} (config {})", run_dir, run_dir / ".hydra" / "config.yaml")
    if shared:  # a sweep job's config is in .hydra/config.yaml and sweep_job.json already
        logger.debug("resolved config: {}", json.dumps(resolved, sort_keys=True, default=str))
    else:
        logger.debug("resolved config:\n{}", resolved_yaml(cfg))
    db_path = configs["db"].path
    con = job_cache.market_connection(db_path) if shared else get_connection(db_path)
    try:
        plan = make_plan(con, cfg, configs, cache=_plan_cache(db_path) if shared else None)
        plan.config_hash = config_hash(resolved)
        startup.pause("plan")
        if cfg.run.dry_run:
            logger.debug(plan.describe())
            print(f"dry run OK: {plan.describe()}")
            return 0
        logger.info(plan.describe())
        logger.info(
            "run dir {} (to halt: touch {} or kill -USR1 {})",
            run_dir,
            run_dir / cfg.run.halt_file,
            os.getpid(),
        )
        return _execute(
            cfg, run_dir, con, plan, log_path, quiet=quiet, engine_hook=engine_hook, shared=shared
        )
    except (
        duckdb.Error
    ) as exc:  # a market DB that opens but fails on read (truncated, checksum): exit 2, one line
        translated = translate_error(exc, Path(configs["db"].path))
        if translated is None:
            raise
        logger.opt(exception=exc).debug("market DB error")
        raise translated from None
    finally:
        if not shared:
            con.close()


def _plan_cache(db_path: str) -> Any:
    """Return the plan cache of this process for ``db_path`` (keyed by the file's identity)."""
    identity = job_cache.db_identity(db_path)
    return lambda request, make: job_cache.cached_plan((identity, *request), make)


def configs_level(cfg: DictConfig) -> str:
    return str(cfg.run.log_level).upper()


def _execute(
    cfg: DictConfig,
    run_dir: Path,
    con: Any,
    plan: Plan,
    log_path: Path,
    *,
    quiet: bool,
    engine_hook: Any,
    shared: bool = False,
) -> int:
    configs = plan.configs
    market = build_typed("market", configs)
    if shared and getattr(configs["market"], "cache", False):
        market = bar_cache.cached(market, _bars_key(plan))
    analytics = build_typed("analytics", configs)
    strategy = build_typed("strategy", configs)
    execution = build_typed("execution", configs)
    buffer: WriteBuffer = build_typed("buffer", configs)
    if shared:  # results/*.parquet, or a results.duckdb attached to this process's DuckDB
        buffer = job_cache.sweep_buffer(buffer)
    broker = build_typed("broker", configs)  # a factory: the engine builds it per universe
    sizing = build_typed("sizing", configs)
    orders = build_typed("orders", configs)
    # buffer=memory stores no equity rows; a multirun job does not read back what it wrote
    kept_equity = run_stats.keep_equity_in_memory(buffer, always=shared)
    market.open(con, plan.universe)
    if getattr(strategy, "uses_analytics", True):  # else the engine never asks for a snapshot
        analytics.open(con, plan.universe.end_us)
    flags = StopFlags()
    flags.install()  # from here SIGINT/SIGTERM stop at the first bar and SIGUSR1 halts there
    flags.halt_reason = flags.halt_reason or startup.take_pending_halt()
    try:
        return _run_loop(
            cfg,
            run_dir,
            plan,
            log_path,
            flags,
            (
                market,
                analytics,
                strategy,
                execution,
                buffer,
                broker,
                sizing,
                orders,
                con,
                kept_equity,
            ),
            quiet=quiet,
            engine_hook=engine_hook,
            shared=shared,
        )
    finally:
        flags.uninstall()  # restore the caller's SIGINT/SIGTERM/SIGUSR1 handlers (in-process runs, tests)


def _open_results(buffer: WriteBuffer, results_path: Path) -> None:
    """Create results.duckdb (or the results/ dir); a disk too full to start is one line, exit 2."""
    try:
        buffer.open(results_path)
    except (OSError, duckdb.Error) as exc:
        if isinstance(exc, UserFacingError) or not any(t in str(exc) for t in _DISK_FULL):
            raise
        buffer.close()
        raise RunDirWriteError(_write_error_message(results_path, exc)) from None


def _run_loop(
    cfg: DictConfig,
    run_dir: Path,
    plan: Plan,
    log_path: Path,
    flags: StopFlags,
    parts: tuple[Any, ...],
    *,
    quiet: bool,
    engine_hook: Any,
    shared: bool = False,
) -> int:
    market, analytics, strategy, execution, buffer, broker, sizing, orders, con, kept_equity = parts
    configs = plan.configs
    run_id = run_dir.name
    _open_results(buffer, run_dir / buffer.results_name)
    # a multirun job's results take its ``runs`` row with their first commit: usually the one
    # at the end of the run, which then holds every row and the 'reporting' status (one
    # transaction instead of four; a job killed before it leaves no rows)
    run_row = (
        run_id,
        plan.config_hash,
        str(Path(configs["db"].path).resolve()),
        plan.market_db_version,
    )
    started_us = time.time_ns() // 1000
    buffer.record_run_start(run_row, started_us)
    progress = make_progress(
        cfg.run.progress,
        plan.n_bars,
        quiet=quiet,
        execution=execution,
        metrics_every_s=cfg.run.metrics_every_s,
        total_steps=plan.universe.n_steps or 0,
    )
    engine = Engine(
        universe=plan.universe,
        market=market,
        analytics=analytics,
        strategy=strategy,
        execution=execution,
        buffer=buffer,
        broker=broker,
        sizing=sizing,
        orders=orders,
        flags=flags,
        halt_file=run_dir / cfg.run.halt_file,
        progress=progress.update,
        day_tz=configs["execution"].kill_switch.day_tz,
        before_step=engine_hook,
    )
    if shared:  # one freeze for the sweep's jobs, not one per loop (runner.engine.freeze_for_sweep)
        freeze_for_sweep()
    # The loop's queries (pages of bars, snapshots) are small and run on the loop's thread: DuckDB's
    # worker pool only took cores from the loop and the results writer (the 1M-bar headline's
    # loop: 1.25 -> 1.14 s with this and the writer's connection on one thread, 2 cores)
    con.execute("SET threads = 1")
    started = time.perf_counter()
    try:
        result = engine.run()
        # the last rows, then the loop's end in the runs row: status 'reporting'
        buffer.end_loop(run_row, started_us, REPORTING, result.digest, result.stopped_at_us)
    except BaseException as exc:  # flush what we have synchronously, mark the run failed, re-raise
        progress.close()
        _fail(buffer, run_id, engine, exc)
        raise
    # runs.status stays 'reporting' until every output file is in place (issue 14, item 4): a run
    # killed while writing its report is never mistaken for a finished one
    progress.writing_report()
    startup.pause("report")
    summary = _write_outputs(
        cfg,
        run_dir,
        plan,
        engine,
        buffer,
        result,
        time.perf_counter() - started,
        market_con=con,
        kept_equity=kept_equity,
        shared=shared,
    )
    buffer.record_status(run_id, result.status)  # every output file is in place
    progress.close()
    buffer.close()
    _print_summary(summary, run_dir, log_path, buffer.results_name)
    if result.status == "interrupted" and flags.stop_signal is not None:
        return 128 + int(flags.stop_signal)
    return 0


def _bars_key(plan: Plan) -> tuple[Any, ...]:
    """Return the bar-cache key: DB file and version, universe, and the provider's config."""
    market = dict(vars(plan.configs["market"]))
    market.pop("cache", None)
    u = plan.universe
    return (
        job_cache.db_identity(plan.configs["db"].path),
        plan.market_db_version,
        u.symbols,
        u.start_us,
        u.end_us,
        tuple(sorted((k, repr(v)) for k, v in market.items())),
    )


def want_plot(plot: bool | None, *, multirun: bool) -> bool:
    """Return whether to write an optional output (``run.plot``, ``run.html``, ``run.extras``):
    the setting when given, else only outside multirun jobs."""
    return (not multirun) if plot is None else bool(plot)


def _fail(buffer: WriteBuffer, run_id: str, engine: Engine, exc: BaseException) -> None:
    logger.opt(exception=exc).debug("run failed")
    try:
        buffer.flush_after_failure()
    except FlushError as flush_exc:  # the CLI prints a FlushError itself: log it once, not twice
        (logger.debug if isinstance(exc, FlushError) else logger.error)("{}", flush_exc)
    try:
        buffer.record_failure(run_id, engine.last_ts, exc)
    except Exception as update_exc:  # never hide the original error
        logger.debug("could not mark the run failed: {}", update_exc)
    buffer.close()


def _write_outputs(
    cfg: DictConfig,
    run_dir: Path,
    plan: Plan,
    engine: Engine,
    buffer: WriteBuffer,
    result: LoopResult,
    wall: float,
    *,
    market_con: Any = None,
    kept_equity: list | None = None,
    shared: bool = False,
) -> dict[str, Any]:
    result.metrics["peak_rss_mb"] = (
        peak_rss_mb()
    )  # process high-water mark (the sweep report resets it per job)
    trades = engine.broker.closed
    cash = plan.configs["broker"].cash
    equity = run_stats.equity_frame(buffer, kept_equity or [])
    max_dd = run_stats.max_drawdown_pct(equity["equity"])
    wins = sum(1 for t in trades if t.pnl > 0)
    summary: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": result.status,
        "n_trades": result.n_trades,
        "total_pnl": sum(t.pnl for t in trades),
        "total_fees": result.total_fees,
        "total_borrow": result.borrow_paid,
        "final_equity": result.final_equity,
        "initial_cash": cash,
        "return_pct": (result.final_equity / cash - 1) * 100,
        "max_drawdown_pct": max_dd,
        "win_rate_pct": (wins / len(trades) * 100) if trades else 0.0,
        "open_positions": outputs.open_positions_json(result.open_positions),
        "unfilled_orders": result.unfilled_orders,
        "digest": result.digest,
        "record_counts": result.record_counts,
        "kill_switch": result.kill_switch,
        "stopped_at": outputs.iso(result.stopped_at_us),
        "strategy": plan.configs["strategy"].kind,
        "symbols": list(plan.universe.symbols),
        "market_db": str(Path(plan.configs["db"].path).resolve()),
        "market_db_version": plan.market_db_version,
        "config_hash": plan.config_hash,
        "metrics": result.metrics,
    }
    # costs reported by bench/bench_stats.py: the statistics, and the closes the plots draw
    started = time.perf_counter()
    plot, html, text_files = (
        want_plot(v, multirun=shared) for v in (cfg.run.plot, cfg.run.html, cfg.run.extras)
    )
    extras = _plot_inputs(plot or html, plan, engine, equity, market_con, cash)
    stats_started = time.perf_counter()
    _stats_into(summary, plan, engine, equity, market_con, extras, shared=shared)
    run_stats.write_equity_daily(run_dir / "equity_daily.csv", equity)
    summary["metrics"]["stats_seconds"] = round(time.perf_counter() - stats_started, 4)
    summary["metrics"]["plot_data_seconds"] = round(stats_started - started, 4)
    outputs.write_trades_csv(run_dir / "trades.csv", trades)
    if text_files:  # each file created costs ~0.2 ms on ext4: a sweep job skips these two
        outputs.write_json(run_dir / "metrics.json", result.metrics, fsync=not shared)
    has_plot = False
    reader = buffer.reader() if (plot or html) and len(equity) else None
    if plot and len(equity):
        events = outputs.kill_switch_events(reader)
        has_plot = outputs.plot_equity(
            run_dir / "equity.png", equity.frame(), trades, summary, events, extras.get("buy_hold")
        )
    if html and len(equity):
        from runner import report_html

        html_started = time.perf_counter()
        events = outputs.kill_switch_events(reader)
        report_html.write_report(
            run_dir / "report.html", summary, equity.frame(), trades, events, extras
        )
        summary["metrics"]["html_seconds"] = round(time.perf_counter() - html_started, 4)
    if reader is not None and reader is not buffer.con:
        reader.close()  # a view of the Parquet results opened for the plots
    if text_files:
        outputs.atomic_write(
            run_dir / "summary.md",
            outputs.summary_markdown(summary, trades, has_plot, buffer.results_name),
            fsync=not shared,
        )
    outputs.write_json(run_dir / "summary.json", summary, fsync=not shared)
    return summary


def _plot_inputs(
    draw: bool, plan: Plan, engine: Engine, equity: Any, market_con: Any, cash: float
) -> dict[str, Any]:
    """Return what equity.png and report.html draw besides equity: closes, buy & hold curve."""
    warmup = run_stats.warmup_bars(engine.strategy)
    if market_con is None or not len(equity) or not draw:
        return {"warmup": warmup}
    closes = run_stats.read_closes(market_con, plan.universe, int(equity["ts"][-1]))
    return {
        "warmup": warmup,
        "closes": closes,
        "anchors": run_stats.buy_hold_anchors(closes, warmup),
        "buy_hold": run_stats.buy_hold_curve(closes, equity["ts"], cash, warmup),
    }


def _stats_into(
    summary: dict[str, Any],
    plan: Plan,
    engine: Engine,
    equity: Any,
    market_con: Any,
    extras: dict[str, Any],
    *,
    shared: bool = False,
) -> None:
    """Put ``stats`` (components.results.stats) into ``summary``.

    ``shared`` (multirun jobs): the universe's closes up to the last bar are read once per
    process (DB version, universe, last bar) and each job takes its anchors from them at its own
    warm-up (``buy_hold_anchors``, what the plots use); a grid over the slow average has as many
    warm-ups as values, and the anchors query cost ~3 ms each. A single run asks the DB for the
    two closes per symbol instead of holding every close.
    """
    anchors = extras.get("anchors")
    if anchors is None and market_con is not None and len(equity):
        last_us = int(equity["ts"][-1])
        warmup = extras["warmup"]
        if shared:
            closes = job_cache.cached_plan(
                (*_bars_key(plan), "closes", last_us),
                lambda: run_stats.read_closes(market_con, plan.universe, last_us),
            )
            anchors = run_stats.buy_hold_anchors(closes, warmup)
        else:
            anchors = run_stats.anchors_from_db(market_con, plan.universe, last_us, warmup)
    summary["stats"] = run_stats.run_stats(
        equity,
        engine.broker.closed,
        anchors or {},
        cash=summary["initial_cash"],
        open_positions=summary["open_positions"],
        total_fees=summary.get("total_fees"),
    )


def _print_summary(
    summary: dict[str, Any], run_dir: Path, log_path: Path, results: str = "results.duckdb"
) -> None:
    m, ks = summary["metrics"], summary["kill_switch"]
    state = ks["state"] + (f" ({ks['code']}: {ks['reason']})" if ks["code"] else "")
    stopped = f" - stopped at {summary['stopped_at']}" if summary["status"] == "interrupted" else ""
    logger.info(
        "{} {}: {} trades, pnl {:,.2f}, final equity {:,.2f}, {}, {} open position(s), "
        "kill switch {}, {:,.0f} bars/s{}",
        summary["status"],
        summary["strategy"],
        summary["n_trades"],
        summary["total_pnl"],
        summary["final_equity"],
        outputs.headline(summary.get("stats") or {}),
        len(summary["open_positions"]),
        state,
        m["bars_per_second"],
        stopped,
    )
    report = run_dir / "summary.md"
    logger.info(
        "report {} | equity.png | trades.csv | {} in {}",
        report if report.exists() else run_dir / "summary.json",  # run.extras=false: no .md
        results,
        run_dir,
    )
