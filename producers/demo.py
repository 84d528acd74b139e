"""``python -m producers.demo``: seeded synthetic minute bars into the market DB.

Each symbol follows a geometric random walk with its own drift and volatility. Symbols start
at different offsets (unequal histories) and miss some minutes (holes of 1-10 bars), so the
demo exercises the same irregularities as real data. The same settings give the same bars, and
a second run with the same settings is a no-op (the dataset's sha256 is in ``datasets``).

    python -m producers.demo db.path=outputs/market/demo.duckdb demo.seed=7 demo.n_symbols=5
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import hydra
import numpy as np
import pandas as pd
import pyarrow as pa
from hydra.core.config_store import ConfigStore
from loguru import logger
from omegaconf import DictConfig

from components.cli import run_cli
from components.data.config import DbConfig
from components.data.duckdb_client import check_db_file
from components.timestamps import parse_timestamp
from producers.common import CONF_DIR, configure_logging, producer_interrupted, typed
from producers.publish import PublishConfig
from producers.store import WriteResult, check_on_conflict, write_bars

GENERATOR_VERSION = 1  # bump when generate_bars changes its output for the same settings


@dataclass
class DemoConfig:
    seed: int = 7  # random seed; the same settings always give the same bars
    n_symbols: int = 5  # number of symbols (SYM00, SYM01, ...)
    n_bars: int = 20_000  # clock steps of the longest history (before holes are cut)
    freq: str = "1min"  # bar interval, a pandas offset such as 1min, 5min, 1h
    start: str = "2024-01-01T00:00:00Z"  # first bar of the longest history (UTC when no offset)
    stagger: float = 0.5  # fraction of the history the last symbol misses at the start
    gap_rate: float = 0.002  # probability that a hole (1-10 missing bars) starts at a bar

    def __post_init__(self) -> None:
        if self.n_symbols < 1 or self.n_bars < 2:
            raise ValueError(
                f"demo.n_symbols must be >= 1 and demo.n_bars >= 2, were {self.n_symbols} and "
                f"{self.n_bars}; try demo.n_symbols=5 demo.n_bars=20000"
            )
        if not 0.0 <= self.stagger < 1.0 or not 0.0 <= self.gap_rate < 0.5:
            raise ValueError(
                f"demo.stagger must be in [0, 1) and demo.gap_rate in [0, 0.5), were {self.stagger} "
                f"and {self.gap_rate}; try demo.stagger=0.5 demo.gap_rate=0.002"
            )
        parse_timestamp(self.start, "demo.start")  # ISO-8601 only (issue 14)
        try:
            pd.Timedelta(pd.tseries.frequencies.to_offset(self.freq))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"demo.freq and demo.start must be a fixed pandas interval and a timestamp, were "
                f"{self.freq!r} and {self.start!r} ({exc}); try demo.freq=1min demo.start=2024-01-01"
            ) from None


@dataclass
class DemoAppConfig:
    db: DbConfig = field(default_factory=DbConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    on_conflict: str = "error"  # error | replace: what to do with stored bars that differ


ConfigStore.instance().store(name="producer_demo_schema", node=DemoAppConfig)


def generate_bars(
    seed: int,
    n_symbols: int = 5,
    n_bars: int = 20_000,
    freq: str = "1min",
    start: str = "2024-01-01T00:00:00Z",
    stagger: float = 0.5,
    gap_rate: float = 0.002,
) -> pd.DataFrame:
    """Return seeded synthetic OHLCV bars ordered by (ts, symbol); columns ``BAR_COLUMNS``.

    Vectorised over a (n_bars, n_symbols) grid, so 1M rows take well under a second. Symbol k
    starts ``round(n_bars * stagger * k / n_symbols)`` bars late; holes are cut per symbol.
    ``stagger=0, gap_rate=0`` gives exactly ``n_symbols * n_bars`` rows.
    """
    rng = np.random.default_rng(seed)
    width = max(2, len(str(n_symbols - 1)))
    names = np.array([f"SYM{k:0{width}d}" for k in range(n_symbols)], dtype=object)
    close, open_, high, low, volume = _random_walk(rng, n_bars, n_symbols)
    present = _presence(rng, n_bars, n_symbols, stagger, gap_rate)
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    first = pd.Timestamp(start)
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    clock = first.as_unit("us").to_datetime64() + np.arange(n_bars) * step.to_timedelta64().astype(
        "m8[us]"
    )
    flat = present.ravel()  # C order: ts-major, then symbol, i.e. sorted by (ts, symbol)
    codes = np.tile(np.arange(n_symbols, dtype=np.int32), n_bars)[flat]
    stamps = np.repeat(clock.astype("datetime64[us]").view("int64"), n_symbols)[flat]
    # Build through Arrow: one copy per column, and the symbol column stays Arrow-backed text.
    table = pa.table(
        {
            "symbol": pa.DictionaryArray.from_arrays(
                codes, pa.array(names.tolist())
            ).dictionary_decode(),
            "ts": pa.array(stamps, type=pa.timestamp("us", tz="UTC")),
            "open": open_.ravel()[flat],
            "high": high.ravel()[flat],
            "low": low.ravel()[flat],
            "close": close.ravel()[flat],
            "volume": volume.ravel()[flat],
        }
    )
    return table.to_pandas(split_blocks=True)  # one block per column: no consolidation copy


def _random_walk(rng: np.random.Generator, n_bars: int, n_symbols: int) -> tuple[np.ndarray, ...]:
    """Return close, open, high, low, volume grids of shape (n_bars, n_symbols); OHLC valid."""
    start_price = rng.uniform(20.0, 500.0, n_symbols)
    sigma = rng.uniform(0.0005, 0.002, n_symbols)  # per-bar log-return volatility
    drift = rng.normal(0.0, 0.00005, n_symbols)
    log_close = np.log(start_price) + np.cumsum(
        drift + sigma * rng.standard_normal((n_bars, n_symbols)), axis=0
    )
    close = np.exp(log_close)
    previous = np.vstack([start_price[None, :], close[:-1]])
    open_ = previous * np.exp(0.25 * sigma * rng.standard_normal((n_bars, n_symbols)))
    wick = np.abs(rng.standard_normal((2, n_bars, n_symbols))) * 0.5 * sigma
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.floor(rng.lognormal(7.0, 1.0, (n_bars, n_symbols)))
    # Round to a 0.0001 tick; rounding is monotone, so high >= max(open, close) >= min >= low holds.
    return (*tuple(np.round(a, 4) for a in (close, open_, high, low)), volume)


def _presence(
    rng: np.random.Generator, n_bars: int, n_symbols: int, stagger: float, gap_rate: float
) -> np.ndarray:
    """Return a (n_bars, n_symbols) mask: False before a symbol's start and inside its holes."""
    offsets = np.round(n_bars * stagger * np.arange(n_symbols) / n_symbols).astype(int)
    present = np.arange(n_bars)[:, None] >= offsets[None, :]
    if gap_rate > 0:
        starts = rng.random((n_bars, n_symbols)) < gap_rate
        lengths = rng.integers(1, 11, (n_bars, n_symbols))
        cover = np.zeros((n_bars + 11, n_symbols), dtype=np.int32)
        rows, cols = np.nonzero(starts)
        np.add.at(cover, (rows, cols), 1)
        np.add.at(cover, (rows + lengths[rows, cols], cols), -1)
        in_hole = np.cumsum(cover, axis=0)[:n_bars] > 0
        in_hole[offsets, np.arange(n_symbols)] = False  # every symbol keeps its first bar
        present &= ~in_hole
    return present


def settings_sha256(config: DemoConfig) -> str:
    """Return the dataset id of ``config``: the same settings always produce the same bars."""
    payload = json.dumps({"generator": GENERATOR_VERSION, **asdict(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def run_demo(
    db_path: str, config: DemoConfig, lock_timeout_s: float = 60.0, on_conflict: str = "error"
) -> WriteResult:
    """Generate the bars of ``config`` and publish them (no-op when already in the DB)."""
    bars = generate_bars(**asdict(config))
    label = "demo:" + ",".join(f"{k}={v}" for k, v in asdict(config).items())
    return write_bars(
        db_path,
        bars,
        label,
        sha256=settings_sha256(config),
        lock_timeout_s=lock_timeout_s,
        on_conflict=on_conflict,
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="producer_demo")
def main(cfg: DictConfig) -> None:
    """Write the seeded demo bars into ``db.path`` and print a one-line summary."""
    configure_logging()
    config = typed(cfg.demo, DemoConfig, "demo")
    publish_cfg = typed(cfg.publish, PublishConfig, "publish")
    check_db_file(cfg.db.path, must_exist=False)  # refuse a FIFO or a CSV before any work
    logger.info(
        "demo: generating {} symbols x {} bars (seed {}) for {}",
        config.n_symbols,
        config.n_bars,
        config.seed,
        cfg.db.path,
    )
    on_conflict = check_on_conflict(cfg.on_conflict)
    result = run_demo(cfg.db.path, config, publish_cfg.lock_timeout_s, on_conflict)
    if not result.published:
        print(f"demo: these bars (seed={config.seed}) are already in {cfg.db.path}; nothing to do.")
        return
    print(
        f"demo: wrote {result.rows_new} bars of {len(result.symbols)} symbols "
        f"({result.first_ts} .. {result.last_ts}) to {cfg.db.path}, content version {result.content_version}"
    )


if __name__ == "__main__":
    run_cli(main, interrupted=producer_interrupted)
