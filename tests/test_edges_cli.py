"""Every edge a user or a fault can hit (issue 14): the CLI's answer to each bad value or file.

Each case runs the real CLI in a subprocess and must end with exit code 2 and exactly one line on
stderr that names the key or file and the fix, no traceback, nothing written: the market DB is
unchanged and no run directory is left behind (item 18). The subprocesses run four at a time from
one module fixture, so the file costs about a quarter of the sum of its cases (about a minute on
two idle cores): it is ``slow`` (``make test-slow``, which CI runs); tests/test_edges_units.py checks
the same functions in-process in ``make test``.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from tests.helpers import REPO, make_market_db, read_shared_csv

pytestmark = pytest.mark.slow

GOOG_CSV = "goog_daily_2004_2013.csv"
ISO_HELP = (
    r"expected an ISO-8601 date or timestamp \(YYYY-MM-DD, optionally with THH:MM\[:SS\] and an "
    r"offset such as \+00:00; UTC when none\); e\.g\. {key}=2010-01-02 or {key}=2010-01-02T14:30:00\+00:00"
)
NOT_DUCKDB = (
    r"{p} is not a readable DuckDB database \(truncated, damaged or another file type\); rebuild it "
    r"with `python -m producers\.demo db\.path={p}` \(synthetic\) or "
    r"`python -m producers\.ingest source=<file> db\.path={p}`\."
)
NOT_A_FILE = (
    r"db\.path={p} is {what}, not a DuckDB database file; point db\.path at a \.duckdb file, e\.g\. "
    r"db\.path=outputs/market/demo\.duckdb \(create one with `python -m producers\.demo db\.path=<file>` "
    r"\(synthetic\) or `python -m producers\.ingest source=<file> db\.path=<file>`\)\."
)
IS_CSV = (
    r"{p} is not a readable DuckDB database \(it is a {kind} file\); ingest it into a market DB with "
    r"`python -m producers\.ingest source={p} db\.path=outputs/market/<name>\.duckdb` and point db\.path "
    r"at that file\."
)
SYMBOLS_HELP = r"e\.g\. symbols=\[GOOG,AAPL\], or symbols=null for every symbol in the market DB"


@dataclass
class Case:
    args: tuple[str, ...]
    pattern: str  # the whole stderr (one line, "error: " prefix added)
    module: str = "runner"
    code: int = 2
    dry_run: bool = True  # add run.dry_run=true (refusals must come before the plan ends anyway)
    env: dict[str, str] = field(default_factory=dict)
    preexec: Callable[[], None] | None = None
    default_dir: bool = (
        False  # no hydra.run.dir: Hydra names it outputs/backtest/<date>/<time>-<id>
    )


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    run_dir: Path


def _e(path: Path) -> str:
    return re.escape(str(path))


def _group_error(arg: str, group: str, shown: str, options: str) -> str:
    first = options.split(", ")[0]
    return (
        rf"{re.escape(arg)}: {group} is a config group and takes an option name, got {re.escape(shown)}; "
        rf"options: {options}\. Fix: {group}={first} \(a key inside the group is set as "
        rf"{group}\.<key>=<value>\)\."
    )


def _no_file_writes() -> None:
    """preexec_fn: every write to a regular file fails with EFBIG, as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _fixture_files(tmp: Path, goog: Path) -> dict[str, Path]:
    """Build every odd db.path the cases need: FIFO, socket, CSV, Parquet, damaged DBs, ..."""
    files = {"fifo": tmp / "pipe.duckdb", "csv": tmp / "bars.csv", "parquet": tmp / "bars.parquet"}
    os.mkfifo(files["fifo"])
    files["socket"] = tmp / "sock.duckdb"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(files["socket"]))
    files["csv"].write_text("symbol,ts,open,high,low,close,volume\nA,2024-01-01,1,1,1,1,1\n")
    read_shared_csv(GOOG_CSV).head(5).to_parquet(files["parquet"])
    files["empty"] = tmp / "empty.duckdb"
    files["empty"].write_bytes(b"")
    files["directory"] = tmp / "dir.duckdb"
    files["directory"].mkdir()
    # a path that says "corrupt" but holds a good DB: must run (item 10 classified by path before)
    files["corrupt_named_good"] = tmp / "corrupt_dir" / "corrupt.duckdb"
    files["corrupt_named_good"].parent.mkdir()
    shutil.copy(goog, files["corrupt_named_good"])
    files["checksum"] = tmp / "checksum.duckdb"
    data = bytearray(goog.read_bytes())
    data[12288 + 100 : 12288 + 200] = b"\xff" * 100  # inside the first data block
    files["checksum"].write_bytes(bytes(data))
    files["wal"] = tmp / "wal.duckdb"
    shutil.copy(goog, files["wal"])
    subprocess.run(  # leave a WAL beside the file (no checkpoint), then damage it
        [
            sys.executable,
            "-c",
            "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); "
            "c.execute(\"SET checkpoint_threshold='1GB'\"); c.execute('PRAGMA disable_checkpoint_on_shutdown'); "
            "c.execute('CREATE TABLE t AS SELECT range AS i FROM range(100000)'); os._exit(0)",
            str(files["wal"]),
        ],
        check=True,
    )
    wal = files["wal"].with_name("wal.duckdb.wal")
    raw = bytearray(wal.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\x13" * 64
    wal.write_bytes(bytes(raw))
    files["wrong_types"] = tmp / "wrong_types.duckdb"
    con = duckdb.connect(str(files["wrong_types"]))
    con.execute(
        "CREATE TABLE bars (symbol VARCHAR, ts TIMESTAMPTZ, open VARCHAR, high DOUBLE, low DOUBLE, "
        "close DOUBLE, volume BIGINT)"
    )
    con.execute("INSERT INTO bars VALUES ('GOOG', '2024-01-02 00:00:00+00', '1', 1, 1, 1, 1)")
    con.close()
    files["home"] = tmp / "home"
    (files["home"] / "data").mkdir(parents=True)
    shutil.copy(goog, files["home"] / "data" / "x.duckdb")
    return files


def _cases(db: Path, f: dict[str, Path]) -> dict[str, Case]:
    d = _e(db)
    cases = {
        # 1. not a regular file: refused before open() (a FIFO used to hang, deaf to Ctrl-C)
        "fifo": Case(
            (f"db.path={f['fifo']}",),
            NOT_A_FILE.format(p=_e(f["fifo"]), what=r"a named pipe \(FIFO\)"),
        ),
        "socket": Case(
            (f"db.path={f['socket']}",), NOT_A_FILE.format(p=_e(f["socket"]), what="a socket")
        ),
        "device": Case(
            ("db.path=/dev/null",), NOT_A_FILE.format(p="/dev/null", what="a character device")
        ),
        "ingest_into_fifo": Case(
            (f"source={REPO.parent / 'shared' / 'data' / GOOG_CSV}", f"db.path={f['fifo']}"),
            NOT_A_FILE.format(p=_e(f["fifo"]), what=r"a named pipe \(FIFO\)"),
            module="producers.ingest",
            dry_run=False,
        ),
        "ingest_from_fifo": Case(
            (f"source={f['fifo']}", f"db.path={f['csv'].parent / 'new.duckdb'}"),
            rf"source='{_e(f['fifo'])}' is not a regular file \(a named pipe, socket or device\); copy the "
            r"data into a CSV or Parquet file and name that file\.",
            module="producers.ingest",
            dry_run=False,
        ),
        "demo_into_fifo": Case(
            (f"db.path={f['fifo']}", "demo.n_bars=100", "demo.n_symbols=1"),
            NOT_A_FILE.format(p=_e(f["fifo"]), what=r"a named pipe \(FIFO\)"),
            module="producers.demo",
            dry_run=False,
        ),
        # 6. an empty halt file name would make the run dir itself the halt file
        "halt_file_empty": Case(
            ("run.halt_file=",),
            r"run\.halt_file must be a file name inside the run dir, was ''; e\.g\. run\.halt_file=HALT",
        ),
        # 7. ISO-8601 only, for every date key
        "start_us_order": Case(
            ("start=01/02/2010",), r"start='01/02/2010': " + ISO_HELP.format(key="start")
        ),
        "end_day_first": Case(
            ("end=13/02/2010",), r"end='13/02/2010': " + ISO_HELP.format(key="end")
        ),
        "demo_start_us_order": Case(
            (f"db.path={f['csv'].parent / 'demo.duckdb'}", "demo.start=01/02/2010"),
            r"demo\.start='01/02/2010': " + ISO_HELP.format(key=r"demo\.start"),
            module="producers.demo",
            dry_run=False,
        ),
        # 8. the bars table's layout is checked in the plan, so a dry run catches it
        "bars_wrong_types": Case(
            (f"db.path={f['wrong_types']}",),
            rf"{_e(f['wrong_types'])}: table bars does not have the market-DB layout \(column open is VARCHAR, "
            r"expected DOUBLE; column volume is BIGINT, expected DOUBLE\); it must be bars\(symbol VARCHAR, "
            r"ts TIMESTAMP WITH TIME ZONE, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE\)\. "
            r"Rebuild it with `python -m producers\.ingest source=<file> db\.path=<new file>` \(producers "
            r"always write this layout\)\.",
        ),
        # 9. a strategy that reads analytics on a DB without snapshots would never trade
        "momentum_without_snapshots": Case(
            ("+experiment=momentum", f"db.path={db}"),
            rf"strategy\.kind=momentum_rotation reads analytics snapshots, but the market DB {d} has none, "
            rf"so it would never trade; compute them with `python -m producers\.analytics db\.path={d}`, or "
            r"pick a strategy that reads bars only \(strategy=sma_cross\)\.",
        ),
        # 10. classified by exception type and message body, never by the path
        "checksum_corrupt": Case(
            (f"db.path={f['checksum']}",), NOT_DUCKDB.format(p=_e(f["checksum"]))
        ),
        "wal_corrupt": Case((f"db.path={f['wal']}",), NOT_DUCKDB.format(p=_e(f["wal"]))),
        "directory": Case(
            (f"db.path={f['directory']}",),
            NOT_A_FILE.format(p=_e(f["directory"]), what="a directory"),
        ),
        "corrupt_in_path_missing": Case(
            (f"db.path={f['corrupt_named_good'].parent / 'absent.duckdb'}",),
            rf"market DB not found at {_e(f['corrupt_named_good'].parent / 'absent.duckdb')} \(db\.path\); "
            r"create it first with .*",
        ),
        # 11. not a DuckDB database at all
        "csv_as_db": Case((f"db.path={f['csv']}",), IS_CSV.format(p=_e(f["csv"]), kind="CSV")),
        "parquet_as_db": Case(
            (f"db.path={f['parquet']}",), IS_CSV.format(p=_e(f["parquet"]), kind="Parquet")
        ),
        "empty_file_as_db": Case((f"db.path={f['empty']}",), NOT_DUCKDB.format(p=_e(f["empty"]))),
        "ingest_into_csv": Case(
            (f"source={REPO.parent / 'shared' / 'data' / GOOG_CSV}", f"db.path={f['csv']}"),
            IS_CSV.format(p=_e(f["csv"]), kind="CSV"),
            module="producers.ingest",
            dry_run=False,
        ),
        # 12. a config group given something that is not an option name
        "group_int": Case(
            ("market=-1",), _group_error("market=-1", "market", "-1", "chunked, direct")
        ),
        "group_null": Case(
            ("buffer=null",), _group_error("buffer=null", "buffer", "null", "duckdb, memory")
        ),
        "group_bool": Case(("db=true",), _group_error("db=true", "db", "True", "duckdb")),
        "group_nan": Case(
            ("execution=nan",), _group_error("execution=nan", "execution", "nan", "default")
        ),
        "group_nested_list": Case(
            ("strategy=[[1]]",),
            _group_error(
                "strategy=[[1]]", "strategy", "[[1]]", "momentum_rotation, rsi_revert, sma_cross"
            ),
        ),
        "group_big_int": Case(
            ("market=99999999999999999999999",),
            _group_error(
                "market=99999999999999999999999",
                "market",
                "99999999999999999999999",
                "chunked, direct",
            ),
        ),
        "key_big_int": Case(
            ("market.chunk_size=99999999999999999999999",),
            r"market\.chunk_size=99999999999999999999999: too large \(integers must fit in 64 bits, "
            r"\|value\| <= 9,223,372,036,854,775,807\); give a realistic value, e\.g\. market\.chunk_size=1000",
        ),
        # 13. an unknown log level used to exit 1 with no output (the logger was gone)
        **{
            f"log_level_{name}": Case(
                (f"run.log_level={value}",),
                r"run\.log_level must be one of TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL "
                rf"\(any case\), was '{shown}'; e\.g\. run\.log_level=DEBUG",
            )
            for name, value, shown in (
                ("foo", "FOO", "FOO"),
                ("abc", "abc", "abc"),
                ("true", "true", "True"),
                ("zero", "0", "0"),
            )
        },
        # 14. the rest of the bad values
        "db_path_empty": Case(
            ("db.path=",),
            r"db\.path is empty; give the market DB file, e\.g\. db\.path=outputs/market/demo\.duckdb",
        ),
        "start_before_1677": Case(
            ("start=1677-09-21",),
            r"start=1677-09-21: outside the supported range 1677-09-22 and 2262-04-11; e\.g\. "
            r"start=2010-01-02 \(ISO-8601\)",
        ),
        "start_number": Case(("start=-0.5",), r"start='-0\.5': " + ISO_HELP.format(key="start")),
        "symbols_nan": Case(
            ("symbols=NaN",),
            rf"symbols=nan: expected a list of symbol names, got a number; {SYMBOLS_HELP} "
            r"\(quote a numeric ticker: 'symbols=\[\"1000\"\]'\)",
        ),
        "symbols_int": Case(
            ("symbols=1_000",),
            rf"symbols=1000: expected a list of symbol names, got a number; {SYMBOLS_HELP} "
            r"\(quote a numeric ticker: 'symbols=\[\"1000\"\]'\)",
        ),
        "symbols_empty": Case(("symbols=[]",), rf"symbols=\[\] selects no symbol; {SYMBOLS_HELP}"),
        "symbols_missing_interpolation": Case(
            ("symbols=${missing_key}",),
            r"symbols: cannot resolve its interpolation \(Interpolation key 'missing_key' not found\); an "
            r"interpolation \$\{\.\.\.\} must name another key of the config \(e\.g\. \$\{db\.path\}\) or a "
            r"known resolver, so fix the name or give symbols a plain value\.",
        ),
        # 15. market.kind=direct keeps the chunked option's keys: say what to type
        "kind_without_option": Case(
            ("market.kind=direct",),
            r"market\.chunk_size: no such key for market kind='direct' \(keys: kind, validate, cache\); it comes "
            r"from the 'chunked' option, because market\.kind=direct changes only the kind\. Fix: select the "
            r"option with market=direct instead of market\.kind=direct\.",
        ),
        # 16. suggestions ignore case
        "symbol_lower_case": Case(
            ("symbols=[goog]",),
            rf"symbols: goog not in the market DB {d} \(it has: GOOG\)\. Did you mean 'GOOG'\? Fix: "
            rf"symbols=\[GOOG\], or ingest the missing symbol with `python -m producers\.ingest "
            rf"source=<file> db\.path={d}`\.",
        ),
        "option_upper_case": Case(
            ("market=Chunked",),
            r"market=Chunked: no option 'Chunked' in config group 'market' \(available: chunked, direct\)\. "
            r"Did you mean 'chunked'\? Fix: market=chunked, or add conf/market/Chunked\.yaml\.",
        ),
        # 17. a disk too full to write the run dir's first file
        "disk_full_at_start": Case(
            (),
            r"could not write {run}/\.hydra/config\.yaml: File too large; free space on that disk \(or raise "
            r"the limit\), or write elsewhere \(the runner: hydra\.run\.dir=<dir on another disk>\), then run again\.",
            dry_run=False,
            preexec=_no_file_writes,
        ),
    }
    return cases


# cases that must succeed (exit 0, "dry run OK") and still leave no run dir (item 18)
OK_CASES = {
    "dry_run_default_dir": lambda f: (),
    "corrupt_in_path_good": lambda f: (f"db.path={f['corrupt_named_good']}",),
    "symbols_scalar": lambda f: ("symbols=GOOG",),
    "tilde_path": lambda f: ("db.path=~/data/x.duckdb",),
}


def _run(case: Case, run_dir: Path, db: Path, env: dict[str, str]) -> Outcome:
    args = list(case.args)
    if case.module == "runner":
        experiment = (
            [] if any(a.startswith("+experiment=") for a in args) else ["+experiment=backtest"]
        )
        db_arg = [] if any(a.startswith("db.path=") for a in args) else [f"db.path={db}"]
        args = [*experiment, *db_arg, *args]
        if not case.default_dir:
            args.append(f"hydra.run.dir={run_dir}")
        if case.dry_run:
            args.append("run.dry_run=true")
    proc = subprocess.run(
        [sys.executable, "-m", case.module, *args],
        cwd=run_dir.parent.parent,  # default-named run dirs would land in <case>/outputs
        env={**env, **case.env},
        text=True,
        capture_output=True,
        timeout=300,
        preexec_fn=case.preexec,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr, run_dir)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("edges")
    db = make_market_db(tmp / "goog.duckdb", read_shared_csv(GOOG_CSV))
    files = _fixture_files(tmp, db)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["HOME"] = str(files["home"])
    cases = _cases(db, files)
    for name, args in OK_CASES.items():
        cases[name] = Case(args(files), r"", code=0, default_dir=name.endswith("default_dir"))
    cases["refused_default_dir"] = Case(
        ("symbols=[GOOGG]",), r"symbols: GOOGG not in the market DB .*", default_dir=True
    )
    reused = tmp / "cases" / "reused_run_dir" / "cwd" / "run"
    reused.mkdir(parents=True)
    (reused / ".hydra").mkdir()
    for name in ("results.duckdb", "runner.log", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        (reused / name).write_text(f"earlier run: {name}\n")
    cases["reused_run_dir"] = Case(
        (),
        rf"{_e(reused / 'results.duckdb')} already exists; a run dir is never reused\. Choose a new "
        r"hydra\.run\.dir\.",
        dry_run=False,
    )
    before = {
        p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (db, files["checksum"], files["csv"])
    }
    for name in cases:
        (tmp / "cases" / name / "cwd").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(_run, case, tmp / "cases" / name / "cwd" / "run", db, env)
            for name, case in cases.items()
        }
        outcomes = {name: future.result() for name, future in futures.items()}
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    yield {"cases": cases, "outcomes": outcomes, "unchanged": before == after, "tmp": tmp}


def _assert_refused(world: dict[str, object], name: str) -> None:
    case = world["cases"][name]  # type: ignore[index]
    outcome: Outcome = world["outcomes"][name]  # type: ignore[index]
    pattern = "error: " + case.pattern.replace("{run}", _e(outcome.run_dir))
    assert outcome.code == case.code, f"{name}: exit {outcome.code}, stderr:\n{outcome.stderr}"
    assert "Traceback" not in outcome.stderr
    assert re.fullmatch(pattern, outcome.stderr.rstrip("\n")), (
        f"{name}: stderr does not match\n  got:     {outcome.stderr!r}\n  pattern: {pattern!r}"
    )
    # item 18: nothing written, not even a stub run dir, nor default-named outputs/
    assert not outcome.run_dir.exists(), f"{name}: left {sorted(outcome.run_dir.rglob('*'))}"
    assert not (outcome.run_dir.parent / "outputs").exists()
    assert world["unchanged"], "a refused run changed a market DB"


def _names(prefix: str) -> list[str]:
    return [
        n
        for n in _cases(Path("/db"), dict.fromkeys(_FILE_KEYS, Path("/f")))
        if n.startswith(prefix)
    ]


_FILE_KEYS = (
    "fifo",
    "socket",
    "csv",
    "parquet",
    "empty",
    "directory",
    "corrupt_named_good",
    "checksum",
    "wal",
    "wrong_types",
    "home",
)


@pytest.mark.parametrize(
    "name", ["fifo", "socket", "device", "ingest_into_fifo", "ingest_from_fifo", "demo_into_fifo"]
)
def test_cli_when_db_path_is_not_a_regular_file_then_refused_before_open_issue14_item1(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


def test_runner_when_halt_file_empty_then_names_key_issue14_item6(world: dict[str, object]) -> None:
    _assert_refused(world, "halt_file_empty")


@pytest.mark.parametrize(
    "name", ["start_us_order", "end_day_first", "demo_start_us_order", "start_number"]
)
def test_cli_when_date_not_iso_8601_then_refused_with_example_issue14_item7(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


def test_runner_when_bars_table_has_wrong_types_then_dry_run_refuses_issue14_item8(
    world: dict[str, object],
) -> None:
    _assert_refused(world, "bars_wrong_types")


def test_runner_when_momentum_without_snapshots_then_names_producer_issue14_item9(
    world: dict[str, object],
) -> None:
    _assert_refused(world, "momentum_without_snapshots")


@pytest.mark.parametrize(
    "name", ["checksum_corrupt", "wal_corrupt", "directory", "corrupt_in_path_missing"]
)
def test_runner_when_market_db_damaged_then_exit_2_whatever_the_path_says_issue14_item10(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


def test_runner_when_path_contains_corrupt_but_db_is_good_then_dry_run_ok_issue14_item10(
    world: dict[str, object],
) -> None:
    outcome: Outcome = world["outcomes"]["corrupt_in_path_good"]  # type: ignore[index]
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.startswith("dry run OK: plan: 2148 bars")
    assert not outcome.run_dir.exists()  # item 18: a dry run writes nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_get_connection_when_file_unreadable_then_permission_message_issue14_item10(
    tmp_path: Path,
) -> None:
    from components.data.duckdb_client import get_connection
    from components.errors import DbUnreadableError

    path = make_market_db(tmp_path / "m.duckdb", read_shared_csv(GOOG_CSV).head(3))
    path.chmod(0)
    with pytest.raises(DbUnreadableError, match=r"permission denied; give your user read access"):
        get_connection(path)


@pytest.mark.parametrize(
    "name", ["csv_as_db", "parquet_as_db", "empty_file_as_db", "ingest_into_csv"]
)
def test_cli_when_db_path_is_not_a_duckdb_file_then_says_so_issue14_item11(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


@pytest.mark.parametrize(
    "name",
    [
        "group_int",
        "group_null",
        "group_bool",
        "group_nan",
        "group_nested_list",
        "group_big_int",
        "key_big_int",
    ],
)
def test_runner_when_group_override_is_not_a_name_then_one_line_issue14_item12(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


@pytest.mark.parametrize(
    "name", ["log_level_foo", "log_level_abc", "log_level_true", "log_level_zero"]
)
def test_runner_when_log_level_unknown_then_one_line_issue14_item13(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


@pytest.mark.parametrize(
    "name",
    [
        "db_path_empty",
        "start_before_1677",
        "symbols_nan",
        "symbols_int",
        "symbols_empty",
        "symbols_missing_interpolation",
    ],
)
def test_runner_when_value_is_bad_then_one_line_names_key_and_fix_issue14_item14(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


@pytest.mark.parametrize("name", ["symbols_scalar", "tilde_path"])
def test_runner_when_scalar_symbol_or_home_path_then_dry_run_ok_issue14_item14(
    world: dict[str, object], name: str
) -> None:
    outcome: Outcome = world["outcomes"][name]  # type: ignore[index]
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.startswith(
        "dry run OK: plan: 2148 bars, 2148 clock steps, 1 symbol(s) [GOOG]"
    )
    assert not outcome.run_dir.exists()


def test_runner_when_kind_overridden_without_option_then_says_what_to_type_issue14_item15(
    world: dict[str, object],
) -> None:
    _assert_refused(world, "kind_without_option")


@pytest.mark.parametrize("name", ["symbol_lower_case", "option_upper_case"])
def test_runner_when_name_differs_in_case_then_did_you_mean_issue14_item16(
    world: dict[str, object], name: str
) -> None:
    _assert_refused(world, name)


def test_runner_when_disk_too_full_to_start_then_one_line_exit_2_issue14_item17(
    world: dict[str, object],
) -> None:
    _assert_refused(world, "disk_full_at_start")


@pytest.mark.parametrize("name", ["dry_run_default_dir", "refused_default_dir"])
def test_runner_when_dry_or_refused_with_default_run_dir_then_no_outputs_dir_issue14_item18(
    world: dict[str, object], name: str
) -> None:
    outcome: Outcome = world["outcomes"][name]  # type: ignore[index]
    assert outcome.code == (0 if name.startswith("dry") else 2), outcome.stderr
    assert not (outcome.run_dir.parent / "outputs").exists()


def test_runner_when_run_dir_reused_then_refused_and_earlier_record_untouched_issue14_item18(
    world: dict[str, object],
) -> None:
    outcome: Outcome = world["outcomes"]["reused_run_dir"]  # type: ignore[index]
    case = world["cases"]["reused_run_dir"]  # type: ignore[index]
    assert outcome.code == 2 and re.fullmatch("error: " + case.pattern, outcome.stderr.rstrip("\n"))
    for name in ("results.duckdb", "runner.log", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (outcome.run_dir / name).read_text() == f"earlier run: {name}\n", name
    assert sorted(p.name for p in (outcome.run_dir / ".hydra").iterdir()) == [
        "config.yaml",
        "overrides.yaml",
    ]
