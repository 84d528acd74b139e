"""Process resource figures for run metrics and sweep reports: peak resident memory (RSS)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MiB (Linux ``VmHWM``, else ``ru_maxrss``)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(
        maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1
    )  # bytes on macOS, KiB on Linux


def current_rss_mb() -> float | None:
    """Return this process's resident set size now in MiB (Linux ``VmRSS``), else None."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def release_free_heap() -> bool:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim``); False elsewhere.

    Jobs of one process free what they allocated, but glibc keeps freed pages mapped, so the
    resident set a job starts from depends on what the jobs before it left fragmented. Trimming
    between jobs makes each job start from what the process really holds.
    """
    libc = _libc()
    if libc is None:
        return False
    try:
        libc.malloc_trim(0)
    except (AttributeError, OSError):
        return False
    return True


_LIBC: list[Any] = []


def _libc() -> Any:
    if not _LIBC:
        handle = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                handle = ctypes.CDLL("libc.so.6")
            except OSError:
                handle = None
        _LIBC.append(handle)
    return _LIBC[0]


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); return False where unsupported.

    A sequential multirun runs every job in one process, so without a reset each job's peak would
    include the peaks of the jobs before it.
    """
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True
