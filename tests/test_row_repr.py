"""Arrow-built digest lines equal ``tuple.__repr__`` of the rows, for every record table."""

from __future__ import annotations

import hashlib
import math
import struct

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.execution.records import RECORDS
from components.execution.row_repr import _float_text, hash_lines, python_lines, row_lines
from components.execution.write_buffer import to_arrow

EDGE_FLOATS = [
    0.0, -0.0, 1e-4, -1e-4, 9.999999999999999e-05, 1e16, 9.999999999999998e15, 1e15, 1e-5, 5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, 100.0, 0.1, 1 / 3, 123456.789, 1e22,
    math.inf, -math.inf, math.nan, 2.0**53, 2.0**53 + 2, -(2.0**60),
]  # fmt: skip


def _field_strategy(record: type, name: str) -> st.SearchStrategy:
    annotation = record.__annotations__[name]
    hint = str(getattr(annotation, "__forward_arg__", annotation))
    optional = "None" in hint
    if hint.startswith("float"):
        base: st.SearchStrategy = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
            EDGE_FLOATS
        )
    elif hint.startswith("int"):
        base = st.integers(-(2**63), 2**63 - 1)
    else:
        base = st.text(max_size=12) | st.sampled_from(["it's", 'say "hi"', "a\\b", "é", "\n", ""])
    return base | st.none() if optional else base


def _rows(table: str) -> st.SearchStrategy:
    record = RECORDS[table]
    fields = record._fields  # type: ignore[attr-defined]
    return st.lists(
        st.tuples(*(_field_strategy(record, f) for f in fields)), min_size=1, max_size=30
    )


@pytest.mark.parametrize("table", sorted(RECORDS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_row_lines_when_any_rows_of_a_table_then_equal_tuple_repr(table: str, data) -> None:
    rows = data.draw(_rows(table))
    batch = to_arrow(table, rows)
    lines = row_lines(batch)
    assert lines.to_pylist() == [tuple.__repr__(r) + "\n" for r in rows]
    assert python_lines(batch) == "".join(lines.to_pylist()).encode()  # the small-batch path
    hasher = hashlib.sha256()
    hash_lines(hasher, lines)
    expected = "".join(tuple.__repr__(r) + "\n" for r in rows).encode()
    assert hasher.hexdigest() == hashlib.sha256(expected).hexdigest()


@settings(max_examples=200, deadline=None)
@given(bits=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=200))
def test_float_text_when_any_bit_pattern_then_equals_float_repr(bits: list[int]) -> None:
    values = [struct.unpack("<d", struct.pack("<Q", b))[0] for b in bits]
    assert _float_text(pa.array(values, pa.float64())).to_pylist() == [repr(v) for v in values]


def test_hash_lines_when_array_is_a_slice_then_hashes_only_its_rows() -> None:
    rows = [(1_600_000_000_000_000 + i, i * 0.5, 1e6 + i) for i in range(10)]
    lines = row_lines(to_arrow("equity", rows)).slice(3, 4)
    hasher = hashlib.sha256()
    hash_lines(hasher, lines)
    expected = "".join(tuple.__repr__(r) + "\n" for r in rows[3:7]).encode()
    assert hasher.hexdigest() == hashlib.sha256(expected).hexdigest()
