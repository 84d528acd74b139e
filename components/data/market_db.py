"""Market DB layout (DESIGN section 4): DDL and the content-version helpers both sides share."""

from __future__ import annotations

import duckdb

DDL = """
CREATE TABLE IF NOT EXISTS bars (
    symbol VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume DOUBLE NOT NULL,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS datasets (
    path VARCHAR NOT NULL,
    sha256 VARCHAR PRIMARY KEY,
    rows BIGINT NOT NULL,
    symbols VARCHAR NOT NULL,
    first_ts TIMESTAMPTZ,
    last_ts TIMESTAMPTZ,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_snapshots (
    snapshot_ts TIMESTAMPTZ NOT NULL,
    symbol VARCHAR NOT NULL,
    trailing_return DOUBLE NOT NULL,
    volatility DOUBLE NOT NULL,
    return_rank DOUBLE NOT NULL,
    PRIMARY KEY (snapshot_ts, symbol)
);
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the market DB tables when missing (producers only)."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(DDL)


def content_version(con: duckdb.DuckDBPyConnection) -> int:
    """Return the DB's content version (0 when never published)."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'content_version'").fetchone()
    except duckdb.CatalogException:
        return 0
    return int(row[0]) if row else 0


def bump_content_version(con: duckdb.DuckDBPyConnection) -> int:
    """Increment and return the content version; call inside the producer's transaction."""
    version = content_version(con) + 1
    con.execute(
        "INSERT OR REPLACE INTO meta VALUES ('content_version', ?), ('published_at', CAST(now() AS VARCHAR))",
        [str(version)],
    )
    return version


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Return True when ``name`` exists in the main schema."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(row and row[0])
