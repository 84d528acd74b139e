"""Errors that teach (issue 7): every user-facing error is one line that says what failed, where
(the key or file), the value and the fix; exit code 2; no traceback (STYLE P7, DESIGN section 7).

Each case runs the real CLI in a subprocess (``python -m runner ...``). The subprocesses are all
started at once by one module fixture, so the whole file costs about as much as its slowest case.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.helpers import REPO, make_market_db, read_shared_csv

GOOG_CSV = "goog_daily_2004_2013.csv"


@dataclass(frozen=True)
class Case:
    module: str
    args: tuple[str, ...]
    pattern: str  # must match the whole stderr, which must be exactly one line (or a line + report)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def _cases(db: Path, tmp: Path) -> dict[str, Case]:
    run = ("+experiment=backtest", f"db.path={db}", f"hydra.run.dir={tmp / 'run'}")
    d = re.escape(str(db))
    return {
        "unknown_kind": Case(
            "runner",
            (*run, "market=chunkd"),
            (
                r"error: market=chunkd: no option 'chunkd' in config group 'market' \(available: chunked, direct\)\. "
                r"Did you mean 'chunked'\? Fix: market=chunked, or add conf/market/chunkd\.yaml\."
            ),
        ),
        "unknown_experiment": Case(
            "runner",
            ("+experiment=bactest", f"db.path={db}"),
            (
                r"error: \+experiment=bactest: no option 'bactest' in config group 'experiment' \(available: "
                r"backtest, momentum, rsi_guarded\)\. Did you mean 'backtest'\? Fix: \+experiment=backtest, "
                r"or add conf/experiment/bactest\.yaml\."
            ),
        ),
        "wrong_type": Case(
            "runner",
            (*run, "market.chunk_size=abc"),
            (
                r"error: market\.chunk_size=abc: expected an integer, got 'abc'\. Fix: e\.g\. market\.chunk_size=5000\."
            ),
        ),
        "misspelt_key": Case(
            "runner",
            (*run, "market.chunk_sise=5"),
            (
                r"error: market\.chunk_sise=5: market \(ChunkedMarketConfig\) has no key 'chunk_sise' \(its keys: "
                r"cache, chunk_size, kind, prefetch, validate\)\. Did you mean 'chunk_size'\? Fix: market\.chunk_size=5\."
            ),
        ),
        "negative_prefetch": Case(
            "runner",
            (*run, "market.prefetch=-1"),
            (
                r"error: market\.prefetch must be a number of pages >= 0 \(0 = off\), was -1; "
                r"try market\.prefetch=0"
            ),
        ),
        "negative_threshold": Case(
            "runner",
            (*run, "execution.kill_switch.max_daily_trades=-1"),
            (
                r"error: execution\.kill_switch\.max_daily_trades must be (a finite number )?>= 0 or null \(off\), "
                r"was -1; e\.g\. execution\.kill_switch\.max_daily_trades=\d+"
            ),
        ),
        "unknown_symbol": Case(
            "runner",
            (*run, "symbols=[GOOGG]"),
            (
                rf"error: symbols: GOOGG not in the market DB {d} \(it has: GOOG\)\. Did you mean 'GOOG'\? "
                rf"Fix: symbols=\[GOOG\], or ingest the missing symbol with "
                rf"`python -m producers\.ingest source=<file> db\.path={d}`\."
            ),
        ),
        "empty_date_range": Case(
            "runner",
            (*run, "start=2030-01-01"),
            (
                rf"error: empty date range: no bars for GOOG between start=2030-01-01 and end=null; {d} has them "
                r"from 2004-08-19 to 2013-03-01\. Fix: choose start/end inside that range, e\.g\. "
                r"start=2004-08-19 end=2013-03-01\."
            ),
        ),
        "missing_db": Case(
            "runner",
            (
                "+experiment=backtest",
                "db.path=/nonexistent/x.duckdb",
                f"hydra.run.dir={tmp / 'run_missing'}",
            ),
            (
                r"error: market DB not found at /nonexistent/x\.duckdb \(db\.path\); create it first with "
                r"`python -m producers\.demo db\.path=/nonexistent/x\.duckdb` \(synthetic\) or "
                r"`python -m producers\.ingest source=<file> db\.path=/nonexistent/x\.duckdb`\."
            ),
        ),
        "runner_asked_to_write": Case(
            "runner",
            (*run, "db.mode=read_write"),
            (
                r"error: db\.mode='read_write': the runner only reads the market DB and never opens it for writing; "
                r"remove the override \(db\.mode=read_only\) and write data with a producer CLI such as "
                r"`python -m producers\.ingest source=<file> db\.path=<db>`\."
            ),
        ),
        "bad_run_setting": Case(
            "runner",
            (*run, "run.metrics_every_s=0"),
            r"error: run\.metrics_every_s must be a positive number of seconds, was 0\.0; "
            r"e\.g\. run\.metrics_every_s=5",
        ),
    }


def _start(case: Case, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", case.module, *case.args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(tmp_path_factory.mktemp("db") / "goog.duckdb", read_shared_csv(GOOG_CSV))


@pytest.fixture(scope="module")
def outcomes(
    goog_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    """Run every case at once (plus a locked DB and a bad CSV) and collect the results."""
    tmp = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    cases = _cases(goog_db, tmp)
    locked_db = make_market_db(tmp / "locked.duckdb", read_shared_csv(GOOG_CSV))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()",
            str(locked_db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    cases["locked_db"] = Case(
        "runner",
        ("+experiment=backtest", f"db.path={locked_db}", f"hydra.run.dir={tmp / 'run_locked'}"),
        (
            rf"error: {re.escape(str(locked_db))} \(db.path\) is locked by another process \(PID {holder.pid}\) that "
            rf"has it open for writing; DuckDB admits readers only when no writer is open, so wait for PID "
            rf"{holder.pid} to finish or stop it, then retry\."
        ),
    )
    bad_csv = tmp / "bad.csv"
    bad_csv.write_text(
        "symbol,ts,open,high,low,close,volume\nGOOG,2004-08-19T00:00:00,100,104,96,100.3,22351900\n"
        "GOOG,2004-08-20T00:00:00,abc,109,100.5,108.3,11428600\n"
    )
    cases["bad_csv"] = Case(
        "producers.ingest",
        (f"source={bad_csv}", f"db.path={tmp / 'ingested.duckdb'}"),
        (
            r"error: 1 invalid value\(s\) in bad\.csv; nothing was written\. Fix the rows below \(first 1 of 1\) and run "
            r"again:\n  bad\.csv line 3: column open: check not a number: value 'abc'"
        ),
    )
    db_before = _sha(goog_db)
    # the cases start at once: each gets its own run dir (a refused run removes its stub dir,
    # which raced with another case still writing .hydra/ into a shared one)
    shared_dir = f"hydra.run.dir={tmp / 'run'}"
    cases = {
        name: replace(
            case,
            args=tuple(
                f"hydra.run.dir={tmp / 'run' / name}" if a == shared_dir else a for a in case.args
            ),
        )
        for name, case in cases.items()
    }
    try:
        procs = {name: _start(case, env) for name, case in cases.items()}
        results = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=180)
            results[name] = Outcome(proc.returncode, out, err)
    finally:
        holder.communicate(input="", timeout=30)
    assert _sha(goog_db) == db_before, "a failed run changed the market DB"
    yield {name: results[name] for name in cases} | {"_cases": cases}  # type: ignore[dict-item]


def _assert_teaches(outcomes: dict[str, Outcome], name: str) -> None:
    case: Case = outcomes["_cases"][name]  # type: ignore[index]
    outcome = outcomes[name]
    assert outcome.code == 2, f"{name}: exit {outcome.code}, stderr:\n{outcome.stderr}"
    assert "Traceback" not in outcome.stderr
    assert re.fullmatch(case.pattern, outcome.stderr.rstrip("\n")), (
        f"{name}: stderr does not match\n  got:     {outcome.stderr!r}\n  pattern: {case.pattern!r}"
    )


def test_runner_when_market_kind_unknown_then_lists_options_and_suggests_closest(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "unknown_kind")


def test_runner_when_experiment_misspelt_then_suggests_closest_with_plus(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "unknown_experiment")


def test_runner_when_chunk_size_not_a_number_then_names_type_and_example(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "wrong_type")


def test_runner_when_key_misspelt_then_lists_keys_and_suggests_closest(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "misspelt_key")


def test_runner_when_prefetch_negative_then_names_key_value_and_fix(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "negative_prefetch")


def test_runner_when_kill_switch_threshold_negative_then_names_key_value_and_fix(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "negative_threshold")


def test_runner_when_symbol_unknown_then_did_you_mean(outcomes: dict[str, Outcome]) -> None:
    _assert_teaches(outcomes, "unknown_symbol")


def test_runner_when_date_range_empty_then_names_db_coverage(outcomes: dict[str, Outcome]) -> None:
    _assert_teaches(outcomes, "empty_date_range")


def test_runner_when_market_db_missing_then_names_path_and_producer_command(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "missing_db")


def test_runner_when_market_db_locked_then_names_file_and_pid(outcomes: dict[str, Outcome]) -> None:
    _assert_teaches(outcomes, "locked_db")


def test_runner_when_asked_to_write_market_db_then_refuses_with_fix(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "runner_asked_to_write")


def test_runner_when_run_setting_invalid_then_names_key_and_fix(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "bad_run_setting")


def test_ingest_when_csv_has_bad_row_then_exit_2_and_one_line_plus_indented_report(
    outcomes: dict[str, Outcome],
) -> None:
    _assert_teaches(outcomes, "bad_csv")
    assert all(line.startswith("  ") for line in outcomes["bad_csv"].stderr.splitlines()[1:])


@pytest.mark.parametrize("where", ["run_dir", "output_subdir"])
def test_runner_when_run_dir_cannot_be_prepared_then_one_line_exit_2_and_no_stub(
    where: str, goog_db: Path, tmp_path: Path
) -> None:
    # Arrange: a path through a regular file, where Hydra creates the run dir or writes .hydra/
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    run_dir = blocker / "run" if where == "run_dir" else tmp_path / "run"
    args = ["+experiment=backtest", f"db.path={goog_db}", f"hydra.run.dir={run_dir}"]
    bad = run_dir if where == "run_dir" else blocker / "meta"
    if where == "output_subdir":
        args.append(f"hydra.output_subdir={bad}")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    # Act
    proc = _start(Case("runner", tuple(args), ""), env)
    _out, err = proc.communicate(timeout=120)
    # Assert
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert err.rstrip("\n") == (
        f"error: could not prepare the run directory: {bad}: Not a directory; choose a new "
        "hydra.run.dir (one run per directory, and hydra.output_subdir a plain name such as "
        ".hydra), then run again."
    )
    assert not (tmp_path / "run").exists(), "the refused run left its stub run dir behind"
