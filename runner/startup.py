"""Signals that arrive before the backtest loop installs its own handlers (issue 14, items 2 and 3).

``runner/__main__`` calls ``install_handlers`` first thing, before it imports Hydra, so:

- SIGUSR1 (halt) at any point of start-up is remembered and trips the kill switch at the first
  bar: the console prints "to halt: ... kill -USR1 <pid>" only after this handler is in place;
- SIGINT / SIGTERM during imports or planning raise ``StartupInterrupt``; the CLI prints one line
  and exits 130 / 143 (128 + the signal number), and removes the stub run directory.

Once the loop's ``StopFlags`` are installed they take over: SIGINT / SIGTERM stop at the next bar
and flush, SIGUSR1 halts at the next bar. This module imports only the standard library, so it
is in place within milliseconds of interpreter start.

``RUNNER_TEST_PAUSE=<phase>:<seconds>[,...]`` (tests only) sleeps at a named phase (``imports``,
``plan``, ``report``) after printing ``test pause: <phase>`` on stderr, so a test can send a
signal or SIGKILL at a known point; a SIGUSR1 ends the pause early.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from components.errors import StopSignal, interrupted_message

PAUSE_ENV = "RUNNER_TEST_PAUSE"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_pending_halt: str | None = None
_SIGTERM_KILLS: list[bool] = []  # [True] in a joblib pool worker (runner.joblib_fork)


class StartupInterrupt(StopSignal):
    """SIGINT or SIGTERM before the loop started (the backtest loop's own handlers take over)."""


def _halt(signum: int, _frame: Any) -> None:
    global _pending_halt
    _pending_halt = f"signal {signal.Signals(signum).name}"


def _stop(signum: int, _frame: Any) -> None:
    raise StartupInterrupt(signum)


def install_handlers() -> None:
    """Remember SIGUSR1 for the first bar; turn SIGINT / SIGTERM into ``StartupInterrupt``."""
    signal.signal(signal.SIGUSR1, _halt)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


@contextlib.contextmanager
def exit_on_interrupt() -> Iterator[None]:
    """Around the imports (before the CLI wrapper exists): a stop signal is one line and 128+N."""
    try:
        yield
    except StartupInterrupt as exc:
        print(f"error: {interrupted_message(exc.signum)}", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None


def make_sigterm_kill() -> None:
    """In a forked pool worker: SIGTERM kills the process, now and during its jobs.

    Only the pool sends a worker SIGTERM (``Pool.terminate``, then a join): at the end of the
    sweep, or when the sweep process is stopped or a task raised. A worker that turned it into
    a graceful stop would finish its job and wait on the task queue for ever, and the join with
    it. Killed mid-job, a job's results DB keeps its committed batches and the sweep's resume
    reruns the job (DESIGN section 10).
    """
    _SIGTERM_KILLS.append(True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def sigterm_kills() -> bool:
    """Return True where ``make_sigterm_kill`` was called (the loop then leaves SIGTERM alone)."""
    return bool(_SIGTERM_KILLS)


def take_pending_halt() -> str | None:
    """Return the halt reason requested during start-up (once), or None."""
    global _pending_halt
    reason, _pending_halt = _pending_halt, None
    return reason


def pause(phase: str) -> None:
    """Test hook: sleep at ``phase`` when ``RUNNER_TEST_PAUSE`` names it (see the module doc)."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    for item in spec.split(","):
        name, _, seconds = item.partition(":")
        if name.strip() == phase:
            print(f"test pause: {phase}", file=sys.stderr, flush=True)
            deadline = time.monotonic() + float(seconds or 30)
            while time.monotonic() < deadline and _pending_halt is None:
                time.sleep(0.02)  # SIGINT/SIGTERM raise out of here; SIGUSR1 ends the pause


def fast_exit(code: int = 0) -> None:
    """End the process now: run the ``atexit`` hooks, flush the standard streams, ``os._exit``.

    Python's own shutdown then tears down every module and object one by one: ~0.1-0.15 s
    after a sweep whose jobs filled the heap, spent after the last line was printed. Every file
    the runner writes is closed (and renamed into place) before this point; loguru's sinks write
    through, so nothing is left in a buffer but the standard streams, flushed here.
    """
    import atexit
    import logging

    try:
        atexit._run_exitfuncs()
        logging.shutdown()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


START_UP_GC_THRESHOLD = (100_000, 50, 1000)  # young, middle, old: collect rarely while starting
_GC_DEFAULT: list[tuple[int, int, int]] = []  # the thresholds to restore, once start-up raised them


def defer_gc() -> None:
    """Collect rarely during start-up (imports, Hydra's composition): ~0.07 s of a sweep's.

    Importing the modules and composing the config allocate hundreds of thousands of objects
    that live on, so CPython's default young threshold (700) runs many collections that free
    next to nothing. ``restore_gc`` puts the thresholds back before the first job; nothing is
    disabled, cyclic garbage is collected then.
    """
    if not _GC_DEFAULT:
        _GC_DEFAULT.append(gc.get_threshold())
        gc.set_threshold(*START_UP_GC_THRESHOLD)


def restore_gc() -> None:
    """Undo ``defer_gc`` (the first job starts); a no-op afterwards or without it."""
    if _GC_DEFAULT:
        gc.set_threshold(*_GC_DEFAULT.pop())
