"""Plan a run before it starts: typed configs, the universe and the window, all checked up front."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from components.data.market_db import content_version, has_table
from components.errors import ConfigError, DataRangeError
from components.market.base import Universe, window_filter, window_params
from components.registry import typed_config

GROUPS = ("db", "market", "analytics", "strategy", "execution", "buffer", "broker")


@dataclass
class Plan:
    configs: dict[str, Any]
    universe: Universe
    n_bars: int
    first_ts: pd.Timestamp
    last_ts: pd.Timestamp
    market_db_version: int
    config_hash: str = ""  # of the resolved config; set by the app once per run

    def describe(self) -> str:
        c = self.configs
        market = c["market"]
        perf = f"market={market.kind}" + (
            f"(chunk_size={market.chunk_size})" if hasattr(market, "chunk_size") else ""
        )
        return (
            f"plan: {self.n_bars} bars, {self.universe.n_steps} clock steps, {len(self.universe.symbols)} symbol(s) "
            f"[{', '.join(self.universe.symbols[:8])}{', ...' if len(self.universe.symbols) > 8 else ''}] "
            f"from {self.first_ts.isoformat()} to {self.last_ts.isoformat()}; strategy={c['strategy'].kind}; "
            f"{perf}, analytics={c['analytics'].kind}, buffer={c['buffer'].kind}(batch_size={c['buffer'].batch_size}); "
            f"market DB {c['db'].path} version {self.market_db_version} (read-only)"
        )


def typed_configs(cfg: DictConfig) -> dict[str, Any]:
    """Build every group's typed config (types, ranges, cross-field rules); refuse db.mode=read_write."""
    configs = {group: typed_config(group, cfg[group]) for group in GROUPS}
    try:
        configs["run"] = OmegaConf.to_object(
            cfg.run
        )  # RunConfig.__post_init__ checks progress, metrics_every_s
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if configs["db"].mode != "read_only":
        raise ConfigError(
            f"db.mode={configs['db'].mode!r}: the runner only reads the market DB and never opens it for "
            "writing; remove the override (db.mode=read_only) and write data with a producer CLI such as "
            "`python -m producers.ingest source=<file> db.path=<db>`."
        )
    return configs


def parse_window(start: Any, end: Any) -> tuple[int | None, int | None]:
    """Return [start, end) in epoch microseconds; a bare-date ``end`` includes that whole day."""

    def to_us(value: Any, key: str) -> pd.Timestamp:
        try:
            stamp = pd.Timestamp(str(value))
        except (ValueError, TypeError):
            raise ConfigError(
                f"{key} must be an ISO-8601 date or timestamp, was {value!r}; e.g. {key}=2010-01-01"
            ) from None
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

    start_us = end_us = None
    if start is not None:
        start_us = to_us(start, "start").value // 1000
    if end is not None:
        stamp = to_us(end, "end")
        bare_date = len(str(end).strip()) <= 10
        end_us = (
            stamp + (pd.Timedelta(days=1) if bare_date else pd.Timedelta(microseconds=1))
        ).value // 1000
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise ConfigError(
            f"empty date range: end={end!r} is before start={start!r}; swap them or widen the range"
        )
    return start_us, end_us


def resolve_universe(
    con: duckdb.DuckDBPyConnection, cfg: DictConfig
) -> tuple[Universe, int, Any, Any]:
    """Return (universe, bars, first ts, last ts), checking symbols and dates exist in the DB."""
    db_path = cfg.db.path
    if not has_table(con, "bars"):
        raise DataRangeError(
            f"{db_path} has no bars table; ingest data first with "
            f"`python -m producers.ingest source=<file> db.path={db_path}`."
        )
    available = [
        s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY symbol").fetchall()
    ]
    requested = OmegaConf.to_object(cfg.symbols) if cfg.symbols is not None else None
    if isinstance(requested, str):
        requested = [requested]
    if requested is None:
        symbols = tuple(available)
    else:
        symbols = tuple(sorted({str(s) for s in requested}))
        missing = [s for s in symbols if s not in set(available)]
        if missing:
            raise DataRangeError(_unknown_symbols(symbols, missing, available, db_path))
    if not symbols:
        raise DataRangeError(
            f"{db_path} holds no bars; ingest data first with `python -m producers.ingest`."
        )
    start_us, end_us = parse_window(cfg.start, cfg.end)
    universe = Universe(symbols=symbols, start_us=start_us, end_us=end_us)
    steps, bars, first, last = con.execute(
        f"SELECT count(DISTINCT ts), count(*), min(ts), max(ts) FROM bars WHERE {window_filter(universe)}",
        window_params(universe),
    ).fetchone()
    if not steps:
        lo, hi = con.execute(
            "SELECT min(ts), max(ts) FROM bars WHERE list_contains($symbols, symbol)",
            {"symbols": list(symbols)},
        ).fetchone()
        first_day, last_day = (
            pd.Timestamp(lo).date().isoformat(),
            pd.Timestamp(hi).date().isoformat(),
        )
        raise DataRangeError(
            f"empty date range: no bars for {', '.join(symbols[:5])}{' ...' if len(symbols) > 5 else ''} "
            f"between start={_or_null(cfg.start)} and end={_or_null(cfg.end)}; {db_path} has them from "
            f"{first_day} to {last_day}. Fix: choose start/end inside that range, e.g. "
            f"start={first_day} end={last_day}."
        )
    universe = Universe(symbols=symbols, start_us=start_us, end_us=end_us, n_steps=int(steps))
    return universe, int(bars), pd.Timestamp(first), pd.Timestamp(last)


def _unknown_symbols(
    symbols: tuple[str, ...], missing: list[str], available: list[str], db_path: str
) -> str:
    """Return the message for requested symbols the market DB lacks, with the closest known names."""
    guesses = {s: difflib.get_close_matches(s, available, n=1) for s in missing}
    hint = " ".join(f"Did you mean {g[0]!r}?" for g in guesses.values() if g)
    fixed = sorted({(guesses[s] or [s])[0] if s in guesses else s for s in symbols})
    fix = (
        f"symbols=[{','.join(fixed)}]"
        if all(guesses.values())
        else "symbols=[...] with names it has"
    )
    listed = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
    return (
        f"symbols: {', '.join(missing)} not in the market DB {db_path} (it has: {listed or 'no symbols'})."
        f"{' ' + hint if hint else ''} Fix: {fix}, or ingest the missing symbol with "
        f"`python -m producers.ingest source=<file> db.path={db_path}`."
    )


def _or_null(value: Any) -> str:
    return "null" if value is None else str(value)


def make_plan(
    con: duckdb.DuckDBPyConnection,
    cfg: DictConfig,
    configs: dict[str, Any],
    cache: Callable[[tuple[Any, ...], Callable[[], Any]], Any] | None = None,
) -> Plan:
    """Plan the run; ``cache(request, make)`` (multirun jobs) reuses an earlier job's universe.

    The request is everything the universe depends on besides the DB file (whose identity the
    cache key holds): the content version, the symbols and the window.
    """

    def resolve() -> tuple[Any, ...]:
        return (*resolve_universe(con, cfg), content_version(con))

    if cache is None:
        universe, bars, first, last, version = resolve()
    else:
        symbols = OmegaConf.to_container(cfg.symbols) if cfg.symbols is not None else None
        request = (repr(symbols), str(cfg.start), str(cfg.end))
        universe, bars, first, last, version = cache(request, resolve)
    return Plan(configs, universe, bars, first, last, version)
