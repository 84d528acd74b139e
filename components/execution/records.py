"""Results DB layout: one spec per table, shared by the write buffer, the digest and the reports.

Timestamps travel as epoch microseconds (UTC) in memory and become TIMESTAMPTZ on disk.
``DIGEST_TABLES`` are the trading records the parity digest covers (DESIGN section 6).
"""

from __future__ import annotations

import pyarrow as pa

TS = ("TIMESTAMPTZ", pa.timestamp("us", tz="UTC"))
INT = ("BIGINT", pa.int64())
DBL = ("DOUBLE", pa.float64())
STR = ("VARCHAR", pa.string())

TABLES: dict[str, list[tuple[str, tuple[str, pa.DataType]]]] = {
    "insights": [
        ("seq", INT),
        ("ts", TS),
        ("symbol", STR),
        ("strategy", STR),
        ("view", STR),
        ("reason", STR),
        ("value", DBL),
        ("reference", DBL),
    ],
    "signals": [
        ("seq", INT),
        ("ts", TS),
        ("symbol", STR),
        ("side", STR),
        ("quantity", INT),
        ("reason", STR),
        ("insight_seq", INT),
    ],
    "fills": [
        ("seq", INT),
        ("ts", TS),
        ("symbol", STR),
        ("side", STR),
        ("quantity", INT),
        ("price", DBL),
        ("order_ts", TS),
        ("signal_seq", INT),
    ],
    "trades": [
        ("seq", INT),
        ("symbol", STR),
        ("entry_ts", TS),
        ("entry_price", DBL),
        ("exit_ts", TS),
        ("exit_price", DBL),
        ("size", INT),
        ("pnl", DBL),
    ],
    "denials": [
        ("seq", INT),
        ("ts", TS),
        ("symbol", STR),
        ("side", STR),
        ("quantity", INT),
        ("code", STR),
        ("observed", DBL),
        ("limit_value", DBL),
        ("signal_seq", INT),
    ],
    "equity": [("ts", TS), ("cash", DBL), ("equity", DBL)],
    "kill_switch_events": [
        ("ts", TS),
        ("wall_time", TS),
        ("state_from", STR),
        ("state_to", STR),
        ("code", STR),
        ("reason", STR),
        ("observed", DBL),
        ("limit_value", DBL),
        ("actor", STR),
    ],
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
