"""A deliberately wrong market provider, registered only by tests: ``market: lookahead``.

It serves every bar with the values of the same symbol's next bar in the chunk, a peek-ahead bug.
Within a chunk the shifted bars are still valid OHLCV, so validation passes; only the chunk
boundaries (where nothing is left to peek at) show it, so the digest changes with
``market.chunk_size``. The sweep report must catch exactly that. Import it only in runner
subprocesses (``RUNNER_PLUGINS``): importing registers it for the whole process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.market.base import BarChunk
from components.market.providers import ChunkedMarketConfig, ChunkedMarketProvider
from components.registry import register

CONF_DIR = Path(__file__).resolve().parent / "conf"  # market/lookahead.yaml, for hydra.searchpath


@dataclass
class LookaheadMarketConfig(ChunkedMarketConfig):
    kind: str = "lookahead"


class LookaheadMarketProvider(ChunkedMarketProvider):
    def chunks(self) -> Iterator[BarChunk]:
        for chunk in super().chunks():
            yield peek_ahead(chunk)


def peek_ahead(chunk: BarChunk) -> BarChunk:
    """Replace each bar's OHLCV with the same symbol's next bar in this chunk (last bar kept)."""
    for s in np.unique(chunk.sym).tolist():
        rows = np.flatnonzero(chunk.sym == s)
        for column in (chunk.open, chunk.high, chunk.low, chunk.close, chunk.volume):
            column[rows[:-1]] = column[rows[1:]]
    return chunk


@register("market", "lookahead", LookaheadMarketConfig)
def make_lookahead_market(config: LookaheadMarketConfig) -> LookaheadMarketProvider:
    return LookaheadMarketProvider(validate=config.validate, chunk_size=config.chunk_size)
