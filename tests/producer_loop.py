"""Test-only producer process: ``python tests/producer_loop.py <db> <log.jsonl> <every> <pause_s> <file>...``.

Publishes each CSV file with ``producers.ingest`` (and recomputes the analytics snapshots after
every ``every``-th file when ``every`` > 0), pausing ``pause_s`` seconds after each file, the way
a data feed would.
Each publish appends one JSON line to the log: what was published, the content version it made,
how long it waited for the publish lock and when it finished (tests/test_concurrency.py).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import producers.publish as publish
from producers.analytics import AnalyticsConfig, run_analytics
from producers.ingest import ingest

ANALYTICS = AnalyticsConfig(cadence="1h", lookback=20)
LOCK_TIMEOUT_S = 60.0


def _time_lock_waits(waits: list[float]) -> None:
    """Record how long each publish waited for the lock (the bound is LOCK_TIMEOUT_S)."""
    enter = publish.PublishLock.__enter__

    def timed(self: publish.PublishLock) -> publish.PublishLock:
        started = time.monotonic()
        held = enter(self)
        waits.append(time.monotonic() - started)
        return held

    publish.PublishLock.__enter__ = timed  # type: ignore[method-assign]


def main(db: str, log: str, every: int, pause_s: float, files: list[str]) -> None:
    waits: list[float] = []
    _time_lock_waits(waits)
    with open(log, "a", encoding="utf-8") as out:

        def record(**entry: Any) -> None:
            out.write(json.dumps({**entry, "lock_wait_s": waits[-1], "end": time.time()}) + "\n")
            out.flush()

        for n, path in enumerate(files, 1):
            result, _plan = ingest(path, db, lock_timeout_s=LOCK_TIMEOUT_S)
            record(
                op="ingest", file=path, version=result.content_version, published=result.published
            )
            if every and n % every == 0:
                snaps = run_analytics(db, ANALYTICS, lock_timeout_s=LOCK_TIMEOUT_S)
                record(
                    op="analytics",
                    file=None,
                    version=snaps.content_version,
                    published=snaps.published,
                )
            time.sleep(pause_s)


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]),
        [str(Path(p).resolve()) for p in sys.argv[5:]],
    )
