"""``tuple.__repr__`` of every row of a record table, computed by Arrow (the parity digest's lines).

The digest (DESIGN section 6) hashes each row as ``repr(tuple(row)) + "\\n"``, floats as ``repr``.
Formatting 100k+ rows that way in Python holds the GIL for ~1 s per 1M-bar run, most of it in
``float.__repr__``. Here the same bytes are built with ``pyarrow.compute`` kernels, which release
the GIL, so the write buffer's writer thread digests a batch while the loop runs on:

- int64 and timestamp columns: the decimal integer (timestamps as epoch microseconds);
- float64: Arrow's shortest round-trip digits (the same digits as ``float.__repr__``). Where
  Arrow's layout provably equals Python's (fixed notation, 1e-4 <= |x| < 1e16, zeros, nan, inf),
  its string is used, with ``.0`` added to integral values; every other element (exponent
  notation, which Arrow writes differently) is formatted by ``float.__repr__`` itself;
- strings: ``'...'`` when every character is printable ASCII other than ``'`` and ``\\``; any
  other string by ``str.__repr__`` (quote choice and escapes);
- nulls: ``None``.

Values are those of the typed column (a Python int in a float column digests as a float), which
is also what the results DB holds, so the digest recomputed from the DB is the same.
Batches under ``SMALL_BATCH`` rows (a sweep job's last flush) are formatted by Python from the
same typed columns: the kernels' fixed cost (~1.7 ms a table) would exceed the work.
``tests/test_row_repr.py`` holds every path to ``tuple.__repr__`` with hypothesis.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SMALL_BATCH = 2048  # rows below which Python formats faster than ~30 Arrow kernel calls (~1.7 ms)
_PLAIN_TEXT = r"^[\x20-\x26\x28-\x5b\x5d-\x7e]*$"  # printable ASCII except ' and \
_FIXED_LOW, _FIXED_HIGH = 1e-4, 1e16  # float.__repr__ uses fixed notation in [1e-4, 1e16)


def _patched(text: pa.Array, mask: pa.Array, values: pa.Array, fmt: object) -> pa.Array:
    """Replace the elements of ``text`` where ``mask`` is true by ``fmt(value)`` (Python side)."""
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return text
    exact = [fmt(v) for v in pc.filter(values, mask).to_pylist()]  # type: ignore[operator]
    return pc.replace_with_mask(text, mask, pa.array(exact, pa.string()))


def _float_text(col: pa.Array) -> pa.Array:
    text = pc.cast(col, pa.string())
    finite = pc.is_finite(col)
    size = pc.abs(col)
    fixed = pc.and_(
        pc.or_(
            pc.and_(pc.greater_equal(size, _FIXED_LOW), pc.less(size, _FIXED_HIGH)),
            pc.equal(col, 0.0),
        ),
        pc.invert(pc.match_substring(text, "e")),
    )
    integral = pc.and_(pc.and_(finite, fixed), pc.invert(pc.match_substring(text, ".")))
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    return _patched(text, pc.and_(finite, pc.invert(fixed)), col, float.__repr__)


def float_reprs(values: Any) -> list[str]:
    """Return ``repr(float(v))`` of every value (Arrow kernels; the digest's float path)."""
    return _float_text(pa.array(values, pa.float64())).to_pylist()


def _str_text(col: pa.Array) -> pa.Array:
    plain = pc.match_substring_regex(col, _PLAIN_TEXT)
    text = pc.binary_join_element_wise("'", col, "'", "")
    return _patched(text, pc.invert(plain), col, str.__repr__)


def _column_text(col: pa.Array) -> pa.Array:
    kind = col.type
    if pa.types.is_timestamp(kind):
        col = col.cast(pa.int64())
        kind = col.type
    if pa.types.is_integer(kind):
        text = pc.cast(col, pa.string())
    elif pa.types.is_floating(kind):
        text = _float_text(col.cast(pa.float64()))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = _str_text(col.cast(pa.string()))
    elif pa.types.is_null(kind):
        text = pa.nulls(len(col), pa.string())
    else:
        raise TypeError(f"row_repr: no digest formatting for Arrow type {kind}")
    return pc.fill_null(text, "None")


def row_lines(table: pa.Table | pa.RecordBatch) -> pa.Array:
    """Return ``repr(tuple(row)) + "\\n"`` for every row, as one Arrow string array."""
    if isinstance(table, pa.Table):
        table = table.combine_chunks()
        columns = [c.chunk(0) if c.num_chunks else pa.array([], c.type) for c in table.columns]
    else:
        columns = list(table.columns)
    texts = [_column_text(c) for c in columns]
    closing = ",)\n" if len(texts) == 1 else ")\n"
    body = pc.binary_join_element_wise(*texts, ", ") if len(texts) > 1 else texts[0]
    return pc.binary_join_element_wise("(", body, closing, "")


def hash_lines(hasher: hashlib._Hash, lines: pa.Array) -> None:
    """Feed the concatenated ``lines`` to ``hasher`` straight from the Arrow buffer (no copy)."""
    if len(lines) == 0:
        return
    _, offsets, data = lines.buffers()
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    bounds = np.frombuffer(
        offsets, dtype=width, count=len(lines) + 1, offset=lines.offset * width().itemsize
    )
    hasher.update(memoryview(data)[int(bounds[0]) : int(bounds[-1])])


def python_lines(table: pa.Table) -> bytes:
    """The same bytes as ``row_lines`` for a small batch, formatted by Python from the typed
    columns (so a value's column type, not its Python type, decides its text on both paths)."""
    columns = [
        (c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c).to_pylist()
        for c in table.columns
    ]
    return "".join([tuple.__repr__(row) + "\n" for row in zip(*columns, strict=True)]).encode()


def hash_table(hasher: hashlib._Hash, table: pa.Table) -> None:
    """Feed ``table``'s digest lines to ``hasher``: Arrow kernels for large batches (off the
    GIL), Python for small ones (cheaper than the kernels' fixed cost); the bytes are the same."""
    if table.num_rows < SMALL_BATCH:
        hasher.update(python_lines(table))
    else:
        hash_lines(hasher, row_lines(table))
