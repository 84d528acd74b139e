"""Producers and backtests at the same time (issue 6, item 2).

Two producer processes (tests/producer_loop.py) publish new bars and analytics snapshots into one
market DB, one publish after another, while backtests start and run against it. Afterwards every
publish is replayed on a quiet copy in version order, and each backtest is run again on the quiet
copy of the version it read: its digest must be identical (no torn reads: a backtest reads the
version it opened, to the end). Versions must be gap-free and unique (the two producers were
serialised, no publish lost another's change), and a producer that cannot get the lock in time
says who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from components.data.market_db import content_version
from producers.analytics import run_analytics
from producers.demo import generate_bars
from producers.ingest import ingest
from producers.publish import lock_path
from runner.app import run_backtest
from tests.helpers import REPO, compose_config
from tests.producer_loop import ANALYTICS

SYMBOLS_A, SYMBOLS_B = ("SYM00", "SYM01"), ("SYM02", "SYM03")
BASE_STEPS, STEP_PER_FILE = 3000, 150
STRATEGIES = ("sma_cross", "momentum_rotation")  # momentum_rotation reads the snapshots
PAUSE_S = "0.25"  # between one producer's publishes, so publishing spans the backtests' start-ups


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}


def write_csv(frame: pd.DataFrame, path: Path) -> str:
    out = frame.assign(ts=frame["ts"].map(lambda t: t.isoformat()))
    out[["symbol", "ts", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return str(path)


def make_feed(tmp: Path, files_per_producer: int) -> tuple[str, list[str], list[str]]:
    """Return the base file and each producer's increments (later bars of its own symbols)."""
    total = BASE_STEPS + files_per_producer * STEP_PER_FILE
    bars = generate_bars(
        seed=3,
        n_symbols=4,
        n_bars=total,
        freq="1min",
        start="2024-03-08",
        stagger=0.0,
        gap_rate=0.002,
    )
    bars["ts"] = pd.to_datetime(bars["ts"], utc=True)
    clock = sorted(bars["ts"].unique())
    base = write_csv(bars[bars["ts"] < clock[BASE_STEPS]], tmp / "base.csv")
    feeds: dict[tuple[str, ...], list[str]] = {SYMBOLS_A: [], SYMBOLS_B: []}
    for k in range(files_per_producer):
        lo, hi = (
            clock[BASE_STEPS + k * STEP_PER_FILE],
            clock[min(BASE_STEPS + (k + 1) * STEP_PER_FILE, total - 1)],
        )
        window = bars[
            (bars["ts"] >= lo) & ((bars["ts"] < hi) if k < files_per_producer - 1 else True)
        ]
        for symbols, files in feeds.items():
            part = window[window["symbol"].isin(symbols)]
            files.append(write_csv(part, tmp / f"{symbols[0]}_{k:02d}.csv"))
    return base, feeds[SYMBOLS_A], feeds[SYMBOLS_B]


def runner_command(db: Path, run_dir: Path, strategy: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "+experiment=backtest",
        f"strategy={strategy}",
        f"db.path={db}",
        f"hydra.run.dir={run_dir}",
        "run.progress=off",
        "run.plot=false",
    ]


def replay(
    publishes: list[dict[str, Any]], path: Path, wanted: set[int], versions: Path
) -> dict[int, Path]:
    """Apply every publish again, in version order, on a quiet DB; keep a copy of each wanted version."""
    copies = {}
    for entry in sorted(publishes, key=lambda e: e["version"]):
        if entry["op"] == "ingest":
            ingest(entry["file"], str(path))
        else:
            run_analytics(path, ANALYTICS)
        con = duckdb.connect(str(path), read_only=True)
        try:
            assert content_version(con) == entry["version"], (
                "the replay does not reproduce the versions"
            )
        finally:
            con.close()
        if entry["version"] in wanted:
            copies[entry["version"]] = versions / f"v{entry['version']}.duckdb"
            shutil.copyfile(path, copies[entry["version"]])
    return copies


def quiet_digest(db: Path, strategy: str, run_dir: Path) -> dict[str, Any]:
    cfg = compose_config(
        [
            "+experiment=backtest",
            f"strategy={strategy}",
            f"db.path={db}",
            "run.progress=off",
            "run.plot=false",
        ]
    )
    assert run_backtest(cfg, run_dir, quiet=True) == 0
    return json.loads((run_dir / "summary.json").read_text())


def run_producers_and_backtests(tmp_path: Path, files_per_producer: int, n_backtests: int) -> None:
    # Arrange: a published base version, then two producers' feeds of later bars
    live = tmp_path / "live" / "market.duckdb"
    live.parent.mkdir()
    base, feed_a, feed_b = make_feed(tmp_path, files_per_producer)
    publishes = [
        {"op": "ingest", "file": base, "version": ingest(base, str(live))[0].content_version},
        {
            "op": "analytics",
            "file": None,
            "version": run_analytics(live, ANALYTICS).content_version,
        },
    ]
    # Act: both producers publish while backtests start one after another
    logs = [tmp_path / "producer_a.jsonl", tmp_path / "producer_b.jsonl"]
    loop = str(REPO / "tests" / "producer_loop.py")
    producers = [
        subprocess.Popen(
            [sys.executable, loop, str(live), str(logs[0]), "3", PAUSE_S, *feed_a],
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [sys.executable, loop, str(live), str(logs[1]), "0", PAUSE_S, *feed_b],
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    backtests = []
    for k in range(n_backtests):  # started with the producers: both sides take ~2 s to start up
        run_dir = tmp_path / f"bt{k}"
        strategy = STRATEGIES[k % 2]
        proc = subprocess.Popen(
            runner_command(live, run_dir, strategy),
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        backtests.append((proc, run_dir, strategy, time.time()))
        time.sleep(0.6)
    producer_out = [p.communicate(timeout=300) for p in producers]
    finished = [(p.communicate(timeout=300), time.time()) for p, *_ in backtests]
    # Assert: every publish succeeded, versions unique and gap-free (serialised, nothing lost)
    for proc, (_out, err) in zip(producers, producer_out, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    concurrent = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    assert len(concurrent) == 2 * files_per_producer + files_per_producer // 3
    assert all(e["published"] and e["lock_wait_s"] < 60 for e in concurrent)
    publishes += concurrent
    versions = sorted(e["version"] for e in publishes)
    assert versions == list(range(1, len(publishes) + 1))
    con = duckdb.connect(str(live), read_only=True)
    try:
        stored = con.execute("SELECT count(*) FROM bars").fetchone()[0]
    finally:
        con.close()
    assert stored == sum(len(pd.read_csv(e["file"])) for e in publishes if e["op"] == "ingest")
    # ... every backtest completed on one version, mid-publishing for some of them
    read: list[tuple[dict[str, Any], str, Path, float, float]] = []
    for (proc, run_dir, strategy, started), ((_out, err), ended) in zip(
        backtests, finished, strict=True
    ):
        assert proc.returncode == 0, err
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed"
        read.append((summary, strategy, run_dir, started, ended))
    seen = {s["market_db_version"] for s, *_ in read}
    assert len(seen) > 1, (
        f"all backtests read the same version {seen}: nothing was published meanwhile"
    )
    overlaps = [
        e for e in concurrent for _s, _st, _d, started, ended in read if started < e["end"] < ended
    ]
    assert overlaps, "no publish finished while a backtest was running"
    # ... and each one equals the same run on a quiet copy of the version it read
    (tmp_path / "quiet").mkdir()
    copies = replay(publishes, tmp_path / "quiet" / "market.duckdb", seen, tmp_path)
    for summary, strategy, run_dir, _started, _ended in read:
        quiet = quiet_digest(
            copies[summary["market_db_version"]], strategy, tmp_path / f"quiet_{run_dir.name}"
        )
        assert (summary["digest"], summary["record_counts"], summary["metrics"]["bars"]) == (
            quiet["digest"],
            quiet["record_counts"],
            quiet["metrics"]["bars"],
        ), f"{run_dir.name} saw a torn read"


def test_backtests_when_two_producers_publish_meanwhile_then_each_equals_a_quiet_run_of_its_version(
    tmp_path: Path,
) -> None:
    run_producers_and_backtests(tmp_path, files_per_producer=6, n_backtests=3)


@pytest.mark.slow
def test_backtests_when_two_producers_publish_24_times_then_each_equals_a_quiet_run_of_its_version(
    tmp_path: Path,
) -> None:
    run_producers_and_backtests(tmp_path, files_per_producer=12, n_backtests=6)


def test_ingest_cli_when_publish_lock_held_past_its_bound_then_exit_2_naming_the_holder(
    tmp_path: Path,
) -> None:
    # Arrange: this process holds the publish lock, as a long-running producer would
    live = tmp_path / "market.duckdb"
    base, feed_a, _feed_b = make_feed(tmp_path, 1)
    ingest(base, str(live))
    fd = os.open(lock_path(live), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
        # Act
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "producers.ingest",
                f"source={feed_a[0]}",
                f"db.path={live}",
                "publish.lock_timeout_s=1",
            ],
            cwd=REPO,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    # Assert: it gave up after its bound, said who holds the lock and what to do, wrote nothing
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.match(
        rf"^error: publish lock {re.escape(str(lock_path(live)))} is still held by PID {os.getpid()} after 1 s: "
        r"another producer is writing this market DB\. .*publish\.lock_timeout_s=<seconds>\.$",
        errors[0],
    )
    con = duckdb.connect(str(live), read_only=True)
    try:
        assert content_version(con) == 1
    finally:
        con.close()
