"""Run one backtest: plan, open the market DB read-only, loop, persist, report.

Exit codes: 0 completed or halted by the kill switch; 2 bad input or configuration (one clear
line, no traceback); 1 the run failed (traceback in runner.log only); 128+N stopped by signal N.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import duckdb
from loguru import logger
from omegaconf import DictConfig, OmegaConf

from components.data.duckdb_client import get_connection, translate_error
from components.errors import UserFacingError
from components.execution.write_buffer import FlushError, WriteBuffer
from components.registry import build
from runner import outputs, run_stats
from runner.engine import Engine, LoopResult, StopFlags
from runner.plan import Plan, make_plan, typed_configs
from runner.progress import console_sink, make_progress
from runner.resources import peak_rss_mb


def configure_logging(run_dir: Path, level: str) -> Path:
    """Console: concise; runner.log in the run dir: everything (STYLE P9)."""
    log_path = run_dir / "runner.log"
    logger.remove()
    logger.add(
        console_sink, level=level, format="{time:HH:mm:ss} | {level: <7} | {message}"
    )  # tqdm-safe
    logger.add(log_path, level="DEBUG", backtrace=True, diagnose=False, enqueue=False)
    return log_path


def config_hash(cfg: DictConfig) -> str:
    return hashlib.sha256(
        OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True).encode()
    ).hexdigest()[:16]


def run_backtest(
    cfg: DictConfig, run_dir: Path, *, quiet: bool = False, engine_hook: Any = None
) -> int:
    """Run the backtest described by ``cfg`` into ``run_dir``; return the process exit code."""
    run_dir.mkdir(parents=True, exist_ok=True)
    configs = typed_configs(cfg)
    log_path = configure_logging(run_dir, configs_level(cfg))
    logger.debug("run dir {} (config {})", run_dir, run_dir / ".hydra" / "config.yaml")
    logger.debug("resolved config:\n{}", OmegaConf.to_yaml(cfg, resolve=True))
    con = get_connection(configs["db"].path, read_only=True)
    try:
        plan = make_plan(con, cfg, configs)
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
        return _execute(cfg, run_dir, con, plan, log_path, quiet=quiet, engine_hook=engine_hook)
    except (
        duckdb.Error
    ) as exc:  # a market DB that opens but fails on read (truncated): exit 2, one line
        translated = _market_db_error(exc, Path(configs["db"].path))
        if translated is None:
            raise
        logger.opt(exception=exc).debug("market DB error")
        raise translated from None
    finally:
        con.close()


def _market_db_error(exc: duckdb.Error, db_path: Path) -> UserFacingError | None:
    """Return the user-facing error for a DuckDB failure that names the market DB file, else None."""
    return translate_error(exc, db_path) if str(db_path) in str(exc) else None


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
) -> int:
    configs = plan.configs
    market = build("market", cfg.market)
    analytics = build("analytics", cfg.analytics)
    strategy = build("strategy", cfg.strategy)
    execution = build("execution", cfg.execution)
    buffer: WriteBuffer = build("buffer", cfg.buffer)
    kept_equity = run_stats.keep_equity_in_memory(buffer)  # buffer=memory stores no equity rows
    market.open(con, plan.universe)
    analytics.open(con, plan.universe.end_us)
    run_id = run_dir.name
    results_path = run_dir / "results.duckdb"
    if results_path.exists():
        raise UserFacingError(
            f"{results_path} already exists; a run dir is never reused. Choose a new hydra.run.dir."
        )
    buffer.open(results_path)
    if buffer.persistent:
        buffer.con.execute(
            "INSERT INTO runs VALUES (?, 'running', now(), NULL, ?, ?, ?, NULL, NULL, NULL)",
            [
                run_id,
                config_hash(cfg),
                str(Path(configs["db"].path).resolve()),
                plan.market_db_version,
            ],
        )
    flags = StopFlags()
    flags.install()
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
        broker_config=configs["broker"],
        flags=flags,
        halt_file=run_dir / cfg.run.halt_file,
        progress=progress.update,
        day_tz=configs["execution"].kill_switch.day_tz,
        before_step=engine_hook,
    )
    started = time.perf_counter()
    try:
        result = engine.run()
        buffer.flush()
    except BaseException as exc:  # flush what we have synchronously, mark the run failed, re-raise
        progress.close()
        _fail(buffer, run_id, engine, exc)
        flags.uninstall()
        raise
    progress.close()
    _finish_runs_row(buffer, run_id, result)
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
    )
    buffer.close()
    _print_summary(summary, run_dir, log_path)
    flags.uninstall()  # restore the caller's SIGINT/SIGTERM/SIGUSR1 handlers (in-process runs, tests)
    if result.status == "interrupted" and flags.stop_signal is not None:
        return 128 + int(flags.stop_signal)
    return 0


def _fail(buffer: WriteBuffer, run_id: str, engine: Engine, exc: BaseException) -> None:
    logger.opt(exception=exc).debug("run failed")
    try:
        buffer.flush()
    except FlushError as flush_exc:  # the CLI prints a FlushError itself: log it once, not twice
        (logger.debug if isinstance(exc, FlushError) else logger.error)("{}", flush_exc)
    if buffer.persistent and buffer.con is not None:
        try:
            buffer.con.execute(
                "UPDATE runs SET status = 'failed', ended_at = now(), stopped_at_ts = make_timestamptz(?::BIGINT), "
                "message = ? WHERE run_id = ?",
                [engine.last_ts, f"{type(exc).__name__}: {exc}"[:500], run_id],
            )
        except Exception as update_exc:  # never hide the original error
            logger.debug("could not mark the run failed: {}", update_exc)
    buffer.close()


def _finish_runs_row(buffer: WriteBuffer, run_id: str, result: LoopResult) -> None:
    if buffer.persistent and buffer.con is not None:
        buffer.con.execute(
            "UPDATE runs SET status = ?, ended_at = now(), digest = ?, stopped_at_ts = make_timestamptz(?::BIGINT) "
            "WHERE run_id = ?",
            [result.status, result.digest, result.stopped_at_us, run_id],
        )


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
) -> dict[str, Any]:
    result.metrics["peak_rss_mb"] = (
        peak_rss_mb()
    )  # process high-water mark (the sweep report resets it per job)
    trades = engine.broker.closed
    cash = plan.configs["broker"].cash
    equity = run_stats.equity_frame(buffer, kept_equity or [])
    max_dd = (
        float((1 - equity["equity"] / equity["equity"].cummax()).max() * 100)
        if len(equity)
        else 0.0
    )
    wins = sum(1 for t in trades if t[7] > 0)
    summary: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": result.status,
        "n_trades": result.n_trades,
        "total_pnl": sum(t[7] for t in trades),
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
        "config_hash": config_hash(cfg),
        "metrics": result.metrics,
    }
    # costs reported by bench/bench_stats.py: the statistics, and the closes the plots draw
    started = time.perf_counter()
    extras = _plot_inputs(cfg, plan, engine, equity, market_con, cash)
    stats_started = time.perf_counter()
    _stats_into(summary, plan, engine, equity, market_con, extras)
    run_stats.write_equity_daily(run_dir / "equity_daily.csv", equity)
    summary["metrics"]["stats_seconds"] = round(time.perf_counter() - stats_started, 4)
    summary["metrics"]["plot_data_seconds"] = round(stats_started - started, 4)
    outputs.write_trades_csv(run_dir / "trades.csv", trades)
    outputs.write_json(run_dir / "metrics.json", result.metrics)
    has_plot = False
    if cfg.run.plot and len(equity):
        events = outputs.kill_switch_events(buffer.con if buffer.persistent else None)
        has_plot = outputs.plot_equity(
            run_dir / "equity.png", equity, trades, summary, events, extras.get("buy_hold")
        )
    if cfg.run.html and len(equity):
        from runner import report_html

        html_started = time.perf_counter()
        events = outputs.kill_switch_events(buffer.con if buffer.persistent else None)
        report_html.write_report(run_dir / "report.html", summary, equity, trades, events, extras)
        summary["metrics"]["html_seconds"] = round(time.perf_counter() - html_started, 4)
    outputs.atomic_write(
        run_dir / "summary.md", outputs.summary_markdown(summary, trades, has_plot)
    )
    outputs.write_json(run_dir / "summary.json", summary)
    return summary


def _plot_inputs(
    cfg: DictConfig, plan: Plan, engine: Engine, equity: Any, market_con: Any, cash: float
) -> dict[str, Any]:
    """Return what equity.png and report.html draw besides equity: closes, buy & hold curve."""
    warmup = run_stats.warmup_bars(engine.strategy)
    if market_con is None or not len(equity) or not (cfg.run.plot or cfg.run.html):
        return {"warmup": warmup}
    closes = run_stats.read_closes(market_con, plan.universe, int(equity["ts"].iloc[-1]))
    return {
        "warmup": warmup,
        "closes": closes,
        "anchors": run_stats.buy_hold_anchors(closes, warmup),
        "buy_hold": run_stats.buy_hold_curve(closes, equity["ts"].to_numpy(), cash, warmup),
    }


def _stats_into(
    summary: dict[str, Any],
    plan: Plan,
    engine: Engine,
    equity: Any,
    market_con: Any,
    extras: dict[str, Any],
) -> None:
    """Put ``stats`` (components.results.stats) into ``summary``."""
    anchors = extras.get("anchors")
    if anchors is None and market_con is not None and len(equity):
        last_us = int(equity["ts"].iloc[-1])
        anchors = run_stats.anchors_from_db(market_con, plan.universe, last_us, extras["warmup"])
    summary["stats"] = run_stats.run_stats(
        equity,
        engine.broker.closed,
        anchors or {},
        cash=summary["initial_cash"],
        open_positions=summary["open_positions"],
        total_fees=summary.get("total_fees"),
    )


def _print_summary(summary: dict[str, Any], run_dir: Path, log_path: Path) -> None:
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
    logger.info(
        "report {} | equity.png | trades.csv | results.duckdb in {}",
        run_dir / "summary.md",
        run_dir,
    )
