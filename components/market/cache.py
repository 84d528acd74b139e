"""A process-wide cache of served bars, for the jobs of a sweep that share one process.

Every job of a parameter sweep on one universe and window asks the market DB for the same bars.
When the jobs run in one process (the basic launcher, the batched launcher, a reused joblib/loky
worker) the first job records the chunks its provider served and later jobs replay them, so a
job costs no market query at all. ``market.cache`` switches it (a performance key in
``conf/parity.yaml``: the replayed chunks are the very arrays the provider served, already
validated, and the engine never writes into them; sweep digests prove it).

The key is (market DB identity, content version, universe, provider config), so a new market DB
version or file, another window, symbol set or chunk size is a miss. Total size is capped
(``MAX_CACHE_MB``): beyond it, chunks are served uncached, so a sweep over 1M-bar histories keeps
the memory profile of a single run.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

from components.market.base import BarChunk, MarketProvider, Universe

MAX_CACHE_MB = 64.0  # bars held across jobs of one process; a larger history is served uncached

_CACHE: dict[Hashable, list[BarChunk]] = {}
_STATS = {"hits": 0, "misses": 0, "bytes": 0}


def chunk_bytes(chunk: BarChunk) -> int:
    """Return the bytes of a chunk's arrays."""
    return sum(
        a.nbytes
        for a in (chunk.ts, chunk.sym, chunk.open, chunk.high, chunk.low, chunk.close, chunk.volume)
    ) + (chunk.step_ts.nbytes + chunk.bounds.nbytes)


class CachedMarket:
    """Serve a provider's chunks from the process cache; record them on the first (miss) run."""

    def __init__(self, provider: MarketProvider, key: Hashable) -> None:
        self.provider = provider
        self.key = key
        self.hit = False

    @property
    def queries(self) -> int:
        return self.provider.queries

    def open(self, con: Any, universe: Universe) -> None:
        self.provider.open(con, universe)

    def chunks(self) -> Iterator[BarChunk]:
        cached = _CACHE.get(self.key)
        if cached is not None:
            self.hit = True
            _STATS["hits"] += 1
            yield from cached
            return
        _STATS["misses"] += 1
        recorded: list[BarChunk] | None = []
        size = 0
        for chunk in self.provider.chunks():
            if recorded is not None:
                size += chunk_bytes(chunk)
                if _STATS["bytes"] + size > MAX_CACHE_MB * 1024 * 1024:
                    recorded = None  # too large to keep: serve this run uncached
                else:
                    recorded.append(chunk)
            yield chunk
        if recorded is not None:  # only a fully served window is cached (never a partial one)
            _CACHE[self.key] = recorded
            _STATS["bytes"] += size

    def __getattr__(self, name: str) -> Any:  # index_queries, chunk_size, ... of the provider
        return getattr(self.provider, name)


def cached(provider: MarketProvider, key: Hashable) -> CachedMarket:
    """Wrap ``provider`` so that its chunks for ``key`` are served once per process."""
    return CachedMarket(provider, key)


def stats() -> dict[str, int]:
    """Return hits, misses and the bytes held (for tests and the bench)."""
    return dict(_STATS)


def clear() -> None:
    """Drop every cached chunk (tests; the end of a sweep)."""
    _CACHE.clear()
    _STATS.update(hits=0, misses=0, bytes=0)
