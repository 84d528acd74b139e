"""Timestamps in configuration: ISO-8601 only, so ``01/02/2010`` is never silently read as 2 January."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from components.errors import ConfigError

_ISO_8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)
_BOUNDS = f"{pd.Timestamp.min.ceil('D').date()} and {pd.Timestamp.max.floor('D').date()}"


def parse_timestamp(value: Any, key: str) -> pd.Timestamp:
    """Return ``value`` as a UTC timestamp; accept ISO-8601 only (``01/02/2010`` is ambiguous)."""
    text = str(value).strip()
    if isinstance(value, bool | int | float) or not _ISO_8601.match(text):
        raise ConfigError(
            f"{key}={value!r}: expected an ISO-8601 date or timestamp (YYYY-MM-DD, optionally with "
            f"THH:MM[:SS] and an offset such as +00:00; UTC when none); e.g. {key}=2010-01-02 or "
            f"{key}=2010-01-02T14:30:00+00:00"
        )
    try:
        stamp = pd.Timestamp(text)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        _ = stamp.value  # nanoseconds since the epoch: raises outside pandas' range
    except (ValueError, OverflowError) as exc:
        bounds = isinstance(exc, OverflowError) or "bounds" in str(exc).lower()
        why = f"outside the supported range {_BOUNDS}" if bounds else f"not a valid date ({exc})"
        raise ConfigError(f"{key}={text}: {why}; e.g. {key}=2010-01-02 (ISO-8601)") from None
    return stamp
