"""The one benchmark table: figure, value, target, verdict (also pasted into docs/performance.md)."""

from __future__ import annotations

from typing import Any


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISS")


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def table(r: dict[str, Any]) -> str:
    """Return the benchmark table as Markdown (readable as plain text too)."""
    e, t, m = r["e2e"], r["targets"], r["machine"]
    n = e["window_steps"]
    full_db, full_mem = e["chunked+cached duckdb @ full"], e["chunked+cached memory @ full"]
    direct, chunked = e["direct duckdb @ window"], e["chunked duckdb @ window"]
    cached_w, cached_w_mem = (
        e["chunked+cached duckdb @ window"],
        e["chunked+cached memory @ window"],
    )
    big_full, big_w = (
        e["chunked+cached duckdb chunk 10000 @ full"],
        e["chunked+cached duckdb chunk 10000 @ window"],
    )
    ceil = r["ceiling"]
    rows: list[tuple[str, str, str, str]] = []

    def add(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
        rows.append((name, value, target, _verdict(ok)))

    bps = full_db["bars_per_second"]
    add(
        "end to end, chunked+cached, persistence on (buffer=duckdb), 1M bars",
        f"{_rate(bps)} bars/s",
        ">= 250k (stretch 400k)",
        bps >= t["e2e_bars_per_s"],
    )
    costs = e.get("chunked+cached duckdb costs+brackets @ full")
    if costs:
        ratio = costs["bars_per_second"] / bps
        add(
            "end to end, same run with costs + brackets on (commission, spread, SL/TP), 1M bars",
            f"{_rate(costs['bars_per_second'])} bars/s ({costs['n_trades']:,} trades)",
            ">= 250k",
            costs["bars_per_second"] >= t["e2e_bars_per_s"],
        )
        add(
            "costs + brackets on / off, same run",
            f"{ratio:.3f}",
            ">= 0.80",
            ratio >= t["costs_brackets_ratio"],
        )
    hourly = e.get("chunked+cached duckdb hourly snapshots @ full")
    if hourly:
        add(
            "end to end, chunked+cached, persistence on, 1M bars, hourly-snapshot DB "
            "(sma_cross reads no snapshots)",
            f"{_rate(hourly['bars_per_second'])} bars/s",
            "report",
        )
    add(
        "end to end, chunked+cached, persistence off (buffer=memory), 1M bars",
        f"{_rate(full_mem['bars_per_second'])} bars/s",
    )
    add(
        "ceiling: bare numpy/Python sma_cross on the same DuckDB data, 1M bars",
        f"{_rate(ceil['bars_per_second'])} bars/s",
        "report",
    )
    add(
        "runner / ceiling, persistence on / off",
        f"{bps / ceil['bars_per_second']:.3f} / {full_mem['bars_per_second'] / ceil['bars_per_second']:.3f}",
    )
    process_bps = full_db["bars"] / full_db["process_seconds"]  # interpreter start to exit
    add(
        f"whole process (`python -m runner ...`, {full_db['process_seconds']:.2f} s incl. start-up and report) / ceiling",
        f"{_rate(process_bps)} bars/s = {process_bps / ceil['bars_per_second']:.3f}x",
        ">= 0.25x",
        process_bps / ceil["bars_per_second"] >= 0.25,
    )
    if "process_seconds" in ceil:  # the ceiling timed the same way: interpreter start to exit
        ceil_process_bps = full_db["bars"] / ceil["process_seconds"]
        add(
            f"whole process / ceiling as a whole process ({ceil['process_seconds']:.2f} s: "
            "python start, imports, fetch, trades)",
            f"{process_bps / ceil_process_bps:.3f}x (ceiling {_rate(ceil_process_bps)} bars/s)",
            "report",
        )
    add(
        "same trades as the runner (ceiling check)",
        f"{ceil['n_trades']} trades, pnl {ceil['total_pnl']:,.2f}",
        f"{full_db['n_trades']} trades",
        ceil["n_trades"] == full_db["n_trades"]
        and abs(ceil["total_pnl"] - full_db["total_pnl"])
        < 1e-6 * max(1.0, abs(full_db["total_pnl"])),
    )
    add(
        f"direct (market+analytics direct), first {n:,} steps, persistence on",
        f"{_rate(direct['bars_per_second'])} bars/s ({direct['loop_seconds'] / direct['clock_steps'] * 1e3:.2f} ms/step)",
    )
    add(
        f"chunked, analytics direct, first {n:,} steps, persistence on",
        f"{_rate(chunked['bars_per_second'])} bars/s",
    )
    add(
        f"chunked+cached, first {n:,} steps, persistence on / off",
        f"{_rate(cached_w['bars_per_second'])} / {_rate(cached_w_mem['bars_per_second'])} bars/s",
    )
    add(
        "speed-up over direct, same window: chunked / chunked+cached",
        f"{chunked['bars_per_second'] / direct['bars_per_second']:.1f}x / "
        f"{cached_w['bars_per_second'] / direct['bars_per_second']:.0f}x",
        "report",
    )
    _queries(add, e, direct, chunked, full_db, big_full)
    _memory(add, r, t, full_db, big_full, cached_w, big_w)
    _components(add, r, t)
    header = (
        f"bench: {m['cpus']} CPUs, Python {m['python']}, DuckDB {m['duckdb']}; load avg "
        f"{m['load_avg_before'][0]:.2f} -> {m['load_avg_after'][0]:.2f}; best of {m['repeat']} for the "
        f"1M-bar runs; {m['bench_seconds']:.0f} s; {m['date']}"
    )
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [header, "", "| figure | value | target | |", "|---|---|---|---|"]
    lines += [
        f"| {a:<{width[0]}} | {b:<{width[1]}} | {c:<{width[2]}} | {d} |" for a, b, c, d in rows
    ]
    return "\n".join(lines)


def _queries(
    add: Any,
    e: dict[str, Any],
    direct: dict[str, Any],
    chunked: dict[str, Any],
    full_db: dict[str, Any],
    big_full: dict[str, Any],
) -> None:
    add(
        f"market-DB queries, direct, {direct['clock_steps']:,} steps",
        f"{direct['market_db_queries']:,}",
        "one per step",
        direct["market_db_queries"] == direct["clock_steps"],
    )
    for run, chunk in ((full_db, 1000), (big_full, 10_000)):
        add(
            f"market-DB queries, chunked (chunk_size={chunk:,}), {run['clock_steps']:,} steps",
            f"{run['market_db_queries']:,}",
            f"ceil(steps/chunk) = {run['expected_market_queries']:,}",
            run["market_db_queries"] == run["expected_market_queries"],
        )
    add(
        f"analytics queries, sma_cross (reads no snapshots), analytics=direct, {chunked['clock_steps']:,} steps",
        f"{chunked['analytics_queries']:,}",
        "0 (issue 14)",
        chunked["analytics_queries"] == 0,
    )
    mom_direct = e.get("momentum analytics direct @ window")
    mom_cached = e.get("momentum analytics cached @ full")
    if mom_direct:
        add(
            f"analytics queries, momentum_rotation, direct, {mom_direct['clock_steps']:,} steps",
            f"{mom_direct['analytics_queries']:,}",
            "one per step",
            mom_direct["analytics_queries"] == mom_direct["clock_steps"],
        )
    if mom_cached:
        rate = mom_cached["cache_hit_rate"]
        add(
            f"analytics queries, momentum_rotation, cached, {mom_cached['clock_steps']:,} steps; hit rate",
            f"{mom_cached['analytics_queries']:,}; {(rate or 0) * 100:.2f} %",
            "1 + one per snapshot",
        )


def _memory(
    add: Any,
    r: dict[str, Any],
    t: dict[str, Any],
    full_db: dict[str, Any],
    big_full: dict[str, Any],
    cached_w: dict[str, Any],
    big_w: dict[str, Any],
) -> None:
    add("peak RSS after imports only (no run)", f"{r['baseline_rss_mb']:.0f} MB")
    for label, run in (
        (f"{cached_w['bars']:,} bars, chunk_size=1,000", cached_w),
        (f"{big_w['bars']:,} bars, chunk_size=10,000", big_w),
        (f"{full_db['bars']:,} bars, chunk_size=1,000", full_db),
        (f"{big_full['bars']:,} bars, chunk_size=10,000", big_full),
    ):
        big = run["bars"] >= 1_000_000
        add(
            f"peak RSS, {label}",
            f"{run['peak_rss_mb']:.0f} MB",
            "<= 500 MB" if big else "",
            run["peak_rss_mb"] <= t["peak_rss_mb_1m"] if big else None,
        )
    add(
        f"peak RSS growth {cached_w['bars']:,} -> {full_db['bars']:,} bars (chunk_size=1,000)",
        f"{full_db['peak_rss_mb'] - cached_w['peak_rss_mb']:+.0f} MB",
        "~0 (not with history)",
    )
    add(
        "peak RSS growth chunk_size 1,000 -> 10,000 (1M bars)",
        f"{big_full['peak_rss_mb'] - full_db['peak_rss_mb']:+.0f} MB",
        "grows with chunk size",
    )


def _components(add: Any, r: dict[str, Any], t: dict[str, Any]) -> None:
    for batch, rate in r["writer_rows_per_s"].items():
        add(
            f"WriteBuffer alone, batch_size={int(batch):,} (9 equity : 1 insight rows)",
            f"{_rate(rate)} rows/s",
            ">= 400k",
            rate >= t["writer_rows_per_s"],
        )
    v, budget = r["validation"], t["validation_s_per_1m"]
    add(
        "validation, bars, pandera OhlcvBars (1M-row frame)",
        f"{v['bars_pandera_s_per_1m']:.3f} s / 1M rows",
        "<= 0.5 s",
        v["bars_pandera_s_per_1m"] <= budget,
    )
    add(
        "validation, bars, numpy fast path (chunk_satisfies_contract)",
        f"{v['bars_fast_path_s_per_1m']:.3f} s / 1M rows",
        "<= 0.5 s",
        v["bars_fast_path_s_per_1m"] <= budget,
    )
    add(
        "validation, snapshots, pandera AnalyticsSnapshot (1M-row frame)",
        f"{v['snapshots_pandera_s_per_1m']:.3f} s / 1M rows",
        "<= 0.5 s",
        v["snapshots_pandera_s_per_1m"] <= budget,
    )
    add(
        f"validation, snapshots, numpy fast path per {v['symbols_per_snapshot']:.0f}-row snapshot",
        f"{v['snapshot_fast_path_us_per_snapshot']:.0f} us each = {v['snapshots_fast_path_s_per_1m']:.2f} s / 1M rows",
        "<= 0.5 s",
        v["snapshots_fast_path_s_per_1m"] <= budget,
    )
    lk = r["lookups"]
    add(
        "cached snapshot lookup (hit)",
        f"{lk['cached_hit_us']:.2f} us",
        "<= 10 us",
        lk["cached_hit_us"] <= t["lookup_us"],
    )
    add("direct snapshot lookup (one query)", f"{lk['direct_query_us']:,.0f} us", "report")
    ing = r.get("ingest")
    if ing:
        add(
            "producer: CSV ingest end to end (bench_ingest)",
            f"{_rate(ing['csv_ingest_rows_per_s'])} rows/s",
            "report",
        )
        add(
            "producer: write_bars into a new DB (bench_ingest)",
            f"{_rate(ing['write_bars_new_db_rows_per_s'])} rows/s",
            ">= 400k",
            ing["write_bars_new_db_rows_per_s"] >= t["writer_rows_per_s"],
        )
