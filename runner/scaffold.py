"""``python -m runner.scaffold NAME``: write a working strategy plugin skeleton (module, YAML, test).

    python -m runner.scaffold my_breakout                 # into ./plugins/
    python -m runner.scaffold my_breakout --into research/strategies

writes, relative to the working directory (``DIR`` = ``--into``, default ``plugins``)::

    DIR/__init__.py                   (when missing: DIR becomes an importable package)
    DIR/NAME.py                       the strategy: typed config, one indicator, decide()
    DIR/conf/strategy/NAME.yaml       the option file, keys checked against the config dataclass
    DIR/test_NAME.py                  runs it as a plugin and proves chunk-size parity

and prints the command that runs it. A file you edited is never overwritten (the run is refused);
running it again over its own unedited output changes nothing. The guide is docs/strategies.md.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

from components.cli import EXIT_USER_ERROR

MODULE = '''"""{title}: buy when the close rises above its ``window``-bar mean, sell when it falls below.

Written by ``python -m runner.scaffold {name}``; edit the config, indicators and decide(). Guide:
docs/strategies.md. Run it from {root_hint}::

    RUNNER_PLUGINS={module} python -m runner +experiment=backtest \\\\
        strategy={name} hydra.searchpath=[file://{into}/conf]
"""

from __future__ import annotations

from dataclasses import dataclass

from components.strategies.api import Strategy, register_strategy, rolling_mean


@dataclass
class {cls}Config:
    window: int = 20  # bars in the moving average of closes
    size: int = 100  # units per entry

    def __post_init__(self) -> None:
        if self.window < 1 or self.size < 1:
            raise ValueError(
                f"strategy.window ({{self.window}}) and strategy.size ({{self.size}}) must be >= 1; "
                "try strategy.window=20 strategy.size=100"
            )


@register_strategy("{name}", {cls}Config)
class {cls}(Strategy):
    def lookback(self) -> int:
        return self.config.window  # bars one indicator value depends on (None: all history)

    def indicators(self, bars):
        return {{"mean": rolling_mean(bars.close, self.config.window)}}

    def decide(self, ctx):
        if ctx.position == 0 and ctx.now.close > ctx.now.mean:
            ctx.buy(self.config.size)
        elif ctx.position > 0 and ctx.now.close < ctx.now.mean:
            ctx.sell()
'''

YAML = """# {into}/conf/strategy/{name}.yaml: {title} ({into}/{name}.py).
defaults: [{name}_schema, _self_]
kind: {name}
window: 20   # bars in the moving average of closes
size: 100    # units per entry
"""

TEST = '''"""{title}: runs as a plugin through the real CLI; chunk sizes and providers never change its output.

Run: ``python -m pytest {into}/test_{name}.py`` from {root_hint}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[{depth}]


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {{**os.environ, "RUNNER_PLUGINS": "{module}"}}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("{name}") / "market.duckdb"
    proc = run("producers.demo", f"db.path={{db}}", "demo.n_symbols=2", "demo.n_bars=300")
    assert proc.returncode == 0, proc.stderr
    return db


def backtest(db: Path, run_dir: Path, *overrides: str) -> dict:
    proc = run(
        "runner",
        "+experiment=backtest",
        f"db.path={{db}}",
        "strategy={name}",
        "hydra.searchpath=[file://{into}/conf]",
        f"hydra.run.dir={{run_dir}}",
        "run.plot=false",
        *overrides,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads((run_dir / "summary.json").read_text())


def test_{name}_when_run_as_plugin_then_it_trades(market_db: Path, tmp_path: Path) -> None:
    summary = backtest(market_db, tmp_path / "run")
    assert summary["status"] == "completed" and summary["strategy"] == "{name}"
    assert summary["record_counts"]["insights"] > 0


def test_{name}_when_chunk_size_or_provider_changes_then_digest_identical(
    market_db: Path, tmp_path: Path
) -> None:
    runs = [["market.chunk_size=1"], ["market.chunk_size=7"], ["market=direct"]]
    digests = {{backtest(market_db, tmp_path / f"run{{i}}", *o)["digest"] for i, o in enumerate(runs)}}
    assert len(digests) == 1
'''


class ScaffoldError(Exception):
    """Bad name or target: one line, exit 2."""


def scaffold(name: str, into: str = "plugins", cwd: Path | None = None) -> list[Path]:
    """Write the plugin skeleton for strategy ``name`` under ``cwd / into``; return the files."""
    cwd = cwd or Path.cwd()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"scaffold: {name!r} is not a valid strategy name; use lower-case letters, digits and "
            "underscores, starting with a letter (e.g. my_breakout)"
        )
    parts = Path(into).parts
    if Path(into).is_absolute() or not parts or not all(p.isidentifier() for p in parts):
        raise ScaffoldError(
            f"scaffold: --into {into!r} must be a relative path of Python identifiers (it becomes "
            "the package the module is imported from), e.g. --into plugins"
        )
    _refuse_known_kind(name)
    package = cwd / into
    files = {
        package / f"{name}.py": MODULE,
        package / "conf" / "strategy" / f"{name}.yaml": YAML,
        package / f"test_{name}.py": TEST,
    }
    values = {
        "name": name,
        "cls": "".join(w.capitalize() for w in name.split("_")),
        "title": name.replace("_", " ").capitalize(),
        "module": ".".join((*parts, name)),
        "into": "/".join(parts),
        "depth": len(parts),
        "root_hint": "the directory that holds " + "/".join(parts),
    }
    rendered = {path: template.format(**values) for path, template in files.items()}
    edited = [p for p, text in rendered.items() if p.exists() and p.read_text() != text]
    if edited:
        raise ScaffoldError(
            f"scaffold: {edited[0]} already exists and differs from the skeleton; nothing was "
            "written. Pick another name or remove the file."
        )
    written = []
    for i in range(1, len(parts) + 1):  # every directory on the way must be a package
        init = cwd.joinpath(*parts[:i]) / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text('"""Strategy plugins (python -m runner.scaffold)."""\n')
            written.append(init)
    for path, text in rendered.items():
        if path.exists():
            continue  # the same skeleton, written by an earlier run: nothing to do
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def _refuse_known_kind(name: str) -> None:
    import runner.components_index  # noqa: F401 - the built-in strategies
    from components.registry import known_kinds

    if name in known_kinds("strategy"):
        raise ScaffoldError(
            f"scaffold: strategy {name!r} already exists (built in); pick another name"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner.scaffold", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("name", help="strategy name: the option strategy=NAME (lower_case)")
    parser.add_argument(
        "--into", default="plugins", help="package directory to write into (default: plugins)"
    )
    args = parser.parse_args(argv)
    try:
        written = scaffold(args.name, args.into)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    into = "/".join(Path(args.into).parts)
    module = ".".join((*Path(args.into).parts, args.name))
    for path in written:
        print(f"wrote {path.relative_to(Path.cwd())}")
    if not written:
        print(f"{into}/{args.name}.py, its YAML and its test are already in place (unchanged)")
    print(
        f"run it:  RUNNER_PLUGINS={module} python -m runner +experiment=backtest "
        f"strategy={args.name} 'hydra.searchpath=[file://{into}/conf]'\n"
        f"test it: python -m pytest {into}/test_{args.name}.py"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
