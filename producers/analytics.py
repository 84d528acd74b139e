"""``python -m producers.analytics db.path=<db> [analytics.cadence=1d analytics.lookback=20]``.

Computes ``analytics_snapshots`` with DuckDB window functions. The bar clock is cut into
``cadence`` buckets aligned to the Unix epoch in UTC (so ``1d`` means UTC calendar days); each
bucket with bars gives one snapshot, stamped with the last bar ts in the bucket. At that
snapshot, each symbol with a bar in the bucket and at least ``lookback + 1`` bars so far gets:

- ``trailing_return``: close of its last bar in the bucket / close ``lookback`` bars earlier - 1;
- ``volatility``: sample standard deviation of its last ``lookback`` one-bar log returns;
- ``return_rank``: 1 for the best trailing return at that snapshot, ties broken by symbol name.

Every window looks backwards from a bar at or before the snapshot ts, so a snapshot uses only
bars with ``ts <= snapshot_ts``. A recompute replaces the table inside one publish transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import hydra
import pandas as pd
import pyarrow as pa
from hydra.core.config_store import ConfigStore
from loguru import logger
from omegaconf import DictConfig

from components.cli import run_cli
from components.data.config import DbConfig
from components.data.duckdb_client import CREATE_HINT, check_db_file
from components.data.market_db import content_version
from components.data.schemas import SNAPSHOT_COLUMNS, AnalyticsSnapshot, validate_or_raise
from components.errors import DataRangeError, MarketDbMissingError
from producers.common import CONF_DIR, configure_logging, producer_interrupted, typed
from producers.publish import PublishConfig, Unchanged, publish

_CADENCE = re.compile(r"^(\d+)\s*(s|min|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class AnalyticsConfig:
    cadence: str = (
        "1d"  # snapshot interval: <n>s|min|h|d|w (1d, 1h, 30min); buckets aligned to the UTC epoch
    )
    lookback: int = 20  # bars per symbol behind each trailing return and volatility

    def __post_init__(self) -> None:
        if self.lookback < 2:
            raise ValueError(
                f"analytics.lookback must be >= 2 bars (volatility needs two returns), was {self.lookback}; "
                "try analytics.lookback=20"
            )
        self.cadence_us()

    def cadence_us(self) -> int:
        """Return the cadence in microseconds; raise ValueError for a bad or non-positive value."""
        match = _CADENCE.match(str(self.cadence).strip().lower())
        if not match or int(match.group(1)) < 1:
            raise ValueError(
                f"analytics.cadence must be a positive count with a unit s, min, h, d or w, was "
                f"{self.cadence!r}; try analytics.cadence=1d or analytics.cadence=30min"
            )
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1_000_000


@dataclass
class AnalyticsAppConfig:
    db: DbConfig = field(default_factory=DbConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)


ConfigStore.instance().store(name="producer_analytics_schema", node=AnalyticsAppConfig)


def snapshot_sql(config: AnalyticsConfig) -> str:
    """Return the query computing every snapshot from ``bars`` (ordered by snapshot_ts, symbol).

    Volatility is ``list_stddev_samp`` over the window's list of log returns, not a windowed
    ``stddev_samp``: DuckDB's segment tree combines partial sums in an order that depends on the
    whole partition, so appending future bars could move past values by an ulp. Concatenating
    lists is exact, and the standard deviation of each list is then computed in order.
    """
    width, lookback = config.cadence_us(), int(config.lookback)
    bucket = f"(epoch_us(ts) - (epoch_us(ts) % {width} + {width}) % {width}) // {width}"  # floor
    return f"""
    WITH b AS (
        SELECT symbol, ts, close, {bucket} AS bucket,
               row_number() OVER s AS n,
               ln(close / lag(close) OVER s) AS log_return,
               lag(close, {lookback}) OVER s AS close_back
        FROM bars WINDOW s AS (PARTITION BY symbol ORDER BY ts)
    ),
    m AS (
        SELECT *, list(log_return) OVER (
            PARTITION BY symbol ORDER BY ts ROWS BETWEEN {lookback - 1} PRECEDING AND CURRENT ROW
        ) AS window_returns
        FROM b
    ),
    clock AS (SELECT bucket, max(ts) AS snapshot_ts FROM b GROUP BY bucket),
    last_bar AS (
        SELECT * FROM m
        QUALIFY row_number() OVER (PARTITION BY symbol, bucket ORDER BY ts DESC) = 1
    ),
    metrics AS (
        SELECT c.snapshot_ts, l.symbol, l.close / l.close_back - 1 AS trailing_return,
               list_stddev_samp(l.window_returns) AS volatility
        FROM last_bar l JOIN clock c USING (bucket)
        WHERE l.n > {lookback}
    )
    SELECT snapshot_ts, symbol, trailing_return, volatility,
           CAST(row_number() OVER (PARTITION BY snapshot_ts ORDER BY trailing_return DESC, symbol) AS DOUBLE)
               AS return_rank
    FROM metrics
    ORDER BY snapshot_ts, symbol
    """


def compute_snapshots(con: duckdb.DuckDBPyConnection, config: AnalyticsConfig) -> pd.DataFrame:
    """Return validated snapshots (``SNAPSHOT_COLUMNS``) computed from the bars in ``con``."""
    frame = con.execute(snapshot_sql(config)).df()
    if frame.empty:
        raise DataRangeError(
            f"no symbol has {config.lookback + 1} bars, so no snapshot can be computed; lower "
            f"analytics.lookback (was {config.lookback}) or ingest more bars."
        )
    return validate_or_raise(AnalyticsSnapshot, frame[SNAPSHOT_COLUMNS], "analytics snapshots")


@dataclass
class AnalyticsResult:
    db_path: str
    rows: int = 0
    snapshots: int = 0
    symbols: int = 0
    published: bool = False
    content_version: int = 0


def _same_as_stored(con: duckdb.DuckDBPyConnection, config: AnalyticsConfig) -> bool:
    settings = dict(
        con.execute("SELECT key, value FROM meta WHERE key LIKE 'analytics_%'").fetchall()
    )
    if settings != {
        "analytics_cadence": config.cadence,
        "analytics_lookback": str(config.lookback),
    }:
        return False
    differ = con.execute(
        "SELECT (SELECT count(*) FROM (SELECT * FROM new_snapshots EXCEPT ALL SELECT * FROM analytics_snapshots))"
        " + (SELECT count(*) FROM (SELECT * FROM analytics_snapshots EXCEPT ALL SELECT * FROM new_snapshots))"
    ).fetchall()[0][0]
    return differ == 0


def run_analytics(
    db_path: str | Path, config: AnalyticsConfig, lock_timeout_s: float = 60.0
) -> AnalyticsResult:
    """Recompute every snapshot and publish them (no-op when the stored ones are identical)."""
    if not Path(db_path).exists():
        raise MarketDbMissingError(
            f"market DB not found at {db_path} (db.path); create it first with `{CREATE_HINT.format(path=db_path)}`."
        )
    result = AnalyticsResult(db_path=str(db_path))

    def apply(con: duckdb.DuckDBPyConnection) -> AnalyticsResult | Unchanged[AnalyticsResult]:
        snapshots = compute_snapshots(con, config)
        result.rows = len(snapshots)
        result.snapshots = snapshots["snapshot_ts"].nunique()
        result.symbols = snapshots["symbol"].nunique()
        con.register("new_snapshots", pa.Table.from_pandas(snapshots, preserve_index=False))
        try:
            if _same_as_stored(con, config):
                return Unchanged(result)
            con.execute("DELETE FROM analytics_snapshots")
            con.execute(
                "INSERT INTO analytics_snapshots SELECT * FROM new_snapshots ORDER BY snapshot_ts, symbol"
            )
        finally:
            con.unregister("new_snapshots")
        con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('analytics_cadence', ?), ('analytics_lookback', ?)",
            [config.cadence, str(config.lookback)],
        )
        result.published = True
        result.content_version = content_version(con)
        return result

    return publish(db_path, apply, lock_timeout_s)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="producer_analytics")
def main(cfg: DictConfig) -> None:
    """Recompute the analytics snapshots of ``db.path`` and print a one-line summary."""
    configure_logging()
    config = typed(cfg.analytics, AnalyticsConfig, "analytics")
    publish_cfg = typed(cfg.publish, PublishConfig, "publish")
    check_db_file(cfg.db.path, must_exist=False)  # refuse a FIFO or a CSV before any work
    logger.info(
        "analytics: cadence {}, lookback {} bars, from {}",
        config.cadence,
        config.lookback,
        cfg.db.path,
    )
    result = run_analytics(cfg.db.path, config, publish_cfg.lock_timeout_s)
    what = f"{result.rows} rows ({result.snapshots} snapshots x up to {result.symbols} symbols)"
    if not result.published:
        print(
            f"analytics: snapshots in {cfg.db.path} are already up to date ({what}); nothing to do."
        )
        return
    print(f"analytics: wrote {what} to {cfg.db.path}, content version {result.content_version}")


if __name__ == "__main__":
    run_cli(main, interrupted=producer_interrupted)
