"""trades.csv is written a column at a time; its bytes must be ``csv.writer``'s, row by row."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from components.execution.records import TradeRow
from runner import outputs

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_US = (dt.datetime(1, 1, 1, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1)
_MAX_US = (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(
    microseconds=1
)


def _expected(trades: list[TradeRow]) -> bytes:
    """What one ``writerow`` per trade writes (the contract's columns, floats as ``repr``)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(outputs.TRADE_COLUMNS)
    for t in trades:
        writer.writerow(
            [
                t.symbol,
                (_EPOCH + dt.timedelta(microseconds=t.entry_ts)).isoformat(),
                repr(float(t.entry_price)),
                (_EPOCH + dt.timedelta(microseconds=t.exit_ts)).isoformat(),
                repr(float(t.exit_price)),
                t.size,
                repr(float(t.fees)),
                repr(float(t.pnl)),
                t.exit_reason,
            ]
        )
    return out.getvalue().encode()


_stamps = st.one_of(
    st.integers(_MIN_US, _MAX_US),
    st.integers(0, 10**6).map(lambda k: 1_700_000_000_000_000 + k * 60_000_000),  # whole minutes
)
_prices = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6))
_trade = st.builds(
    TradeRow,
    seq=st.integers(0, 10**6),
    symbol=st.one_of(st.sampled_from(["GOOG", "SYM01", "BRK.B"]), st.text(max_size=6)),
    entry_ts=_stamps,
    entry_price=_prices,
    exit_ts=_stamps,
    exit_price=_prices,
    size=st.integers(-(10**9), 10**9),
    fees=_prices,
    pnl=_prices,
    exit_reason=st.one_of(st.sampled_from(["signal", "stop_loss", "flatten"]), st.text(max_size=5)),
)


@settings(max_examples=150, deadline=None)
@given(trades=st.lists(_trade, max_size=40))
def test_trades_csv_when_written_by_columns_then_bytes_equal_csv_writer(
    trades: list[TradeRow], tmp_path_factory: object
) -> None:
    # Arrange
    path = Path(tmp_path_factory.mktemp("csv")) / "trades.csv"  # type: ignore[attr-defined]
    # Act
    outputs.write_trades_csv(path, trades)
    # Assert
    assert path.read_bytes() == _expected(trades)
    assert not path.with_name("trades.csv.tmp").exists()
