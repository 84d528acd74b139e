"""Derived job configs equal Hydra's own composition (issue 13: per-job overhead of sweeps)."""

from __future__ import annotations

import copy
import functools
import inspect
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, RunMode
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from runner import fast_compose
from runner.fast_compose import FastSweepConfigLoader
from tests.helpers import CONF_DIR

BASE = ["+experiment=backtest", "db.path=/tmp/m.duckdb", "symbols=[GOOG]"]


def _loaders() -> tuple[object, object, object]:
    """Return (Hydra's loader, the fast loader around it, the multirun master config)."""
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration(
        config_name="config",
        overrides=["hydra.sweep.dir=/tmp/sweep", *BASE],
        run_mode=RunMode.MULTIRUN,
    )
    return loader, FastSweepConfigLoader(loader), master


def _container(cfg: object) -> dict:
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[arg-type]


JOBS = [
    [*BASE, "strategy.fast=5", "strategy.slow=20"],
    [*BASE, "strategy.fast=7", "strategy.slow=20"],  # one value differs
    [*BASE, "strategy.fast=9", "strategy.slow=60"],  # both differ
    [*BASE[:2], "symbols=[AAPL,MSFT]", "strategy.fast=5", "strategy.slow=20"],  # a list value
    [*BASE, "strategy.fast=5", "strategy.slow=20", "market.chunk_size=100"],  # another shape
    [*BASE, "strategy.fast=6", "strategy.slow=20", "market.chunk_size=10000"],
    [*BASE, "strategy.fast=6", "strategy.slow=20", "start='2010-01-01'"],  # quoted string
    [*BASE, "strategy=rsi_revert", "strategy.period=9"],  # a group choice: composed by Hydra
    [*BASE, "strategy=rsi_revert", "strategy.period=21"],
]


def test_fast_compose_when_jobs_differ_in_plain_values_then_derived_configs_equal_hydras() -> None:
    """Every job config, derived or composed, equals what Hydra composes for the same overrides."""
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader, fast, master = _loaders()
        # Act
        pairs = [
            (fast.load_sweep_config(master, job), loader.load_sweep_config(master, job))
            for job in JOBS
        ]
    # Assert
    for job, (derived, composed) in zip(JOBS, pairs, strict=True):
        assert _container(derived) == _container(composed), job
    assert fast.derived >= 5 and fast.composed <= 4  # the fast path was actually taken


def test_fast_compose_when_a_value_has_the_wrong_type_then_hydras_error_is_raised() -> None:
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, fast, master = _loaders()
        fast.load_sweep_config(master, [*BASE, "strategy.fast=5"])
        # Act / Assert
        with pytest.raises(ConfigCompositionException, match=r"strategy\.fast=abc"):
            fast.load_sweep_config(master, [*BASE, "strategy.fast=abc"])


def test_fast_compose_when_a_key_is_unknown_then_hydras_error_is_raised(tmp_path: Path) -> None:
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, fast, master = _loaders()
        fast.load_sweep_config(master, [*BASE, "strategy.fast=5"])
        # Act / Assert
        with pytest.raises(ConfigCompositionException, match=r"strategy\.fsat"):
            fast.load_sweep_config(master, [*BASE, "strategy.fsat=5"])


def test_fast_compose_when_in_place_batch_was_validated_then_launch_configs_equal_hydras() -> None:
    """Issue 13: validation answers from values already applied; the launcher sets every one."""
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader, fast, master = _loaders()
        fast.in_place = True
        batch = [
            [*BASE, f"strategy.fast={f}", f"strategy.slow={s}"] for f in (5, 6) for s in (20, 30)
        ]
        # Act
        for job in batch:  # what Sweeper.validate_batch_is_legal does
            fast.load_sweep_config(master, job)
        validated = fast.validated
        got = [_container(fast.job_config(master, job)) for job in batch]
        expected = [_container(loader.load_sweep_config(master, job)) for job in batch]
    # Assert
    assert got == expected
    assert validated == 1  # 5/30 after 5/20 and 6/20: both values already applied


def test_fast_compose_when_validating_a_new_bad_value_then_hydras_error_is_raised() -> None:
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, fast, master = _loaders()
        fast.in_place = True
        for fast_value in (5, 6):
            fast.load_sweep_config(master, [*BASE, f"strategy.fast={fast_value}"])
        # Act / Assert
        with pytest.raises(ConfigCompositionException, match=r"strategy\.fast=abc"):
            fast.load_sweep_config(master, [*BASE, "strategy.fast=abc"])


def test_set_hydra_config_when_in_place_config_is_reused_then_same_hydra_config_as_set_config() -> (
    None
):
    """The copy updated in place equals what HydraConfig.set_config makes from scratch."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    from runner import launcher

    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, fast, master = _loaders()
        fast.in_place = True
        jobs = [[*BASE, f"strategy.fast={f}", "strategy.slow=20"] for f in (5, 6, 7)]
        for num, job in enumerate(jobs):
            cfg = fast.job_config(master, job)
            with read_write(cfg.hydra), open_dict(cfg):
                cfg.hydra.job.id = cfg.hydra.job.num = num
                cfg.hydra.runtime.output_dir = f"/tmp/sweep/{num}"
            # Act
            launcher.set_hydra_config(cfg)
            fast_view = OmegaConf.to_container(HydraConfig.get(), resolve=True)
            HydraConfig.instance().set_config(cfg)
            fresh = OmegaConf.to_container(HydraConfig.get(), resolve=True)
            launcher._VIEW.clear()
            launcher.set_hydra_config(cfg)  # the next job starts from a set_config copy again
            # Assert
            assert fast_view == fresh, job
            assert fast_view["job"]["num"] == num and fast_view["sweep"]["subdir"] == str(num)


@pytest.fixture
def restore_set_state() -> Iterator[None]:
    """Put Hydra's own ``Singleton.set_state`` back after a test that made a worker loader."""
    from hydra.core.singleton import Singleton

    original = inspect.getattr_static(Singleton, "set_state")
    yield
    Singleton.set_state = original  # type: ignore[method-assign]


def _in_worker(fast: FastSweepConfigLoader) -> FastSweepConfigLoader:
    """Return ``fast`` pickled and loaded as a joblib worker process does (another pid)."""
    blob = pickle.dumps(fast)
    fast._origin_pid = -1  # as seen from a worker: this loader was made by another process
    return pickle.loads(blob)


def test_fast_compose_when_pickled_to_a_worker_then_its_configs_equal_hydras(
    restore_set_state: None,
) -> None:
    """Issue 13: a worker loads the loader once and derives each job's config in place."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader, fast, master = _loaders()
        jobs = [
            [*BASE, f"strategy.fast={f}", f"strategy.slow={s}"] for f in (5, 6) for s in (20, 30)
        ]
        fast.load_sweep_config(master, jobs[0])  # the sweeper's first composition
        worker = _in_worker(fast)
        got, expected = [], []
        # Act: what hydra_joblib_launcher's execute_job does with each job
        for num, job in enumerate(jobs):
            cfg = worker.load_sweep_config(master, job)
            with open_dict(cfg):
                cfg.hydra.job.id, cfg.hydra.job.num = f"job_{num}", num
            HydraConfig.instance().set_config(cfg)  # makes cfg.hydra read-only
            got.append(_container(cfg))
            composed = loader.load_sweep_config(master, job)
            with open_dict(composed):
                composed.hydra.job.id, composed.hydra.job.num = f"job_{num}", num
            expected.append(_container(composed))
        again = pickle.loads(pickle.dumps(fast))
    # Assert
    assert got == expected
    assert worker is not fast and worker.reuse_configs and worker.composed == 0
    assert again is worker  # the next job's pickle: the same loader, loaded once per process


def test_fast_compose_when_pickled_in_its_own_process_then_the_loader_itself() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, fast, master = _loaders()
        fast.load_sweep_config(master, [*BASE, "strategy.fast=5"])
        # Act
        loaded = pickle.loads(pickle.dumps(fast))
        copied = copy.deepcopy(fast)
    # Assert
    assert loaded is fast
    assert copied is not fast and copied._templates.keys() == fast._templates.keys()


def test_keep_plugins_when_set_state_drops_plugins_then_the_same_plugins_without_a_rescan(
    restore_set_state: None,
) -> None:
    """Issue 13: a joblib worker's ``Singleton.set_state`` per job no longer rescans plugins."""
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from hydra.plugins.plugin import Plugin

    # Arrange
    before = Plugins.instance()
    known = sorted(c.__qualname__ for c in before.discover(Plugin))
    state = Singleton.get_state()  # what the joblib launcher sends: Plugins left out
    assert Plugins not in state["instances"]
    # Act
    installed = fast_compose.keep_plugins_across_set_state()
    Singleton.set_state(state)
    after = Plugins.instance()
    # Assert
    assert installed and not fast_compose.keep_plugins_across_set_state()  # installed once
    assert after is before
    assert sorted(c.__qualname__ for c in after.discover(Plugin)) == known
    Singleton.set_state(Singleton.get_state())  # Hydra's own rescan finds the same plugins
    assert sorted(c.__qualname__ for c in Plugins.instance().discover(Plugin)) == known


class _Sweeper(Sweeper):
    """The parts of a sweeper that ``Sweeper.validate_batch_is_legal`` reads."""

    def __init__(self, loader: object, master: object) -> None:
        self.hydra_context = HydraContext(config_loader=loader, callbacks=None)  # type: ignore[arg-type]
        self.config = master

    def setup(self, **kwargs: object) -> None:  # pragma: no cover - not called
        raise NotImplementedError

    def sweep(self, arguments: list[str]) -> object:  # pragma: no cover - not called
        raise NotImplementedError


def test_fast_compose_when_sweeper_validates_checked_values_then_no_copy_and_launch_equals_hydras() -> (
    None
):
    """Issue 13: the basic/joblib launchers' validation skips jobs whose values were all checked."""
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader, fast, master = _loaders()
        batch = [
            [*BASE, f"strategy.fast={f}", f"strategy.slow={s}"] for f in (5, 6) for s in (20, 30)
        ]
        # Act
        _Sweeper(fast, master).validate_batch_is_legal(batch)
        validated = fast.validated
        got = [_container(fast.load_sweep_config(master, job)) for job in batch]  # the launcher
        expected = [_container(loader.load_sweep_config(master, job)) for job in batch]
        with pytest.raises(ConfigCompositionException, match=r"strategy\.fast=abc"):
            _Sweeper(fast, master).validate_batch_is_legal([[*BASE, "strategy.fast=abc"]])
    # Assert
    assert validated == 1  # 6/30 after 5/20, 5/30 and 6/20: both values already applied
    assert got == expected and fast.validated == 1


def _master(loader: object, sweep: list[str]) -> object:
    """The multirun's own config for BASE plus ``sweep`` (sweep overrides left unapplied)."""
    return loader.load_configuration(  # type: ignore[attr-defined]
        config_name="config",
        overrides=["hydra.sweep.dir=/tmp/sweep", "hydra.mode=MULTIRUN", *BASE, *sweep],
        run_mode=RunMode.MULTIRUN,
    )


def _flags(cfg: object) -> tuple[object, ...]:
    return tuple(
        node._get_flag(flag)  # type: ignore[attr-defined]
        for node in (cfg, cfg.hydra)  # type: ignore[attr-defined]
        for flag in ("struct", "readonly")
    )


@pytest.mark.parametrize(
    ("sweep", "jobs"),
    [
        (
            ["strategy.fast=range(5,8)", "strategy.slow=20,60"],
            [["strategy.fast=5", "strategy.slow=20"], ["strategy.fast=7", "strategy.slow=60"]],
        ),
        (  # a swept quoted string and a performance key between fixed ones
            [
                "market.chunk_size=100,10000",
                "run.log_level=WARNING",
                "start='2010-01-01','2012-06-01'",
            ],
            [
                ["market.chunk_size=100", "run.log_level=WARNING", "start='2010-01-01'"],
                ["market.chunk_size=10000", "run.log_level=WARNING", "start='2012-06-01'"],
            ],
        ),
    ],
)
def test_fast_compose_when_jobs_only_pick_swept_values_then_first_job_derives_from_master(
    sweep: list[str], jobs: list[list[str]]
) -> None:
    """Issue 13: the multirun's config is the template; no job of the grid is composed."""
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = _master(loader, sweep)
        OmegaConf.set_readonly(master.hydra, True)  # as HydraConfig.set_config leaves it
        fast = FastSweepConfigLoader(loader)
        # Act
        got = [fast.load_sweep_config(master, [*BASE, *job]) for job in jobs]
        expected = [loader.load_sweep_config(master, [*BASE, *job]) for job in jobs]
    # Assert
    assert [_container(c) for c in got] == [_container(c) for c in expected]
    assert [_flags(c) for c in got] == [_flags(c) for c in expected]
    assert (fast.from_master, fast.composed) == (1, 0)


@pytest.mark.parametrize(
    ("sweep", "job"),
    [
        (["strategy=sma_cross,rsi_revert"], ["strategy=rsi_revert"]),  # a swept group
        (["strategy.fast=5,6"], ["strategy.fast=5", "market.chunk_size=100"]),  # another list
        (["strategy.fast=5,6"], ["+strategy.extra=1"]),  # not the swept key's value
    ],
)
def test_fast_compose_when_job_is_not_the_masters_shape_then_hydra_composes_it(
    sweep: list[str], job: list[str]
) -> None:
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = _master(loader, sweep)
        fast = FastSweepConfigLoader(loader)
        # Act
        try:
            got = _container(fast.load_sweep_config(master, [*BASE, *job]))
        except ConfigCompositionException:
            got = "refused"
        try:
            expected = _container(loader.load_sweep_config(master, [*BASE, *job]))
        except ConfigCompositionException:
            expected = "refused"
    # Assert
    assert got == expected
    assert fast.from_master == 0


@pytest.mark.parametrize(
    ("overrides", "plain"),
    [
        ([*BASE, "strategy.fast=7"], True),
        ([*BASE, "run.name=${strategy.kind}"], False),  # an interpolation: resolved by the job
    ],
)
def test_launcher_container_when_plain_then_it_is_the_resolved_config(
    overrides: list[str], plain: bool
) -> None:
    """Issue 13: the job takes the launcher's container only where it equals the resolved one."""
    from runner import launcher
    from runner.plan import check_interpolations
    from tests.helpers import compose_config

    # Arrange
    cfg = compose_config(overrides)  # the task config: no hydra node
    # Act
    container = OmegaConf.to_container(cfg, resolve=False)
    # Assert
    assert launcher._plain_tree(container) is plain
    if plain:
        assert container == check_interpolations(cfg)
        launcher._RESOLVED[:] = [(cfg, container)]
        assert launcher.take_resolved(copy.deepcopy(cfg)) is None  # another config: not handed
        assert launcher.take_resolved(cfg) is container
        assert launcher.take_resolved(cfg) is None  # taken once


def test_fast_compose_when_in_place_values_repeat_or_change_then_each_config_equals_hydras() -> (
    None
):
    """A value already held by the in-place config is not set again; a changed one is."""
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader, fast, master = _loaders()
        fast.in_place = True
        jobs = [
            [*BASE[:2], f"symbols={symbols}", f"strategy.fast={f}"]
            for symbols, f in [("[GOOG]", 5), ("[GOOG]", 6), ("[AAPL,MSFT]", 6), ("[GOOG]", 6)]
        ]
        # Act
        got, task = [], []
        for job in jobs:
            cfg = fast.job_config(master, job)
            got.append(_container(cfg))
            in_place = fast.task_config(cfg)  # None for the first job (composed by Hydra)
            task.append(_container(in_place) if in_place is not None else None)
        expected = [_container(loader.load_sweep_config(master, job)) for job in jobs]
    # Assert
    assert got == expected
    assert task[0] is None and all(t is not None for t in task[1:])
    for t, e in zip(task[1:], expected[1:], strict=True):
        assert t == {k: v for k, v in e.items() if k != "hydra"}


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["run.plot=true", "run.metrics_every_s=2", "run.log_level=debug"],
        ["run.extras=false", "run.progress=off", "run.name=x"],
        ["run.metrics_every_s=3"],  # an int for a float field: converted as OmegaConf converts
    ],
)
def test_run_config_when_built_from_resolved_values_then_equals_the_schema_object(
    overrides: list[str],
) -> None:
    """Issue 13: run's typed config from the resolved dict equals OmegaConf.to_object's."""
    from dataclasses import asdict

    from components.registry import direct_dataclass
    from runner.config import RunConfig
    from runner.plan import check_interpolations
    from tests.helpers import compose_config

    # Arrange
    cfg = compose_config([*BASE, *overrides])
    # Act
    got = direct_dataclass(RunConfig, check_interpolations(cfg)["run"])
    expected = OmegaConf.to_object(cfg.run)
    # Assert
    assert got == expected
    assert [type(v) for v in asdict(got).values()] == [type(v) for v in asdict(expected).values()]


@pytest.mark.parametrize(
    "overrides",
    [
        [*BASE, "strategy.fast=7"],
        [*BASE, "strategy=rsi_revert", "hydra.run.dir=/tmp/x", "run.name=${strategy.kind}"],
    ],
)
def test_reuse_mode_probe_when_single_run_then_one_composition_equals_hydras_run_config(
    overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: a single run takes the config of Hydra's hydra.mode probe, equal to its own."""
    from hydra._internal.hydra import Hydra

    composed: list[str] = []
    original = Hydra.compose_config

    def counting(self: object, *args: object, **kwargs: object) -> object:
        composed.append(str(kwargs.get("run_mode")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Hydra, "compose_config", counting)
    monkeypatch.setattr(Hydra, "get_mode", Hydra.get_mode)  # restored after the test
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        run_overrides = [*overrides, "hydra.mode=RUN"]
        expected = original(hydra, "config", run_overrides, run_mode=RunMode.RUN)
        assert fast_compose.reuse_mode_probe_for_run(list(overrides))
        # Act: what hydra's _run_hydra does for a run
        mode = hydra.get_mode(config_name="config", overrides=list(overrides))
        got = hydra.compose_config(
            config_name="config",
            overrides=run_overrides,
            with_log_configuration=False,
            run_mode=RunMode.RUN,
        )
    # Assert
    assert mode is None and len(composed) == 1  # the probe's composition only
    assert _container(got) == _container(expected)
    assert _flags(got) == _flags(expected)


def test_reuse_mode_probe_when_a_run_gets_a_sweep_value_then_hydras_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hydra._internal.hydra import Hydra

    monkeypatch.setattr(Hydra, "compose_config", Hydra.compose_config)
    monkeypatch.setattr(Hydra, "get_mode", Hydra.get_mode)
    overrides = [*BASE, "strategy.fast=5,6"]
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        assert fast_compose.reuse_mode_probe_for_run(list(overrides))
        hydra.get_mode(config_name="config", overrides=list(overrides))
        # Act / Assert
        with pytest.raises(ConfigCompositionException, match="Ambiguous value"):
            hydra.compose_config(
                config_name="config", overrides=[*overrides, "hydra.mode=RUN"], run_mode=RunMode.RUN
            )


@pytest.mark.parametrize(
    "sweep",
    [
        ["hydra.sweep.dir=/tmp/sweep"],  # Hydra's default subdir: ${hydra.job.num}
        ["hydra.sweep.dir=/tmp/s_${hydra.job.name}", "hydra.sweep.subdir=job_${hydra.job.num}"],
        ["hydra.sweep.dir=/tmp/plain", "hydra.sweep.subdir=fixed"],
    ],
)
def test_sweep_value_when_read_directly_then_equals_omegaconfs_resolution(
    sweep: list[str],
) -> None:
    """Issue 13: the launcher's job dir without a grammar parse per job equals OmegaConf's."""
    from omegaconf import open_dict, read_write

    from runner.launcher import _sweep_value

    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        cfg = loader.load_configuration(
            config_name="config", overrides=[*sweep, *BASE], run_mode=RunMode.MULTIRUN
        )
        with read_write(cfg.hydra), open_dict(cfg):
            cfg.hydra.job.num = 7
        # Act
        got = [_sweep_value(cfg, key) for key in ("dir", "subdir")]
        # Assert
        assert got == [str(cfg.hydra.sweep.dir), str(cfg.hydra.sweep.subdir)]


@functools.cache
def _base_container() -> dict:
    from tests.helpers import compose_config

    return OmegaConf.to_container(compose_config(BASE), resolve=False)  # type: ignore[return-value]


_SWEPT = st.one_of(
    st.integers(-(10**6), 10**18),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["5", "true", "abc", "null", "", "a: b", "x" * 90]),
    st.lists(st.integers(0, 3), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(jobs=st.lists(st.lists(st.tuples(st.integers(0, 5), _SWEPT), max_size=3), max_size=6))
def test_yaml_splicer_when_jobs_vary_some_leaves_then_text_equals_a_whole_dump(
    jobs: list[list[tuple[int, object]]],
) -> None:
    """Issue 13: each job's .hydra/config.yaml spliced from the base's text equals a full dump."""
    from runner.fast_compose import YamlSplicer, container_yaml

    # Arrange
    base = _base_container()
    paths = [
        ("strategy", "fast"),
        ("strategy", "slow"),
        ("market", "chunk_size"),
        ("broker", "cash"),
        ("run", "name"),
        ("symbols",),
    ]
    splicer = YamlSplicer()
    # Act / Assert
    for changes in [[], *jobs]:
        container = copy.deepcopy(base)
        for index, value in changes:
            node = container
            for part in paths[index][:-1]:
                node = node[part]
            node[paths[index][-1]] = value
        assert splicer.text(container) == container_yaml(container)


def test_yaml_splicer_when_a_grid_varies_numbers_then_it_splices_instead_of_dumping() -> None:
    from runner.fast_compose import YamlSplicer, container_yaml

    # Arrange
    splicer = YamlSplicer()
    texts, expected = [], []
    # Act
    for fast, slow in [(10, 30), (5, 30), (7, 60), (9, 20)]:
        container = copy.deepcopy(_base_container())
        container["strategy"]["fast"], container["strategy"]["slow"] = fast, slow
        texts.append(splicer.text(container))
        expected.append(container_yaml(container))
    # Assert
    assert texts == expected
    assert splicer._paths == (("strategy", "fast"), ("strategy", "slow"))  # the cut text serves
