"""Plan a run before it starts: typed configs, the universe and the window, all checked up front."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from components.data.market_db import content_version, has_table
from components.errors import ConfigError, DataRangeError
from components.market.base import Universe, window_filter, window_params
from components.registry import direct_dataclass, direct_typed, lookup, typed_config
from components.suggest import closest
from components.timestamps import parse_timestamp
from runner.config import RunConfig

GROUPS = (
    "db",
    "market",
    "analytics",
    "strategy",
    "execution",
    "buffer",
    "broker",
    "sizing",
    "orders",
)


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
    return resolved_and_typed(cfg)[1]


def resolved_and_typed(
    cfg: DictConfig, resolved: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the resolved config as plain containers and ``typed_configs(cfg)``.

    ``resolved``: ``check_interpolations(cfg)`` when the caller has it already.
    """
    resolved = check_interpolations(cfg) if resolved is None else resolved
    configs = {group: _typed(group, cfg, resolved) for group in GROUPS}
    for group, config in configs.items():
        check_int64(config, group)
    # RunConfig.__post_init__ checks progress, metrics_every_s; built straight from the resolved
    # values when they are plain scalars of the right types (the schema path words any error)
    run = resolved.get("run")
    configs["run"] = direct_dataclass(RunConfig, run) if isinstance(run, dict) else None
    if configs["run"] is None:
        try:
            configs["run"] = OmegaConf.to_object(cfg.run)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if configs["db"].mode != "read_only":
        raise ConfigError(
            f"db.mode={configs['db'].mode!r}: the runner only reads the market DB and never opens it for "
            "writing; remove the override (db.mode=read_only) and write data with a producer CLI such as "
            "`python -m producers.ingest source=<file> db.path=<db>`."
        )
    return resolved, configs


INT64_MAX = 2**63 - 1


def check_int64(config: Any, key: str) -> None:
    """Refuse integers DuckDB and numpy cannot hold (beyond 64 bits), naming the key."""
    if dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            check_int64(getattr(config, f.name), f"{key}.{f.name}")
    elif isinstance(config, int) and not isinstance(config, bool) and abs(config) > INT64_MAX:
        raise ConfigError(
            f"{key}={config}: too large (integers must fit in 64 bits, |value| <= {INT64_MAX:,}); "
            f"give a realistic value, e.g. {key}=1000"
        )


_TYPED: dict[tuple[Any, ...], Any] = {}  # (group, entry, repr of resolved node) -> typed config
_TYPED_MAX = 4096


def _typed(group: str, cfg: DictConfig, resolved: dict[str, Any]) -> Any:
    """Return ``typed_config(group, cfg[group])``, memoised by the group's resolved values.

    The registry memoises too, but keys its memo by converting the node again (~0.5-1 ms per
    group, nine groups per job); the resolved config at hand gives the same key for free. A
    memoised config is handed out as a copy, like the registry's.
    """
    node = resolved.get(group)
    try:
        entry = lookup(group, node.get("kind") if isinstance(node, dict) else None)
    except Exception:  # unknown kind: typed_config raises its one-line error
        return typed_config(group, cfg[group])
    key = (group, entry.config_cls, entry.factory, repr(node))
    cached = _TYPED.get(key)
    if cached is not None:
        return copy.deepcopy(cached)
    typed = direct_typed(entry, node) if isinstance(node, dict) else None
    if typed is None:
        typed = typed_config(group, cfg[group])
    if len(_TYPED) >= _TYPED_MAX:
        _TYPED.clear()
    _TYPED[key] = copy.deepcopy(typed)
    return typed


def build_typed(group: str, configs: dict[str, Any]) -> Any:
    """Return ``build(group, cfg[group])`` from the group's typed config (``typed_configs``).

    The same component as ``components.registry.build``: its factory called with a copy of the
    typed config that ``build`` would have made again from the node.
    """
    config = copy.deepcopy(configs[group])
    return lookup(group, config.kind).factory(config)


def check_interpolations(cfg: DictConfig) -> dict[str, Any]:
    """Resolve every ``${...}`` once, up front, so a broken reference is one line naming its key.

    Return the resolved config as plain containers.
    """
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as exc:
        key = getattr(exc, "full_key", "") or "a key"
        detail = str(getattr(exc, "msg", exc)).splitlines()[0].rstrip(".")
        raise ConfigError(
            f"{key}: cannot resolve its interpolation ({detail}); an interpolation ${{...}} must name "
            "another key of the config (e.g. ${db.path}) or a known resolver, so fix the name or give "
            f"{key} a plain value."
        ) from None
    assert isinstance(resolved, dict)
    return resolved


def parse_window(start: Any, end: Any) -> tuple[int | None, int | None]:
    """Return [start, end) in epoch microseconds; a bare-date ``end`` includes that whole day."""
    start_us = end_us = None
    if start is not None:
        start_us = parse_timestamp(start, "start").value // 1000
    if end is not None:
        stamp = parse_timestamp(end, "end")
        bare_date = len(str(end).strip()) <= 10
        end_us = (
            stamp + (pd.Timedelta(days=1) if bare_date else pd.Timedelta(microseconds=1))
        ).value // 1000
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise ConfigError(
            f"empty date range: end={end!r} is before start={start!r}; swap them or widen the range"
        )
    return start_us, end_us


def requested_symbols(value: Any) -> tuple[str, ...] | None:
    """Return the symbols a run asks for (None = all), refusing values that are not names."""
    requested = OmegaConf.to_object(value) if OmegaConf.is_config(value) else value
    if requested is None:
        return None
    if isinstance(requested, str):
        requested = [requested]  # symbols=GOOG: one symbol
    example = "e.g. symbols=[GOOG,AAPL], or symbols=null for every symbol in the market DB"
    if not isinstance(requested, list):
        raise ConfigError(
            f"symbols={requested!r}: expected a list of symbol names, got {_a(requested)}; "
            f"{example} (quote a numeric ticker: 'symbols=[\"1000\"]')"
        )
    if not requested:
        raise ConfigError(f"symbols=[] selects no symbol; {example}")
    bad = [s for s in requested if not isinstance(s, str) or not s.strip()]
    if bad:
        raise ConfigError(
            f"symbols: {bad[0]!r} is not a symbol name ({_a(bad[0])}); {example} "
            f"(quote a numeric ticker: 'symbols=[\"1000\"]')"
        )
    return tuple(sorted(set(requested)))


def _a(value: Any) -> str:
    """Return "a number", "true or false", "a mapping" ... for the type of ``value``."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "a mapping" if isinstance(value, dict) else f"a {type(value).__name__}"


BARS_COLUMNS = {
    "symbol": "VARCHAR",
    "ts": "TIMESTAMP WITH TIME ZONE",
    "open": "DOUBLE",
    "high": "DOUBLE",
    "low": "DOUBLE",
    "close": "DOUBLE",
    "volume": "DOUBLE",
}
SNAPSHOT_COLUMNS = {
    "snapshot_ts": "TIMESTAMP WITH TIME ZONE",
    "symbol": "VARCHAR",
    "trailing_return": "DOUBLE",
    "volatility": "DOUBLE",
    "return_rank": "DOUBLE",
}


def check_table_schema(
    con: duckdb.DuckDBPyConnection, table: str, expected: dict[str, str], db_path: str
) -> None:
    """Refuse a table whose columns or types differ from the market-DB layout (one line, the fix)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    actual = {str(name): str(kind) for name, kind in rows}
    problems = [
        f"column {name} is {actual[name]}, expected {kind}"
        if name in actual
        else f"column {name} ({kind}) is missing"
        for name, kind in expected.items()
        if actual.get(name) != kind
    ]
    if problems:
        layout = ", ".join(f"{n} {k}" for n, k in expected.items())
        raise DataRangeError(
            f"{db_path}: table {table} does not have the market-DB layout ({'; '.join(problems)}); it must be "
            f"{table}({layout}). Rebuild it with `python -m producers.ingest source=<file> db.path=<new file>` "
            "(producers always write this layout)."
        )


def resolve_universe(
    con: duckdb.DuckDBPyConnection, cfg: DictConfig
) -> tuple[Universe, int, Any, Any]:
    """Return (universe, bars, first ts, last ts), checking symbols and dates exist in the DB."""
    db_path = cfg.db.path
    requested = requested_symbols(cfg.symbols)
    start_us, end_us = parse_window(cfg.start, cfg.end)
    if not has_table(con, "bars"):
        raise DataRangeError(
            f"{db_path} has no bars table; ingest data first with "
            f"`python -m producers.ingest source=<file> db.path={db_path}`."
        )
    check_table_schema(con, "bars", BARS_COLUMNS, db_path)
    available = [
        s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY symbol").fetchall()
    ]
    if requested is None:
        symbols = tuple(available)
    else:
        symbols = requested
        missing = [s for s in symbols if s not in set(available)]
        if missing:
            raise DataRangeError(_unknown_symbols(symbols, missing, available, db_path))
    if not symbols:
        raise DataRangeError(
            f"{db_path} holds no bars; ingest data first with "
            f"`python -m producers.ingest source=<file> db.path={db_path}`."
        )
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
    guesses = {s: closest(s, available) for s in missing}
    hint = " ".join(f"Did you mean {g!r}?" for g in guesses.values() if g)
    fixed = sorted({(guesses[s] or s) if s in guesses else s for s in symbols})
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
    plan = Plan(configs, universe, bars, first, last, version)
    check_analytics(con, cfg, plan)
    return plan


def check_analytics(con: duckdb.DuckDBPyConnection, cfg: DictConfig, plan: Plan) -> None:
    """Refuse a strategy that reads analytics snapshots when the window has none (it would not trade)."""
    strategy = plan.configs["strategy"]
    if not getattr(build_typed("strategy", plan.configs), "uses_analytics", False):
        return
    db_path = plan.configs["db"].path
    if has_table(con, "analytics_snapshots"):
        check_table_schema(con, "analytics_snapshots", SNAPSHOT_COLUMNS, db_path)
        end_us = plan.universe.end_us
        sql = "SELECT count(*) FROM analytics_snapshots" + (
            "" if end_us is None else " WHERE snapshot_ts < make_timestamptz($end_us)"
        )
        row = con.execute(sql, {} if end_us is None else {"end_us": end_us}).fetchone()
        if row and row[0]:
            return
    window = "" if cfg.end is None else f" before end={cfg.end}"
    raise DataRangeError(
        f"strategy.kind={strategy.kind} reads analytics snapshots, but the market DB {db_path} has "
        f"none{window}, so it would never trade; compute them with "
        f"`python -m producers.analytics db.path={db_path}`, or pick a strategy that reads bars only "
        "(strategy=sma_cross)."
    )
