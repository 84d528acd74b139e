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
        args = [a for a in shlex.split(command.rstrip("&").strip())[3:] if a != "-m"]
        # a sweep (key=1,2,3) composes with its first value; hydra.* keys are not part of the job config
        overrides = [
            re.sub(r"=([^\[\],]+),.*$", r"=\1", a) for a in args if not a.startswith("hydra.")
        ]
        cfg = compose_config(overrides)
        assert cfg.run.name == "backtest", command


def test_readme_fast_blocks_when_run_as_written_then_succeed_and_write_reports(
    tmp_path: Path,
) -> None:
    cwd, env = _workspace(tmp_path)
    blocks = [b for b in bash_blocks(README.read_text()) if b.fast]
    assert len(blocks) >= 3

    _run(blocks, cwd, env)

    run_dir = cwd / "outputs" / "goog_sma"
    assert _summary(run_dir)["n_trades"] == 32
    assert (run_dir / "equity.png").exists() and (run_dir / "summary.md").exists()


@pytest.mark.slow
def test_readme_every_block_when_run_in_order_then_succeeds_with_the_outcomes_it_describes(
    tmp_path: Path,
) -> None:
    cwd, env = _workspace(tmp_path)

    _run(bash_blocks(README.read_text()), cwd, env)

    outputs = cwd / "outputs"
    assert _summary(outputs / "goog_sma")["total_pnl"] == pytest.approx(66275.0)
    guarded = _summary(outputs / "demo_guarded")
    assert guarded["status"] == "halted" and guarded["kill_switch"]["code"] == "MAX_DAILY_TRADES"
    halted = _summary(outputs / "halted")
    assert (
        halted["status"] == "halted"
        and halted["kill_switch"]["reason"] == "manual halt: checking a data issue"
    )
    reports = sorted((cwd / "multirun").glob("backtest/*/*/sweep_report.md"))
    assert len(reports) == 1 and "parity holds" in reports[0].read_text()
