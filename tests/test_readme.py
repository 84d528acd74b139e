"""The README's commands run as written (issue 7).

Every ```bash block of README.md is a runnable step; a block preceded by ``<!-- readme-test: fast -->``
is also part of the fast subset. The blocks run in order with ``bash -euo pipefail`` in a fresh working
directory laid out like the repo root (``../shared`` is a link to the shared data), with this venv's
``python`` first on PATH, exactly as after ``source .venv/bin/activate``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, SHARED_DATA, compose_config

README = REPO / "README.md"
FAST_MARKER = "<!-- readme-test: fast -->"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    fast: bool


def bash_blocks(text: str) -> list[Block]:
    """Return the ```bash blocks of ``text`` in order, with their line numbers and fast markers."""
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) != "bash":
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append(
            Block(
                text.count("\n", 0, match.start()) + 1,
                match.group(2),
                before.strip() == FAST_MARKER,
            )
        )
    return blocks


def _workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Return a fresh cwd that sees ../shared, and an env whose ``python`` is this venv's."""
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "VIRTUAL_ENV")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return root, env


def _run(blocks: list[Block], cwd: Path, env: dict[str, str]) -> None:
    for block in blocks:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=cwd,
            env=env,
            text=True,
            capture_output=True,
            timeout=600,
        )
        assert proc.returncode == 0, (
            f"README.md block at line {block.line} exited {proc.returncode}:\n{block.code}\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
        )


def _summary(run_dir: Path) -> dict[str, object]:
    return json.loads((run_dir / "summary.json").read_text())


def _runs(outputs: Path, name: str) -> list[Path]:
    """Return the run dirs of ``run.name=name`` (outputs/<name>/<date>/<time>-<id>), oldest first."""
    return sorted(p.parent for p in outputs.glob(f"{name}/*/*/summary.json"))


def test_readme_when_read_then_set_up_section_comes_first_with_make_run_and_make_test() -> None:
    text = README.read_text()
    first = text.split("\n## ", 2)[1]

    assert first.startswith("Set up and run\n")
    assert "make run" in first and "make test" in first
    assert "[docs/performance.md](docs/performance.md)" in text.split("\n## Performance\n", 1)[1]


def test_readme_runner_commands_when_composed_then_every_override_is_valid(tmp_path: Path) -> None:
    """Fast guard: every ``python -m runner`` line in a bash block composes (no DB, no run)."""
    commands = [
        line
        for block in bash_blocks(README.read_text())
        for line in block.code.splitlines()
        if line.startswith("python -m runner ")
    ]
    assert len(commands) >= 5

    for command in commands:
        # issue 14: pasted twice, a fixed run dir would be refused; zsh needs brackets quoted
        assert not re.search(r"hydra\.run\.dir=[^$]", command), command
        assert not re.search(r"(^|\s)[^'\s]*\[", command), command
        args = [a for a in shlex.split(command.rstrip("&").strip())[3:] if a != "-m"]
        # a sweep (key=1,2,3) composes with its first value; hydra.* keys are not part of the job config
        overrides = [
            re.sub(r"=([^\[\],]+),.*$", r"=\1", a) for a in args if not a.startswith("hydra.")
        ]
        cfg = compose_config(overrides)
        assert cfg.run.name, command


def test_readme_fast_blocks_when_run_as_written_then_succeed_and_write_reports(
    tmp_path: Path,
) -> None:
    cwd, env = _workspace(tmp_path)
    blocks = [b for b in bash_blocks(README.read_text()) if b.fast]
    assert len(blocks) >= 3

    _run(blocks + blocks, cwd, env)  # issue 14: every command works when pasted twice

    runs = _runs(cwd / "outputs", "goog_sma")
    assert len(runs) == 2 and all(_summary(r)["n_trades"] == 32 for r in runs)
    assert (runs[-1] / "equity.png").exists() and (runs[-1] / "summary.md").exists()


@pytest.mark.slow
def test_readme_every_block_when_run_in_order_then_succeeds_with_the_outcomes_it_describes(
    tmp_path: Path,
) -> None:
    cwd, env = _workspace(tmp_path)
    blocks = bash_blocks(README.read_text())

    _run(blocks + blocks, cwd, env)  # issue 14: every command works when pasted twice

    outputs = cwd / "outputs"
    assert [_summary(r)["total_pnl"] for r in _runs(outputs, "goog_sma")] == pytest.approx(
        [66275.0] * 2
    )
    for guarded in map(_summary, _runs(outputs, "demo_guarded")):
        assert (
            guarded["status"] == "halted" and guarded["kill_switch"]["code"] == "MAX_DAILY_TRADES"
        )
    halted_runs = sorted(p.parent for p in outputs.glob("halted/*/summary.json"))
    assert len(halted_runs) == 2
    for run_dir in halted_runs:
        halted = _summary(run_dir)
        assert (
            halted["status"] == "halted"
            and halted["kill_switch"]["reason"] == "manual halt: checking a data issue"
        )
        assert _halted_mid_run(run_dir), f"{run_dir}: the halt landed at the first or last bar"
        assert halted["metrics"]["bars"] == 1_000_000  # the Performance section's 10 x 100k demo
    reports = sorted((cwd / "multirun").glob("backtest/*/*/sweep_report.md"))
    assert len(reports) == 2 and all("parity holds" in r.read_text() for r in reports)


def _halted_mid_run(run_dir: Path) -> bool:
    """Return True when the kill switch tripped after 5 % and before 95 % of the clock."""
    import duckdb

    con = duckdb.connect(str(run_dir / "results.duckdb"), read_only=True)
    try:
        (halt,) = con.execute("SELECT min(ts) FROM kill_switch_events").fetchone()
        first, last = con.execute("SELECT min(ts), max(ts) FROM equity").fetchone()
    finally:
        con.close()
    return first + (last - first) * 0.05 < halt < first + (last - first) * 0.95
