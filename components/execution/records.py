"""Results DB layout: one record type per table, shared by the broker, the write buffer, the digest
and the reports.

Each table has a ``NamedTuple`` whose field order is the column order (``TABLES`` is derived from
them, so the two cannot drift apart); code reads rows by field name (``trade.pnl``), never by
position. Timestamps travel as epoch microseconds (UTC) in memory and become TIMESTAMPTZ on disk.
``DIGEST_TABLES`` are the trading records the parity digest covers (DESIGN section 6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import pyarrow as pa

# ``new_row(FillRow, (...))`` builds a record from a complete tuple of its fields in one C call;
# a NamedTuple's own constructor is a Python function (about twice the cost) and the loop makes
# several records per order. Use it only with every field given, in declaration order.
new_row = tuple.__new__


def record_columns(rows: Sequence[tuple]) -> dict[str, tuple]:
    """Return records (``NamedTuple`` rows of one type) as their columns by field name, in one
    transpose; ``{}`` for no rows."""
    return dict(zip(rows[0]._fields, zip(*rows, strict=True), strict=True)) if rows else {}  # type: ignore[attr-defined]


TS = ("TIMESTAMPTZ", pa.timestamp("us", tz="UTC"))
INT = ("BIGINT", pa.int64())
DBL = ("DOUBLE", pa.float64())
STR = ("VARCHAR", pa.string())


class InsightRow(NamedTuple):
    seq: int
    ts: int
    symbol: str
    strategy: str
    view: str  # long | flat | short
    reason: str
    value: float
    reference: float


class SignalRow(NamedTuple):
    seq: int
    ts: int
    symbol: str
    side: str  # buy | sell
    quantity: int  # units (percent_equity: the estimate at the decision close; the fill recomputes)
    reason: str
    insight_seq: int
    order_type: str  # market | limit | stop | stop_limit
    limit_price: float | None
    stop_price: float | None
    tif: str  # gtc | day
    stop_loss: float | None  # bracket level (price) attached to an entry, None = none
    take_profit: float | None
    intent: str  # open (entry) | close (exit) | reverse (first leg of a reversal)


class FillRow(NamedTuple):
    seq: int
    ts: int
    symbol: str
    side: str
    quantity: int  # units of this fill (a partial fill carries only its part)
    price: float  # fill price, after spread on entries
    order_ts: int
    signal_seq: int
    fees: float  # commission of this fill
    remaining: int  # units of the order still working after this fill (0 = done)
    reason: str  # entry | signal | reverse | stop_loss | take_profit | flatten


class TradeRow(NamedTuple):
    seq: int
    symbol: str
    entry_ts: int
    entry_price: float  # fill price after spread
    exit_ts: int
    exit_price: float
    size: int  # signed: negative = short
    fees: float  # both commissions (the entry's share and the exit's)
    pnl: float  # size * (exit - entry) - fees
    exit_reason: str  # signal | reverse | stop_loss | take_profit | flatten


class DenialRow(NamedTuple):
    seq: int
    ts: int
    symbol: str
    side: str
    quantity: int
    code: str
    observed: float | None
    limit_value: float | None
    signal_seq: int


def record_denial(
    record: Callable[[str, tuple], None],
    next_seq: Callable[[], int],
    symbols: tuple[str, ...],
    ts: int,
    sym: int,
    side: str,
    quantity: int,
    code: str,
    observed: float | None,
    limit: float | None,
    signal_seq: int,
) -> None:
    """Record one refusal or cancellation (the handler's ``_deny`` and the unbound broker's)."""
    record(
        "denials",
        DenialRow(next_seq(), ts, symbols[sym], side, quantity, code, observed, limit, signal_seq),
    )


class EquityRow(NamedTuple):
    ts: int
    cash: float
    equity: float


class KillSwitchEventRow(NamedTuple):
    ts: int
    wall_time: int
    state_from: str
    state_to: str
    code: str
    reason: str
    observed: float | None
    limit_value: float | None
    actor: str


_SQL = {int: INT, float: DBL, str: STR}
_TS_FIELDS = {"ts", "entry_ts", "exit_ts", "order_ts", "wall_time"}
RECORDS: dict[str, type] = {
    "insights": InsightRow,
    "signals": SignalRow,
    "fills": FillRow,
    "trades": TradeRow,
    "denials": DenialRow,
    "equity": EquityRow,
    "kill_switch_events": KillSwitchEventRow,
}


def _column_type(record: type, name: str) -> tuple[str, pa.DataType]:
    if name in _TS_FIELDS:
        return TS
    hint = record.__annotations__[name]
    annotation = str(getattr(hint, "__forward_arg__", hint)).split("|")[0].strip()
    return _SQL[{"int": int, "float": float, "str": str}[annotation]]


TABLES: dict[str, list[tuple[str, tuple[str, pa.DataType]]]] = {
    table: [(name, _column_type(record, name)) for name in record._fields]  # type: ignore[attr-defined]
    for table, record in RECORDS.items()
}
DIGEST_TABLES = ("insights", "signals", "fills", "trades", "denials")

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,            -- running -> completed | halted | interrupted | failed
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    config_hash VARCHAR NOT NULL,
    market_db VARCHAR NOT NULL,
    market_db_version BIGINT NOT NULL,
    digest VARCHAR,
    stopped_at_ts TIMESTAMPTZ,
    message VARCHAR
)
"""


# the ``runs`` row as Arrow (a multirun job's results/runs.parquet), in RUNS_DDL's column order
RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("started_at", TS[1]),
        ("ended_at", TS[1]),
        ("config_hash", pa.string()),
        ("market_db", pa.string()),
        ("market_db_version", pa.int64()),
        ("digest", pa.string()),
        ("stopped_at_ts", TS[1]),
        ("message", pa.string()),
    ]
)


def results_ddl() -> str:
    """Return the CREATE TABLE statements of every results table."""
    stmts = [RUNS_DDL]
    for name, cols in TABLES.items():
        body = ", ".join(f"{col} {sql}" for col, (sql, _) in cols)
        stmts.append(f"CREATE TABLE IF NOT EXISTS {name} ({body})")
    return ";\n".join(stmts) + ";"


def arrow_schema(table: str) -> pa.Schema:
    """Return the Arrow schema of a results table."""
    return pa.schema([(col, arrow) for col, (_, arrow) in TABLES[table]])
