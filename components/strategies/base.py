"""The strategy seam. Strategies emit insights (what they saw); a sizing policy makes signals.

An insight is a tuple ``(ts_us, sym, view, reason, value, reference)`` where ``view`` is
``"long"`` (wants to hold the symbol) or ``"flat"`` (wants no position). Strategies may compute
indicators for a whole chunk in ``on_chunk`` as long as the value at a bar depends only on bars up
to and including it (causal); ``on_step`` then hands out the insights of one clock step.
"""

from __future__ import annotations

from typing import Any, Protocol

from components.market.base import BarChunk

Insight = tuple[int, int, str, str, float, float]

LONG, FLAT = "long", "flat"


class Strategy(Protocol):
    name: str
    uses_analytics: bool

    def start(self, symbols: tuple[str, ...]) -> None:
        """Reset state for a run over ``symbols`` (sorted)."""

    def on_chunk(self, chunk: BarChunk) -> None:
        """Precompute what the chunk's steps need, causally."""

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> list[Insight] | None:
        """Return the insights of clock step ``k`` (rows ``lo:hi`` of the current chunk)."""


class EventStrategy:
    """Base for strategies that precompute a sorted list of insight rows per chunk."""

    name = "event"
    uses_analytics = False

    def __init__(self) -> None:
        self._events: list[tuple[int, Insight]] = []
        self._next = 0

    def _set_events(self, events: list[tuple[int, Insight]]) -> None:
        events.sort(key=lambda e: e[0])
        self._events = events
        self._next = 0

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> list[Insight] | None:
        events, i = self._events, self._next
        if i >= len(events) or events[i][0] >= hi:
            return None
        out = []
        while i < len(events) and events[i][0] < hi:
            out.append(events[i][1])
            i += 1
        self._next = i
        return out
