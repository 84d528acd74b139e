"""Draw the sweep report's figures in a helper process forked when the multirun starts.

Importing matplotlib and drawing ``sweep_report.png`` and ``sweep_heatmap.png`` took ~2 s of a
50-job sweep that otherwise ran in ~9 s, all of it after the last job, one figure after the
other. ``PlotWorker.start`` forks a process when the multirun starts (before any job and any
DuckDB connection); it imports matplotlib and loads its fonts while the jobs run, then waits.
When the report is written, ``draw`` sends it the figures to draw; it forks once per figure, so
both are drawn at the same time on two cores, while the sweep process writes the CSV, the
Parquet file and the Markdown. Same functions, same arguments, same files as drawing in-process.

Whatever goes wrong in the helper (it died, was killed, or a figure raised), ``draw`` returns
None for that figure and the caller draws it in-process, so the report never loses a figure.
The helper exits when told to, when its pipe closes, or when the sweep process is gone; it holds
no terminal output (stdout/stderr go to /dev/null) so a caller that captures the sweep's output
never waits for it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any

_HEADER = struct.Struct("!Q")
POLL_SECONDS = 1.0  # how often an idle helper checks that the sweep process is still there


class PlotWorker:
    """A forked helper process that draws figures on request (POSIX; elsewhere never started)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self._to_child: int | None = None
        self._from_child: int | None = None

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def start(self) -> bool:
        """Fork the helper; return False where fork is unavailable or failed."""
        if os.name != "posix" or self.pid is not None:
            return self.pid is not None
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            return False
        if pid == 0:  # the helper: never returns, never runs the sweep's atexit hooks
            code = 0
            try:
                os.close(down_w)
                os.close(up_r)
                _serve(down_r, up_w, os.getppid())
            except BaseException:  # the sweep process draws it instead
                code = 1
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        self.pid, self._to_child, self._from_child = pid, down_w, up_r
        return True

    def close_in_child(self) -> None:
        """Drop this process's ends of the pipes (a process forked from the sweep process)."""
        for fd in (self._to_child, self._from_child):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pid = self._to_child = self._from_child = None

    def submit(self, tasks: list[tuple[Callable[..., bool], tuple[Any, ...]]]) -> int | None:
        """Send ``(function, args)`` tasks to draw at once; return a token for ``collect``."""
        if self.pid is None or not tasks:
            return None
        try:
            _send(self._to_child, [(f.__module__, f.__qualname__, args) for f, args in tasks])
        except (OSError, pickle.PickleError, AttributeError, TypeError):
            self.stop()
            return None
        return len(tasks)

    def collect(self, token: int | None) -> list[bool | None]:
        """Wait for what ``submit`` sent; each function's result, None where it was not drawn."""
        if token is None:
            return []
        try:
            results = _receive(self._from_child)
        except (OSError, EOFError, pickle.PickleError):
            self.stop()
            results = None
        if not isinstance(results, list) or len(results) != token:
            return [None] * token
        return [r if isinstance(r, bool) else None for r in results]

    def draw(self, tasks: list[tuple[Callable[..., bool], tuple[Any, ...]]]) -> list[bool | None]:
        """Draw every task in the helper; None for each one it could not draw."""
        token = self.submit(tasks)
        return self.collect(token) if token is not None else [None] * len(tasks)

    def discard(self) -> None:
        """End the helper at once (it may still be warming up) and reap it: not wanted after all."""
        if self.pid is None:
            return
        pid = self.pid
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        self.close_in_child()
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)

    def stop(self) -> None:
        """Tell the helper to exit and reap it."""
        if self.pid is None:
            return
        pid = self.pid
        self.close_in_child()  # closing its pipe is the signal to exit
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)


def _serve(down: int, up: int, parent: int) -> None:
    """The helper's body: warm matplotlib up, then draw what each request asks, until EOF."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    _warm_up()
    while True:
        ready, _, _ = select.select([down], [], [], POLL_SECONDS)
        if not ready:
            if os.getppid() != parent:  # the sweep process is gone
                return
            continue
        try:
            tasks = _receive(down)
        except EOFError:
            return
        _send(up, _run_tasks(tasks))


def _warm_up() -> None:
    """Import matplotlib and draw a tiny figure with text (fonts, Agg canvas, PNG writer)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.ticker  # what plot_report imports
    from matplotlib.figure import Figure

    import runner.sweep  # the modules whose functions it draws
    import runner.sweep_stats  # noqa: F401

    fig = Figure(figsize=(1, 1))
    ax = fig.subplots()
    ax.bar([0], [1])
    ax.set_title("warm-up")
    ax.text(0, 0.5, "0.5")
    fig.colorbar(ax.imshow([[0.0, 1.0]]), ax=ax)
    fig.tight_layout()
    fig.savefig(io.BytesIO(), dpi=20)


def _run_tasks(tasks: list[tuple[str, str, tuple[Any, ...]]]) -> list[bool | None]:
    """Draw each task in a process of its own (all at once); return what each returned."""
    children: list[tuple[int, int]] = []
    for module, name, args in tasks:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(read_fd)
                function = _resolve(module, name)
                _send(write_fd, bool(function(*args)))
            except BaseException:  # reported as None: drawn in-process instead
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        children.append((pid, read_fd))
    results: list[bool | None] = []
    for pid, read_fd in children:
        try:
            results.append(_receive(read_fd))
        except (EOFError, OSError, pickle.PickleError):
            results.append(None)
        finally:
            os.close(read_fd)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)
    return results


def _resolve(module: str, name: str) -> Callable[..., bool]:
    target: Any = sys.modules.get(module) or __import__(module, fromlist=["_"])
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _send(fd: int | None, payload: Any) -> None:
    assert fd is not None
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int | None) -> Any:
    assert fd is not None
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
    return pickle.loads(_read_exactly(fd, size))


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("plot worker pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
