"""Market providers: ``direct`` (one query per clock step) and ``chunked`` (keyset pages).

Both serve identical chunks of whole clock steps; only the number of queries differs. That is a
performance setting, so it must never change the digest (DESIGN section 6).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from components.market.base import (
    BAR_SELECT,
    BarChunk,
    Universe,
    chunk_from_columns,
    in_step_order,
    time_filter,
    validate_chunk,
    window_filter,
    window_params,
)
from components.registry import register


@dataclass
class DirectMarketConfig:
    kind: str = "direct"
    validate: bool = True  # pandera-validate every slice (OhlcvBars) before the loop sees it
    cache: bool = True  # multirun jobs of one process replay the bars of an earlier job (same DB version, universe, window)


@dataclass
class ChunkedMarketConfig:
    kind: str = "chunked"
    chunk_size: int = 5000  # clock steps (distinct timestamps) fetched per query
    validate: bool = True  # pandera-validate every chunk (OhlcvBars) before the loop sees it
    cache: bool = True  # multirun jobs of one process replay the bars of an earlier job (same DB version, universe, window)
    prefetch: int = 0  # pages fetched ahead on a background thread while the loop runs (0 = off)

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(
                f"market.chunk_size must be a positive number of timestamps per query, was "
                f"{self.chunk_size}; try market.chunk_size=5000"
            )
        if self.prefetch < 0:
            raise ValueError(
                f"market.prefetch must be a number of pages >= 0 (0 = off), was {self.prefetch}; "
                "try market.prefetch=0"
            )


class _ProviderBase:
    def __init__(self, validate: bool) -> None:
        self.queries = 0
        self._validate = validate
        self._con: duckdb.DuckDBPyConnection | None = None
        self._universe = Universe(symbols=())

    def open(self, con: duckdb.DuckDBPyConnection, universe: Universe) -> None:
        self._con = con
        self._universe = universe

    def _fetch(
        self, sql: str, params: dict[str, object], con: duckdb.DuckDBPyConnection | None = None
    ) -> BarChunk:
        assert self._con is not None, "call open() before chunks()"
        self.queries += 1
        cols = (con or self._con).execute(sql, params).fetchnumpy()
        chunk = chunk_from_columns(in_step_order(cols))
        if self._validate:
            validate_chunk(chunk, self._universe, f"market DB bars (query {self.queries})")
        return chunk


class DirectMarketProvider(_ProviderBase):
    """Fetch one clock step per query: the naive baseline."""

    def chunks(self) -> Iterator[BarChunk]:
        where = window_filter(self._universe)
        sql = (
            f"{BAR_SELECT} WHERE ts = (SELECT min(ts) FROM bars WHERE {where} "
            "AND ts > make_timestamptz($after_us))"
        )
        params = window_params(self._universe)
        after, served, total = -(2**62), 0, self._universe.n_steps
        while total is None or served < total:
            served += 1
            chunk = self._fetch(sql, {**params, "after_us": after})
            if not len(chunk):
                return
            yield chunk
            after = int(chunk.step_ts[-1])


class ChunkedMarketProvider(_ProviderBase):
    """Fetch ``chunk_size`` clock steps per query with keyset pagination (never OFFSET).

    One page-index query first finds the last timestamp of every page (every chunk_size-th
    distinct ts: memory grows with history / chunk_size, a few bytes per page). Each page is then
    one bounded range query ``after < ts <= page_end``, which DuckDB prunes with ts zonemaps.
    """

    def __init__(self, validate: bool, chunk_size: int, prefetch: int = 0) -> None:
        super().__init__(validate)
        self.chunk_size = chunk_size
        self.prefetch = prefetch
        self.index_queries = 0

    def page_ends(self) -> list[int]:
        """Return the last timestamp (epoch us) of every page, in ascending order."""
        assert self._con is not None, "call open() before chunks()"
        self.index_queries += 1
        where = window_filter(self._universe)
        rows = self._con.execute(
            f"SELECT ts_us FROM (SELECT ts_us, row_number() OVER (ORDER BY ts_us) AS rn, count(*) OVER () AS n "
            f"FROM (SELECT DISTINCT epoch_us(ts) AS ts_us FROM bars WHERE {where})) "
            "WHERE rn % $n = 0 OR rn = n ORDER BY ts_us",
            {**window_params(self._universe), "n": self.chunk_size},
        ).fetchall()
        return [int(r[0]) for r in rows]

    def chunks(self) -> Iterator[BarChunk]:
        sql = (
            f"{BAR_SELECT} WHERE {time_filter(self._universe)} AND ts > make_timestamptz($after_us) "
            "AND ts <= make_timestamptz($until_us)"
        )
        params = window_params(self._universe)
        ends = self.page_ends()
        pages = [
            {**params, "after_us": after, "until_us": until}
            for after, until in zip([-(2**62), *ends[:-1]], ends, strict=True)
        ]
        if self.prefetch and len(pages) > 1:
            yield from self._prefetched(sql, pages)
            return
        for page in pages:
            chunk = self._fetch(sql, page)
            if not len(chunk):
                return
            yield chunk

    def _prefetched(self, sql: str, pages: list[dict[str, object]]) -> Iterator[BarChunk]:
        """Serve ``pages`` in order while a thread fetches up to ``prefetch`` pages ahead.

        DuckDB releases the GIL while it runs a query, so the next page's query overlaps the
        loop's work on this one. The thread has its own cursor (DuckDB connections are not
        shared across threads); chunks, errors included, arrive in page order, so the loop sees
        exactly what the sequential path serves: a performance key (``market.prefetch``).
        """
        assert self._con is not None, "call open() before chunks()"
        cursor = self._con.cursor()
        ahead: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: tuple[str, object]) -> bool:
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for page in pages:
                    chunk = self._fetch(sql, page, cursor)
                    if not put(("chunk", chunk)) or not len(chunk):
                        return
                put(("end", None))
            except BaseException as exc:  # handed to the loop's thread, raised there in order
                put(("error", exc))

        thread = threading.Thread(target=work, name="market-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, item = ahead.get()
                if kind == "error":
                    raise item  # type: ignore[misc]
                if kind == "end" or not len(item):  # type: ignore[arg-type]
                    return
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            thread.join()
            cursor.close()


@register("market", "direct", DirectMarketConfig)
def make_direct_market(config: DirectMarketConfig) -> DirectMarketProvider:
    return DirectMarketProvider(validate=config.validate)


@register("market", "chunked", ChunkedMarketConfig)
def make_chunked_market(config: ChunkedMarketConfig) -> ChunkedMarketProvider:
    return ChunkedMarketProvider(
        validate=config.validate, chunk_size=config.chunk_size, prefetch=config.prefetch
    )
