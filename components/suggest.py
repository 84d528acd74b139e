""" "Did you mean ...?": the closest known name, ignoring case (``goog`` -> ``GOOG``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: object, names: Iterable[str]) -> str | None:
    """Return the known name closest to ``name``: an exact match ignoring case first, else difflib's."""
    by_lower: dict[str, str] = {}
    for known in names:
        by_lower.setdefault(known.lower(), known)
    typed = str(name).lower()
    if typed in by_lower:
        return by_lower[typed]
    match = difflib.get_close_matches(typed, list(by_lower), n=1)
    return by_lower[match[0]] if match else None
