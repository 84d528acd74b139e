"""Per-process state that the jobs of one sweep share: the open market DB and the code version.

A sequential multirun (basic or batched launcher) and a reused joblib/loky worker run many jobs
in one process. Every job used to open the market DB, count its universe and read its bars
again; here the read-only connection is opened once per (file, content) and kept until the
sweep ends (``release``), so later jobs plan from the same connection and the bar cache
(``components.market.cache``) can replay the bars. A file replaced by a producer (new inode,
size or mtime) gets a new connection, so a job never reads a stale version.

Single runs never use this: they open and close their own connection as before, so a test or a
script can write the market DB again right after an in-process run.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from components.data.duckdb_client import get_connection
from components.market import cache as bar_cache

_CONNECTIONS: dict[tuple[Any, ...], duckdb.DuckDBPyConnection] = {}
_PLANS: dict[tuple[Any, ...], Any] = {}
CODE_PACKAGES = ("runner", "components")  # their source files make the code version


def db_identity(path: str | Path) -> tuple[Any, ...]:
    """Return (resolved path, device, inode, size, mtime): changes whenever the file is replaced."""
    resolved = Path(path).resolve()
    st = resolved.stat()
    return (str(resolved), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def market_connection(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Return this process's read-only connection to ``path``, opening it on first use."""
    try:
        key = db_identity(path)
    except OSError:  # missing file: let get_connection raise its one-line error
        return get_connection(path, read_only=True)
    con = _CONNECTIONS.get(key)
    if con is None:
        _close_other_versions(key[0])
        con = get_connection(path, read_only=True)
        _CONNECTIONS[key] = con
    return con


def _close_other_versions(resolved: str) -> None:
    for key in [k for k in _CONNECTIONS if k[0] == resolved]:
        _CONNECTIONS.pop(key).close()
        for plan_key in [p for p in _PLANS if p[0] == key]:
            del _PLANS[plan_key]


def cached_plan(key: tuple[Any, ...], make: Any) -> Any:
    """Return ``make()`` once per ``key`` (db identity, content version, universe request)."""
    if key not in _PLANS:
        _PLANS[key] = make()
    return _PLANS[key]


_TEMPLATE: dict[str, Path] = {}


def copy_results_template(path: Path) -> None:
    """Copy an empty results DB (every table, no rows) to ``path``; built once per process.

    Creating a DuckDB file and its tables costs ~40-120 ms (file header writes, DDL, checkpoint
    at close); copying a 270 KB file is a fraction of that. ``WriteBuffer.open`` then runs its
    ``CREATE TABLE IF NOT EXISTS`` statements, which find every table in place.
    """
    template = _TEMPLATE.get("path")
    if template is None or not template.exists():
        from components.execution.write_buffer import WriteBuffer

        template = Path(tempfile.mkdtemp(prefix="runner_results_")) / "template.duckdb"
        buffer = WriteBuffer(batch_size=1)
        buffer.open(template)
        buffer.close()
        _TEMPLATE["path"] = template
    shutil.copyfile(template, path)


def release() -> None:
    """Close every cached connection and drop cached plans and bars (end of a sweep, tests)."""
    for con in _CONNECTIONS.values():
        with contextlib.suppress(duckdb.Error):
            con.close()
    _CONNECTIONS.clear()
    _PLANS.clear()
    bar_cache.clear()
    template = _TEMPLATE.pop("path", None)
    if template is not None:
        shutil.rmtree(template.parent, ignore_errors=True)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Return a hash of every source file of the runner and its components, and loaded plugins.

    A job is reused only when the code that would run it is the code that ran it; a hash of the
    sources works without git and on a cluster node that has only a copy of the tree.
    """
    root = Path(__file__).resolve().parents[1]
    files = sorted(p for pkg in CODE_PACKAGES for p in (root / pkg).rglob("*.py"))
    files += sorted(_plugin_files())
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _plugin_files() -> list[Path]:
    names = [n.strip() for n in os.environ.get("RUNNER_PLUGINS", "").split(",") if n.strip()]
    files = []
    for name in names:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            files.append(Path(module.__file__).resolve())
    return files


atexit.register(release)
