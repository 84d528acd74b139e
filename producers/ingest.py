"""``python -m producers.ingest source=<file or glob> db.path=<db> [symbol=X] [tz=Zone]``.

Reads CSV or Parquet in the uniform format ``symbol,ts,open,high,low,close,volume`` (names are
case-insensitive; ``ts`` may be called ``date``, ``datetime`` or ``timestamp``), validates the
whole input lazily against ``OhlcvBars`` and publishes it in one transaction, or writes nothing
and lists the failing rows (file, line, column, check, value). Re-ingesting a file whose sha256
is in ``datasets`` is a no-op.

Rows for a (symbol, ts) already in the DB: identical values are skipped; different values are
a conflict (exit 2, nothing written) unless ``on_conflict=replace``, which overwrites them.
"""

from __future__ import annotations

import bisect
import csv
import glob
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import hydra
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from hydra.core.config_store import ConfigStore
from loguru import logger
from omegaconf import DictConfig

from components.cli import run_cli
from components.data.config import DbConfig
from components.data.market_db import content_version
from components.data.schemas import BAR_COLUMNS, OhlcvBars, collect_failures, format_failures
from components.errors import ConfigError, DataValidationError, UserFacingError
from producers.common import CONF_DIR, configure_logging, producer_interrupted, typed
from producers.publish import PublishConfig, Unchanged, publish
from producers.store import (
    DatasetRecord,
    WriteResult,
    _known,
    check_on_conflict,
    known_hashes,
    merge_bars,
    record_dataset,
)

UNIFORM = "symbol,ts,open,high,low,close,volume"
TS_ALIASES = ("ts", "date", "datetime", "timestamp")
NUMBER_COLUMNS = ["open", "high", "low", "close", "volume"]
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
FAILURE_COLUMNS = ["index", "column", "check", "value"]
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_NAN_TEXT = {"nan", "+nan", "-nan"}


class SourceError(UserFacingError, ValueError):
    """An input file cannot be read as bars (missing, unreadable, wrong format or columns)."""


@dataclass
class IngestAppConfig:
    db: DbConfig = field(default_factory=DbConfig)
    source: str | None = None  # file or glob (CSV or Parquet), relative to the working directory
    symbol: str | None = None  # symbol for files without a symbol column
    tz: str = "UTC"  # IANA zone of naive timestamps (stamps with an offset keep theirs)
    on_conflict: str = "error"  # error | replace: stored bars (same symbol, ts) with other values
    sep: str = ","  # CSV field separator: one character, or tab / semicolon / comma / pipe by name
    publish: PublishConfig = field(default_factory=PublishConfig)


ConfigStore.instance().store(name="producer_ingest_schema", node=IngestAppConfig)


@dataclass
class SourceFile:
    """One input file: its bytes (read once), hash, and parsed bars."""

    path: Path
    data: bytes
    sha256: str
    frame: pd.DataFrame | None = None
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FAILURE_COLUMNS))
    _lines: np.ndarray | None = None

    @classmethod
    def read(cls, path: Path) -> SourceFile:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(
                f"cannot read {path}: {exc.strerror}; check the path and its permissions."
            ) from None
        return cls(path=path, data=data, sha256=hashlib.sha256(data).hexdigest())

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix.lower() in PARQUET_SUFFIXES

    def where(self, row: int) -> str:
        """Return where data row ``row`` (0-based) is: a CSV line number or a Parquet row number."""
        if self.is_parquet:
            return f"{self.path.name} row {row + 1}"
        if self._lines is None:
            self._lines = _nonblank_line_numbers(self.data)
        line = self._lines[row + 1] if row + 1 < len(self._lines) else row + 2
        return f"{self.path.name} line {line}"


def _nonblank_line_numbers(data: bytes) -> np.ndarray:
    """Return the 1-based numbers of the non-blank lines (pyarrow skips blank lines)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    starts = np.concatenate([[0], ends + 1])
    stops = np.concatenate([ends, [len(raw)]])
    lengths = stops - starts
    has_cr = (lengths > 0) & (raw[np.maximum(stops - 1, 0)] == 13)
    return np.flatnonzero(lengths - has_cr > 0) + 1


def resolve_sources(source: str | None) -> list[Path]:
    """Return the files ``source`` names (a path or a glob), sorted; raise SourceError if none."""
    if not source:
        raise ConfigError(
            "source is required: name a CSV/Parquet file or a glob, e.g. "
            "`python -m producers.ingest source=data/prices.csv db.path=outputs/market/demo.duckdb`."
        )
    if glob.has_magic(source):
        paths = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
        if not paths:
            raise SourceError(
                f"source={source!r} matches no file (relative to {Path.cwd()}); check the pattern, "
                "e.g. source='data/*.csv'."
            )
        return paths
    path = Path(source)
    if path.is_dir():
        raise SourceError(
            f"source={source!r} is a directory; name the files, e.g. source='{source.rstrip('/')}/*.csv'."
        )
    if not path.exists():
        raise SourceError(
            f"source file {source!r} not found (relative to {Path.cwd()}); check the path."
        )
    if not path.is_file():  # a FIFO, socket or device: reading it could block forever
        raise SourceError(
            f"source={source!r} is not a regular file (a named pipe, socket or device); copy the data "
            "into a CSV or Parquet file and name that file."
        )
    return [path]


SEP_NAMES = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|", "space": " "}


def check_sep(sep: str) -> str:
    """Return the one-character CSV separator ``sep`` names (``tab``, ``;``, ...), else raise."""
    value = SEP_NAMES.get(str(sep).lower(), str(sep))
    if len(value) != 1 or value in '"\r\n':
        raise ConfigError(
            f"sep must be one character or one of {', '.join(SEP_NAMES)}, was {sep!r}; e.g. sep=';' "
            "or sep=tab."
        )
    return value


def _sep_hint(header_line: str, sep: str) -> str | None:
    """Return the separator a one-column header looks split by (``;`` or tab), else None."""
    if sep in header_line:
        return None
    for candidate in (";", "\t", "|"):
        if header_line.count(candidate) >= 2:
            return candidate
    return None


def check_tz(tz: str) -> str:
    """Return ``tz`` if it is an IANA zone name, else raise ConfigError."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"tz must be an IANA time zone name, was {tz!r}; e.g. tz=UTC, tz=Europe/Berlin, tz=America/New_York."
        ) from None
    return tz


# ---------------------------------------------------------------------------- reading one file


def read_table(src: SourceFile, sep: str = ",") -> pa.Table:
    """Return the raw table of ``src``: Parquet as stored, CSV with every column as text."""
    suffix = src.path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            return pq.read_table(pa.BufferReader(src.data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(
                f"{src.path}: not a readable Parquet file ({exc}); re-export it or check the file."
            ) from None
    if suffix not in CSV_SUFFIXES:
        raise SourceError(
            f"{src.path}: unsupported file type {suffix or '(none)'!r}; give CSV ({', '.join(CSV_SUFFIXES)}) "
            f"or Parquet ({', '.join(PARQUET_SUFFIXES)}) files."
        )
    return _read_csv(src, sep)


def _read_csv(src: SourceFile, sep: str = ",") -> pa.Table:
    """Read every column as text; only on failure decode in Python to say what is wrong and where."""
    data = src.data.removeprefix(b"\xef\xbb\xbf")
    end = data.find(b"\n")
    try:
        header_line = (data if end < 0 else data[:end]).decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise _not_utf8(src, data) from None
    guess = _sep_hint(header_line, sep)
    if guess is not None:
        shown = "tab" if guess == "\t" else f"'{guess}'"
        raise SourceError(
            f"{src.path}: looks {shown}-separated (header {header_line[:60]!r}); pass sep={shown}, e.g. "
            f"`python -m producers.ingest source={src.path} sep={shown} db.path=<db>`."
        )
    try:
        header = next(csv.reader([header_line], delimiter=sep), [])
    except csv.Error as exc:  # e.g. a bare carriage return inside the header line
        raise SourceError(
            f"{src.path}: malformed CSV header line ({exc}); expected the header {UNIFORM}."
        ) from None
    if not any(name.strip() for name in header):
        raise SourceError(
            f"{src.path}: the file is empty (no header line); expected the header {UNIFORM}."
        )
    try:
        names = _column_names(header)
        read_options = pcsv.ReadOptions(column_names=names, skip_rows=1) if names else None
        return pcsv.read_csv(
            pa.BufferReader(data),
            parse_options=pcsv.ParseOptions(delimiter=sep),
            read_options=read_options,
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in names or header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_utf8(src, data) from None
        raise SourceError(f"{src.path}: malformed CSV: {_csv_problem(str(exc), text)}") from None


def _column_names(header: list[str]) -> list[str] | None:
    """Name an unnamed first column (pandas' index: ``,Open,High,...``) so it can become ``ts``."""
    if header and header[0].strip() == "" and all(h.strip() for h in header[1:]):
        return ["ts", *header[1:]]
    return None


def _not_utf8(src: SourceFile, data: bytes) -> SourceError:
    try:
        data.decode("utf-8")
        start = 0
    except UnicodeDecodeError as exc:
        start = exc.start
    line = data[:start].count(b"\n") + 1
    return SourceError(
        f"{src.path}: not UTF-8 text (byte 0x{data[start]:02x} on line {line}); re-save it as "
        "UTF-8 CSV, or give a Parquet file a .parquet name."
    )


def _csv_problem(message: str, text: str) -> str:
    """Return pyarrow's parse error with the line number added and a fix."""
    message = message.removeprefix("CSV parse error: ")
    bad = message.rsplit(": ", 1)[-1] if ": " in message else ""
    lines = text.splitlines()
    line = next((k + 1 for k, candidate in enumerate(lines) if bad and candidate == bad), None)
    where = f" on line {line}" if line else ""
    return f"{message}{where}; every row needs the same fields as the header ({UNIFORM})."


def column_map(src: SourceFile, names: list[str], symbol: str | None) -> dict[str, str]:
    """Map our column names to the file's; raise SourceError for missing or ambiguous columns."""
    by_name: dict[str, str] = {}
    for name in names:
        key = name.strip().lower()
        key = "ts" if key in TS_ALIASES else key
        if key in by_name:
            raise SourceError(
                f"{src.path}: columns {by_name[key]!r} and {name!r} both mean {key!r}; keep one of them."
            )
        by_name[key] = name
    wanted = [c for c in BAR_COLUMNS if not (c == "symbol" and symbol)]
    missing = [c for c in wanted if c not in by_name]
    if missing:
        hint = " or pass symbol=<name> for a one-symbol file" if missing == ["symbol"] else ""
        raise SourceError(
            f"{src.path}: missing column(s) {', '.join(missing)} (found: {', '.join(names)}); expected "
            f"{UNIFORM} (case-insensitive; ts may be named date, datetime or timestamp){hint}."
        )
    if symbol and "symbol" in by_name:
        raise SourceError(
            f"{src.path}: has a symbol column, so symbol={symbol} would be ambiguous; drop symbol= or the column."
        )
    extra = [by_name[k] for k in by_name if k not in BAR_COLUMNS]
    if extra:
        logger.warning("{}: ignoring column(s) {}", src.path.name, ", ".join(extra))
    return {c: by_name[c] for c in wanted}


def parse_numbers(values: pa.ChunkedArray, column: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Return float64 values and failures (text that is not a number keeps its original text)."""
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        try:
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), _no_failures()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = pc.cast(values, pa.string())
    try:
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), _no_failures()
    except pa.ArrowInvalid:
        pass  # slow path below finds every bad cell, not just the first
    text = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object).fillna("")
    numbers = pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(dtype="float64")
    bad = np.isnan(numbers) & ~text.str.strip().str.lower().isin(_NAN_TEXT).to_numpy()
    rows = np.flatnonzero(bad)
    checks = ["missing value" if text.iat[r].strip() == "" else "not a number" for r in rows]
    return numbers, _failures(rows, column, checks, text.to_numpy()[rows])


def parse_timestamps(values: pa.ChunkedArray, tz: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Return UTC timestamps (datetime64[us]) and failures; naive stamps are in ``tz``."""
    kind = values.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            return pc.cast(values, pa.timestamp("us", tz="UTC")).to_numpy(
                zero_copy_only=False
            ), _no_failures()
        return _localize(
            pc.cast(values, pa.timestamp("us")).to_numpy(zero_copy_only=False), tz, None
        )
    if pa.types.is_date(kind):
        return _localize(
            pc.cast(pc.cast(values, pa.timestamp("s")), pa.timestamp("us")).to_numpy(
                zero_copy_only=False
            ),
            tz,
            None,
        )
    text = pc.cast(values, pa.string())
    try:
        naive = pc.cast(text, pa.timestamp("us")).to_numpy(zero_copy_only=False)
        return _localize(naive, tz, text)
    except pa.ArrowInvalid:
        pass
    try:
        return pc.cast(text, pa.timestamp("us", tz="UTC")).to_numpy(
            zero_copy_only=False
        ), _no_failures()
    except pa.ArrowInvalid:
        return _parse_timestamps_slowly(text, tz)


def _parse_timestamps_slowly(text: pa.ChunkedArray, tz: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Parse row by row to name every unparsable stamp and every row that mixes naive and offset."""
    raw = (
        pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
        .fillna("")
        .astype(str)
        .str.strip()
    )
    has_offset = raw.str.contains(_OFFSET).to_numpy(dtype=bool)
    aware = pd.to_datetime(raw.where(has_offset), errors="coerce", utc=True, format="ISO8601")
    naive = pd.to_datetime(raw.where(~has_offset), errors="coerce", format="ISO8601")
    parsed_ok = (aware.notna() | naive.notna()).to_numpy()
    result = aware.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    localized, dst_failures = _localize(
        naive.to_numpy(dtype="datetime64[us]"), tz, pa.chunked_array([raw.to_numpy()])
    )
    result = np.where(has_offset, result, localized)
    n_aware, n_naive = int((parsed_ok & has_offset).sum()), int((parsed_ok & ~has_offset).sum())
    mixed = np.zeros(len(raw), dtype=bool)
    if n_aware and n_naive:
        mixed = parsed_ok & (has_offset if n_aware < n_naive else ~has_offset)
    result[~parsed_ok | mixed] = np.datetime64("NaT")
    rows = np.flatnonzero(~parsed_ok | mixed)
    checks = [
        "missing value"
        if raw.iat[r] == ""
        else "unparsable timestamp (write ISO-8601, e.g. 2024-01-31T09:30:00)"
        if not parsed_ok[r]
        else "mixed time zones: some stamps carry a UTC offset and others do not; use one convention"
        for r in rows
    ]
    failures = _failures(rows, "ts", checks, raw.to_numpy()[rows])
    dst_failures = dst_failures[
        ~dst_failures["index"].isin(rows) & ~has_offset[dst_failures["index"].astype(int)]
    ]
    return result, pd.concat(
        [f for f in (failures, dst_failures) if len(f)] or [_no_failures()], ignore_index=True
    )


def _localize(
    naive: np.ndarray, tz: str, text: pa.ChunkedArray | None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Return naive local stamps in ``tz`` as UTC; DST gaps and repeats are failures."""
    index = pd.DatetimeIndex(naive)
    if tz == "UTC":
        return index.as_unit("us").to_numpy(), _no_failures()
    local = index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    lost = np.flatnonzero(local.isna() & index.notna())
    utc = local.tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()
    shown = [str(index[r]) if text is None else str(text[int(r)]) for r in lost]
    check = (
        f"ambiguous or non-existent local time in {tz} (DST change); give stamps with a UTC offset"
    )
    return utc, _failures(lost, "ts", [check] * len(lost), shown)


def _failures(rows: np.ndarray, column: str, checks: list[str], values: object) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": np.asarray(rows, dtype=np.int64),
            "column": column,
            "check": checks,
            "value": list(values),
        }
    )  # type: ignore[call-overload]


def _no_failures() -> pd.DataFrame:
    return pd.DataFrame(columns=FAILURE_COLUMNS)


def parse_source(src: SourceFile, symbol: str | None, tz: str, sep: str = ",") -> None:
    """Fill ``src.frame`` (BAR_COLUMNS, RangeIndex = data row) and ``src.failures`` (parse + schema)."""
    table = read_table(src, sep)
    columns = column_map(src, table.column_names, symbol)
    if table.num_rows == 0:
        raise SourceError(
            f"{src.path}: has a header but no data rows; give a file with bars or leave it out."
        )
    failures = []
    data: dict[str, object] = {}
    if symbol:
        data["symbol"] = pa.array([symbol] * table.num_rows, type=pa.string())
    else:
        data["symbol"] = pc.cast(table[columns["symbol"]], pa.string())
    ts, ts_failures = parse_timestamps(table[columns["ts"]], tz)
    # parse_timestamps returns naive UTC datetime64[us]; tag it as UTC without a copy
    data["ts"] = pa.array(ts.view("int64"), type=pa.timestamp("us", tz="UTC"), mask=np.isnat(ts))
    failures.append(ts_failures)
    for name in NUMBER_COLUMNS:
        values, number_failures = parse_numbers(table[columns[name]], name)
        data[name] = values
        failures.append(number_failures)
    frame = pa.table(data).to_pandas(split_blocks=True)  # zero-copy floats; str symbols; UTC ts
    parse_failures = pd.concat(
        [f for f in failures if len(f)] or [_no_failures()], ignore_index=True
    )
    validated, schema_failures = collect_failures(OhlcvBars, frame, inplace=True)
    src.frame = validated if validated is not None else frame
    src.failures = _merge_failures(parse_failures, schema_failures)


def _merge_failures(parse: pd.DataFrame, schema: pd.DataFrame) -> pd.DataFrame:
    """Combine parse and schema failures, dropping schema failures about cells that did not parse."""
    if len(parse) and len(schema):
        bad_cells = set(zip(parse["index"].astype(int), parse["column"], strict=True))

        def about_bad_cell(row: pd.Series) -> bool:
            if pd.isna(row["index"]):
                return False
            return any((int(row["index"]), c) in bad_cells for c in str(row["column"]).split(","))

        schema = schema[~schema.apply(about_bad_cell, axis=1)]
    merged = pd.concat(
        [f for f in (parse, schema) if len(f)] or [_no_failures()], ignore_index=True
    )
    order = pd.to_numeric(merged["index"], errors="coerce").fillna(-1).to_numpy()
    return merged.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


# ---------------------------------------------------------------------------- the whole input


@dataclass
class IngestPlan:
    """Files to write (new ones, parsed and valid) and files skipped as already ingested."""

    sources: list[SourceFile]
    skipped: list[SourceFile]


def cross_file_duplicates(sources: list[SourceFile]) -> list[pd.DataFrame]:
    """Return, per source, failures for (symbol, ts) rows that another input file also has."""
    if len(sources) < 2:
        return [_no_failures() for _ in sources]
    keys = pd.concat(
        [
            pd.DataFrame({"symbol": s.frame["symbol"], "ts": s.frame["ts"], "file": k})
            for k, s in enumerate(sources)
        ],  # type: ignore[index]
        ignore_index=True,
    )
    keys["row"] = np.concatenate([np.arange(len(s.frame)) for s in sources])  # type: ignore[arg-type]
    files_per_key = keys.groupby(["symbol", "ts"], sort=False)["file"].transform("nunique")
    dup = keys[files_per_key.to_numpy() > 1]
    out = []
    for k, _src in enumerate(sources):
        mine = dup[dup["file"] == k]
        others = [sources[j].path.name for j in sorted(set(dup["file"]) - {k})]
        values = [
            f"symbol={s}, ts={t.isoformat()}"
            for s, t in zip(mine["symbol"], mine["ts"], strict=True)
        ]
        check = f"(symbol, ts) also in another input file ({', '.join(others)})"
        out.append(_failures(mine["row"].to_numpy(), "symbol,ts", [check] * len(mine), values))
    return out


def plan_ingest(
    paths: list[Path], db_path: str, symbol: str | None, tz: str, sep: str = ","
) -> IngestPlan:
    """Read, parse and validate every new file; raise one DataValidationError listing all failures."""
    files = [SourceFile.read(p) for p in paths]
    known = known_hashes(db_path, [f.sha256 for f in files])
    seen: set[str] = set()
    todo, skipped = [], []
    for src in files:
        (skipped if src.sha256 in known or src.sha256 in seen else todo).append(src)
        seen.add(src.sha256)
    for src in todo:
        parse_source(src, symbol, tz, sep)
    _add_cross_file_failures(todo)
    _raise_if_invalid(todo)
    for src in todo:
        for warning in suspected_splits(src):
            logger.warning(warning)
    return IngestPlan(sources=todo, skipped=skipped)


# overnight moves that an unadjusted split (2:1, 3:1, 4:1, 3:2, 5:1) or reverse split leaves
SPLIT_RATIOS = {
    1 / 2: "2-for-1",
    1 / 3: "3-for-1",
    1 / 4: "4-for-1",
    1 / 5: "5-for-1",
    2 / 3: "3-for-2",
    2.0: "1-for-2 reverse",
    3.0: "1-for-3 reverse",
    4.0: "1-for-4 reverse",
}
SPLIT_TOLERANCE = 0.02  # relative distance from a split ratio that counts as "near"
MAX_SPLIT_WARNINGS = 5


def suspected_splits(src: SourceFile) -> list[str]:
    """Return warnings for bar-to-bar moves (open / previous close) near a split ratio.

    Prices that are not split-adjusted make a backtest trade through the split: a buy decided
    near 100 fills at 50.5. This is a warning, not a refusal: a real crash can look the same.
    """
    frame = src.frame
    if frame is None or len(frame) < 2:
        return []
    ordered = frame.sort_values(["symbol", "ts"], kind="stable")
    previous_close = ordered["close"].shift().where(ordered["symbol"].eq(ordered["symbol"].shift()))
    ratio = ordered["open"] / previous_close
    found: list[tuple[str, pd.Timestamp, str]] = []
    for target, name in SPLIT_RATIOS.items():
        near = ((ratio / target - 1).abs() <= SPLIT_TOLERANCE).to_numpy()
        for row in ordered.index[near]:
            bar = ordered.loc[row]
            found.append(
                (
                    bar["symbol"],
                    bar["ts"],
                    f"{src.path.name}: {bar['symbol']} opens at {bar['open']:g} on {bar['ts'].date()} after a "
                    f"close of {previous_close.loc[row]:g} ({(ratio.loc[row] - 1) * 100:+.0f} %): this looks "
                    f"like an unadjusted {name} split, and a backtest would trade through it; use "
                    "split-adjusted prices unless the move is real.",
                )
            )
    out = [message for _symbol, _ts, message in sorted(found)]
    return sorted(out)[:MAX_SPLIT_WARNINGS] + (
        [f"{src.path.name}: ... and {len(out) - MAX_SPLIT_WARNINGS} more suspected split(s)"]
        if len(out) > MAX_SPLIT_WARNINGS
        else []
    )


def _add_cross_file_failures(todo: list[SourceFile]) -> None:
    clean = [s for s in todo if s.frame is not None]
    for src, extra in zip(clean, cross_file_duplicates(clean), strict=True):
        if len(extra):
            src.failures = _merge_failures(src.failures, extra) if len(src.failures) else extra


def _raise_if_invalid(todo: list[SourceFile]) -> None:
    """Raise one DataValidationError listing the failures of every file (first 20 and the total)."""
    bad = [s for s in todo if len(s.failures)]
    if not bad:
        return
    offsets, tables, total = [], [], 0
    for src in bad:
        n_rows = len(src.frame)  # type: ignore[arg-type]
        table = src.failures.copy()  # whole-file failures get the index one past the last row
        table["index"] = [total + (n_rows if pd.isna(i) else int(i)) for i in table["index"]]
        offsets.append(total)
        total += n_rows + 1
        tables.append(table)

    def label(index: object) -> str:
        k = bisect.bisect_right(offsets, int(index)) - 1  # type: ignore[call-overload]
        row = int(index) - offsets[k]  # type: ignore[call-overload]
        return f"{bad[k].path.name} (whole file)" if row == len(bad[k].frame) else bad[k].where(row)  # type: ignore[arg-type]

    combined = pd.concat(tables, ignore_index=True)
    report = format_failures(combined, row_label=label)
    files = ", ".join(s.path.name for s in bad)
    raise DataValidationError(
        f"{len(combined)} invalid value(s) in {files}; nothing was written. Fix the rows below "
        f"(first {min(20, len(combined))} of {len(combined)}) and run again:\n{report}",
        report=report,
        n_failures=len(combined),
    )


def ingest(
    source: str | None,
    db_path: str,
    *,
    symbol: str | None = None,
    tz: str = "UTC",
    on_conflict: str = "error",
    lock_timeout_s: float = 60.0,
    sep: str = ",",
) -> tuple[WriteResult, IngestPlan]:
    """Ingest ``source`` into the market DB at ``db_path``; return what was written and skipped."""
    check_tz(tz)
    check_on_conflict(on_conflict)
    sep = check_sep(sep)
    plan = plan_ingest(resolve_sources(source), db_path, symbol, tz, sep)
    records = [DatasetRecord.of(str(s.path.resolve()), s.sha256, s.frame) for s in plan.sources]  # type: ignore[arg-type]
    result = WriteResult(db_path=db_path, datasets=records)
    if not plan.sources:
        return result, plan
    bars = pd.concat([s.frame for s in plan.sources], ignore_index=True)
    label = ", ".join(s.path.name for s in plan.sources)

    def apply(con: duckdb.DuckDBPyConnection) -> WriteResult | Unchanged[WriteResult]:
        if _known(con, [r.sha256 for r in records]) == {r.sha256 for r in records}:
            return Unchanged(result)
        result.rows_new, result.rows_identical, result.rows_replaced = merge_bars(
            con, bars, label, on_conflict
        )
        for record in records:
            record_dataset(con, record)
        result.published = True
        result.content_version = content_version(con)
        return result

    return publish(db_path, apply, lock_timeout_s), plan


def summary(result: WriteResult, plan: IngestPlan) -> str:
    """Return the one-line outcome printed by the CLI."""
    skipped = ", ".join(f"{s.path.name} (sha256 {s.sha256[:12]})" for s in plan.skipped)
    if not result.published:
        return f"ingest: already ingested, nothing to do: {skipped or 'no new file'} in {result.db_path}."
    note = f"; skipped as already ingested: {skipped}" if skipped else ""
    present = f", {result.rows_identical} already present" if result.rows_identical else ""
    replaced = f", {result.rows_replaced} replaced" if result.rows_replaced else ""
    return (
        f"ingest: {result.rows_new} new bars{present}{replaced}; {len(result.symbols)} symbol(s) "
        f"{','.join(result.symbols)}; {result.first_ts.isoformat()} .. {result.last_ts.isoformat()}; "  # type: ignore[union-attr]
        f"into {result.db_path}, content version {result.content_version}{note}."
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="producer_ingest")
def main(cfg: DictConfig) -> None:
    """Ingest ``source`` into ``db.path`` and print a one-line summary."""
    configure_logging()
    publish_cfg = typed(cfg.publish, PublishConfig, "publish")
    result, plan = ingest(
        cfg.source,
        cfg.db.path,
        symbol=cfg.symbol,
        tz=cfg.tz,
        on_conflict=cfg.on_conflict,
        lock_timeout_s=publish_cfg.lock_timeout_s,
        sep=cfg.sep,
    )
    print(summary(result, plan))
    if result.published:
        logger.info(
            "refresh the analytics snapshots with `python -m producers.analytics db.path={}`",
            cfg.db.path,
        )


if __name__ == "__main__":
    run_cli(main, interrupted=producer_interrupted)
