"""Compose the configs of a sweep's jobs in ~1 ms each instead of ~120 ms.

Hydra composes every job of a multirun from scratch (defaults tree, every YAML file, schema
merges), and its sweeper composes each one a second time to validate the batch first: on a
50-job grid that was ~12 s of a 35 s sweep. Jobs of a grid differ only in the values of a few
plain ``key=value`` overrides (``strategy.fast=7``), so ``FastSweepConfigLoader`` composes the
first job of each *shape* (the same overrides in the same order, differing at most in the values
of plain value overrides) with Hydra, and derives the others from it: a copy of that config
with the differing values set exactly as Hydra sets them (``OmegaConf.update(..., merge=True)``
in struct mode), ``hydra.overrides.task`` and ``hydra.job.override_dirname`` recomputed.

Anything else (a group choice such as ``strategy=rsi_revert``, ``+key``/``~key``/``++key``,
``hydra.*`` keys, a key given twice, dict values, a failure while deriving) goes through Hydra's
own composition, which also produces Hydra's error messages. ``tests/test_sweep.py`` checks
that derived configs equal composed ones. ``install()`` (called by the sweep report callback
when the multirun starts) wraps the config loader that Hydra hands to the sweeper and the
launcher, so the basic, joblib and submitit launchers all use it; set
``hydra.callbacks.sweep_report.fast_compose=false`` to compose every job with Hydra.
"""

from __future__ import annotations

import copy
import os
import pickle
import sys
import uuid
import weakref
from typing import Any

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, ListConfig, OmegaConf, ValueNode, open_dict, read_write

_ABSENT = object()
_PRIMITIVES = (int, float, str, bool, type(None))


class FastSweepConfigLoader:
    """A ConfigLoader whose ``load_sweep_config`` derives same-shape jobs from one composed job."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._templates: dict[tuple[Any, ...], tuple[list[Override], DictConfig]] = {}
        self._scratch: dict[tuple[Any, ...], DictConfig] = {}
        self._task_scratch: dict[int, DictConfig] = {}  # id(scratch) -> its config minus hydra
        # shape -> {key: (type, repr)} of the plain values last set on its scratch (and its task)
        self._scratch_values: dict[tuple[Any, ...], dict[str, tuple[str, str]]] = {}
        self.composed = 0
        self.derived = 0
        self.from_master = 0  # shapes whose template is the multirun's config (no composition)
        # set by a launcher that runs one job at a time and drops its config afterwards
        # (``hydra/launcher=batched``): derived configs are then one per-shape config updated in
        # place, not a deep copy per call (~10-30 ms each; the sweeper's validation calls too)
        self.in_place = False
        # set in a worker process of a parallel launcher (``_restore_loader``): each job's config
        # is the per-shape one updated in place (Hydra's ``run_job`` deep-copies what it keeps),
        # but every call sets the job's values (only the sweeper's validation skips them)
        self.reuse_configs = False
        self._parsed: dict[str, Override] = {}  # override text -> parsed (jobs share values)
        self._plain_memo: dict[str, bool] = {}  # override text -> a plain value override?
        # (shape, key, value) applied without error to that shape's config (in-place mode)
        self._applied: set[tuple[Any, ...]] = set()
        self.validated = 0  # in-place load_sweep_config calls answered from ``_applied``
        self._token = uuid.uuid4().hex  # names this loader in worker processes (``__reduce__``)
        self._pickled: tuple[int, bytes] | None = None  # (templates at pickling, their pickle)
        self._origin_pid = os.getpid()
        _ORIGINS[self._token] = self

    def __getattr__(self, name: str) -> Any:  # every other ConfigLoader method is Hydra's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __deepcopy__(self, memo: dict[int, Any]) -> FastSweepConfigLoader:
        """Copy every attribute, as ``copy.deepcopy`` does without ``__reduce__``."""
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (token, Hydra's loader and the shapes' templates, pickled once).

        Hydra's joblib launcher pickles its ``hydra_context`` (this loader included) and Hydra's
        singletons (which hold it again) for every job. Loading ~50 KB of configs and Hydra's
        config repository per job cost ~10 ms in the worker and re-created the loader, so each
        job started without the templates' derived state of the jobs before it. The payload is
        pickled once per set of templates; a worker unpickles it once per process
        (``_restore_loader``) and keeps the loader across its jobs.
        """
        version = len(self._templates)
        if self._pickled is None or self._pickled[0] != version:
            payload = {"inner": self.inner, "templates": self._templates}
            self._pickled = (version, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        return (_restore_loader, (f"{self._token}:{version}", self._pickled[1]))

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        """Return the job's config (Hydra's ``ConfigLoader`` method).

        Called by the sweeper checking the batch before it launches
        (``Sweeper.validate_batch_is_legal``, which drops the result), or by anyone in in-place
        mode (the batched launcher asks for its jobs' configs with ``job_config``): a job whose
        every plain value was already applied without error to a config of its shape is then
        legal, since each value is set on its own node, and its values are not set again (the
        launcher's call sets them). Every other call returns the job's whole config.
        """
        validating = self.in_place or _called_by_batch_validation()
        return self._load(master_config, sweep_overrides, validating=validating)

    def job_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        """Return the job's config with every value set (what a launcher runs)."""
        return self._load(master_config, sweep_overrides, validating=False)

    def _load(
        self, master_config: DictConfig, sweep_overrides: list[str], *, validating: bool
    ) -> DictConfig:
        try:
            parsed = self._parse(list(sweep_overrides))
            shape = self._shape(parsed)
        except Exception:  # Hydra composes it and reports a bad override its own way
            parsed, shape = [], None
        template = self._templates.get(shape) if shape is not None else None
        if template is None and shape is not None:
            template = self._template_from_master(master_config, parsed, shape)
        if template is not None:
            reuse = self.in_place or self.reuse_configs
            scratch = self._scratch_for(shape, template) if reuse else None
            pairs = self._pairs(shape, parsed)
            if validating and self._applied.issuperset(pairs):
                self.validated += 1  # the caller drops it: the template serves when not in place
                return scratch if scratch is not None else template[1]
            derived = self._derive(template, parsed, scratch, shape)
            if derived is not None and self.reuse_configs and not self.in_place:
                # the last job's ``HydraConfig.set_config`` made this config's hydra node
                # read-only; a launcher sets ``hydra.job.id`` on it as on a fresh config
                OmegaConf.set_readonly(derived.hydra, template[1].hydra._get_flag("readonly"))
            if derived is not None:
                OmegaConf.copy_cache(from_config=master_config, to_config=derived)
                self.derived += 1
                self._applied.update(pairs)
                return derived
        cfg = self.inner.load_sweep_config(master_config, list(sweep_overrides))
        self.composed += 1
        if shape is not None and shape not in self._templates:
            self._templates[shape] = (parsed, copy.deepcopy(cfg))
            self._applied.update(self._pairs(shape, parsed))
        return cfg

    def _template_from_master(
        self, master_config: DictConfig, parsed: list[Override], shape: tuple[Any, ...]
    ) -> tuple[list[Override], DictConfig] | None:
        """Return the multirun's own config as the template of a job's shape, or None.

        The master config is composed from the same primary config and overrides as every job,
        with each sweep override left out (its key keeps its default). A job whose overrides
        are the master's, position by position, except that each sweep override became a plain
        value of the same key differs from it only in those values, ``hydra.overrides.task``
        and ``hydra.job.override_dirname``: what ``_derive`` sets. So the first job of a grid
        needs no composition of its own (~0.1 s at the start of every sweep). Anything else (a
        swept group, an added key, a different override list, a default left missing, which
        the multirun skips but a job's composition refuses) returns None: Hydra composes it.
        """
        try:
            base = self._parse([str(o) for o in master_config.hydra.overrides.task])
            choices = master_config.hydra.runtime.choices
            if len(base) != len(parsed) or any(v == "???" for v in choices.values()):
                return None
            for (kind, _), old, new in zip(shape, base, parsed, strict=True):
                if old.input_line == new.input_line:
                    continue
                if kind != "value" or not old.is_sweep_override():
                    return None
                if old.key_or_group != new.key_or_group or old.type != OverrideType.CHANGE:
                    return None
            config = copy.deepcopy(master_config)
            OmegaConf.set_readonly(config.hydra, False)  # as composed (a sweeper may have set it)
            template = (base, config)
        except Exception:  # any doubt: Hydra composes the job
            return None
        self._templates[shape] = template
        self.from_master += 1
        return template

    def _parse(self, overrides: list[str]) -> list[Override]:
        """Parse overrides as Hydra does, each distinct text once per sweep (~2-5 ms each)."""
        missing = list(dict.fromkeys(o for o in overrides if o not in self._parsed))
        if missing:
            if len(self._parsed) > 100_000:
                self._parsed.clear()
                self._plain_memo.clear()
            parsed = OverridesParser.create().parse_overrides(missing)
            self._parsed.update(zip(missing, parsed, strict=True))
        return [self._parsed[o] for o in overrides]

    @staticmethod
    def _pairs(shape: tuple[Any, ...], parsed: list[Override]) -> set[tuple[Any, ...]]:
        """Return (shape, key, value) for each plain value of the job (type-exact values)."""
        return {
            (shape, o.key_or_group, type(o.value()).__name__, repr(o.value()))
            for (kind, _), o in zip(shape, parsed, strict=True)
            if kind == "value"
        }

    def _shape(self, parsed: list[Override]) -> tuple[Any, ...] | None:
        """Return the override list with plain values blanked out; None when a key repeats."""
        keys = [o.key_or_group for o in parsed]
        if len(set(keys)) != len(keys):
            return None
        return tuple(
            ("value", o.key_or_group) if self._plain_cached(o) else ("other", o.input_line)
            for o in parsed
        )

    def _plain_cached(self, override: Override) -> bool:
        """``_plain``, once per override text (it asks the config repository for groups)."""
        known = self._plain_memo.get(override.input_line)
        if known is None:
            known = self._plain_memo[override.input_line] = self._plain(override)
        return known

    def _plain(self, override: Override) -> bool:
        key = override.key_or_group
        if (
            override.type != OverrideType.CHANGE
            or override.package is not None
            or override.is_sweep_override()
            or key.startswith("hydra")
            or "/" in key
        ):
            return False
        try:
            if self.inner.repository.group_exists(key.replace(".", "/")):
                return False
        except AttributeError:
            return False
        return _plain_value(override.value())

    def _scratch_for(self, shape: Any, template: tuple[list[Override], DictConfig]) -> DictConfig:
        scratch = self._scratch.get(shape)
        if scratch is None:
            scratch = self._scratch[shape] = copy.deepcopy(template[1])
            task = copy.deepcopy(template[1])
            with open_dict(task):
                del task["hydra"]
            self._task_scratch[id(scratch)] = task
        return scratch

    def task_config(self, cfg: DictConfig) -> DictConfig | None:
        """Return the in-place job config's task part (no ``hydra`` node), kept in step with it.

        What ``runner.launcher`` hands the task function: the same values as a deep copy of
        ``cfg`` without ``hydra``, updated in place instead of copied per job. None for a config
        that is not one of this loader's in-place configs.
        """
        return (
            self._task_scratch.get(id(cfg))
            if any(cfg is s for s in self._scratch.values())
            else None
        )

    def _derive(
        self,
        template: tuple[list[Override], DictConfig],
        parsed: list[Override],
        scratch: DictConfig | None = None,
        shape: tuple[Any, ...] = (),
    ) -> DictConfig | None:
        """Return the job's config: a copy of the template, or ``scratch`` updated in place.

        ``scratch`` holds the values of whichever job used it last, so every plain value of the
        shape is set again (the other overrides of a shape are the template's own).
        """
        base_overrides, base_cfg = template
        cfg = copy.deepcopy(base_cfg) if scratch is None else scratch
        try:
            reset = [scratch is not None and kind == "value" for kind, _ in shape] or [False] * len(
                parsed
            )
            for old, new, again in zip(base_overrides, parsed, reset, strict=True):
                if old.input_line == new.input_line and not again:
                    continue
                key, value = new.key_or_group, new.value()
                if again:  # a plain value of an in-place (scratch) config of a known shape
                    # already holding this exact value (set by an earlier job): nothing to do;
                    # a list value (symbols=[GOOG]) costs a merge per job otherwise
                    mark = (type(value).__name__, repr(value))
                    held = self._scratch_values.setdefault(shape, {})
                    if held.get(key) == mark:
                        continue
                    task = self._task_scratch[id(scratch)]  # plain keys are never hydra.* keys
                    if set_leaf(cfg, key, value):
                        if not set_leaf(task, key, value):
                            OmegaConf.update(task, key, value, merge=True)
                        held[key] = mark
                        continue
                node = OmegaConf.select(cfg, key, default=_ABSENT)
                if node is _ABSENT or isinstance(node, DictConfig):
                    return None
                OmegaConf.update(cfg, key, value, merge=True)
                if scratch is not None:
                    task = self._task_scratch[id(scratch)]
                    OmegaConf.update(task, key, value, merge=True)
                    held = self._scratch_values.setdefault(shape, {})
                    held[key] = (type(value).__name__, repr(value))
            app = [o for o in parsed if not o.is_hydra_override()]
            with read_write(cfg.hydra), open_dict(cfg.hydra):
                lines = [o.input_line for o in app]
                if not set_string_list(cfg.hydra, "overrides.task", lines):
                    cfg.hydra.overrides.task = lines
                dirname = cfg.hydra.job.config.override_dirname
                cfg.hydra.job.override_dirname = get_overrides_dirname(
                    overrides=app,
                    kv_sep=dirname.kv_sep,
                    item_sep=dirname.item_sep,
                    exclude_keys=dirname.exclude_keys,
                )
        except Exception:  # let Hydra compose it (and word any error its own way)
            return None
        return cfg


def _called_by_batch_validation() -> bool:
    """Return True when ``load_sweep_config``'s caller is ``Sweeper.validate_batch_is_legal``.

    Hydra's sweepers compose every job of a batch once to check it before launching, then drop
    the configs; the launcher composes each job again. Recognising that caller (by its code
    object, shared by every sweeper that inherits it) lets an already-checked job skip a ~10-20
    ms copy of its config. Any other caller gets the whole config.
    """
    from hydra.plugins.sweeper import Sweeper

    caller = sys._getframe(2)  # _called_by_batch_validation <- load_sweep_config <- caller
    return caller.f_code is Sweeper.validate_batch_is_legal.__code__


_ORIGINS: weakref.WeakValueDictionary[str, FastSweepConfigLoader] = weakref.WeakValueDictionary()
_PROCESS_LOADERS: dict[str, FastSweepConfigLoader] = {}  # token:version -> restored loader


def _restore_loader(token: str, payload: bytes) -> FastSweepConfigLoader:
    """Return this process's loader for ``token``, unpickling ``payload`` only the first time.

    ``token`` is the loader's id and how many templates it had when pickled: a loader with more
    shapes (a later batch) is restored again. In the process that made the loader this returns
    the loader itself.
    """
    name, _, version = token.partition(":")
    origin = _ORIGINS.get(name)
    if origin is not None and origin._origin_pid == os.getpid():
        return origin
    loader = _PROCESS_LOADERS.get(token)
    if loader is None:
        state = pickle.loads(payload)
        loader = FastSweepConfigLoader(state["inner"])
        loader._templates = state["templates"]
        loader._pickled = (int(version), payload)
        _PROCESS_LOADERS.clear()  # a worker serves one sweep's loader at a time
        _PROCESS_LOADERS[token] = loader
        serve_jobs_in_this_worker(loader)
    return loader


def serve_jobs_in_this_worker(loader: FastSweepConfigLoader) -> None:
    """Set up ``loader`` in a worker process of a parallel launcher (loky or forked joblib).

    One job runs at a time per worker and Hydra's ``run_job`` copies what it keeps, so each
    job's config is the per-shape one updated in place; and the worker's ``Plugins`` survive
    the ``Singleton.set_state`` of every job.
    """
    loader.reuse_configs = True
    keep_plugins_across_set_state()


def keep_plugins_across_set_state() -> bool:
    """Make ``Singleton.set_state`` keep this process's ``Plugins`` instead of rescanning them.

    Hydra's joblib launcher calls ``Singleton.set_state`` at the start of every job in a worker.
    The state it sends leaves ``Plugins`` out, so each job rescanned every plugin module
    (re-executing each one: ~30-50 ms per job). The plugins of a process do not change between
    its jobs, so the process's ``Plugins`` instance (from its first scan) is put back into the
    state. Installed only in worker processes (``_restore_loader``); returns True when installed.
    """
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton

    original = Singleton.set_state
    if getattr(original, "keeps_plugins", False):
        return False

    def set_state(state: Any) -> None:
        plugins = Singleton._instances.get(Plugins)
        if plugins is not None and isinstance(state.get("instances"), dict):
            state["instances"].setdefault(Plugins, plugins)
        original(state)

    set_state.keeps_plugins = True  # type: ignore[attr-defined]
    Singleton.set_state = staticmethod(set_state)  # type: ignore[method-assign]
    return True


def set_leaf(cfg: DictConfig, key: str, value: Any) -> bool:
    """Set ``key`` (dotted) of ``cfg`` to ``value`` on its existing value node; False if it has none.

    What ``OmegaConf.update`` ends with for a plain value on an existing leaf (the node's own
    validation and conversion: an integer node refuses "abc", a string node stores "5" for 5),
    without walking the flags and merge machinery (~30 us against <1 us). Lists, mappings and
    missing keys return False for the caller's ``OmegaConf.update``.
    """
    if isinstance(value, list | dict | ListConfig | DictConfig):
        return False
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig):
            return False
        node = node._get_node(part)
        if node is None:
            return False
    if not isinstance(node, ValueNode):
        return False
    node._set_value(value)
    return True


def set_string_list(cfg: DictConfig, key: str, values: list[str]) -> bool:
    """Set the items of the list at ``key`` in place when it has as many; False otherwise."""
    parent, _, leaf = key.rpartition(".")
    holder = OmegaConf.select(cfg, parent) if parent else cfg
    node = holder._get_node(leaf) if isinstance(holder, DictConfig) else None
    if not isinstance(node, ListConfig) or node._is_none() or len(node) != len(values):
        return False
    items = [node._get_node(i) for i in range(len(values))]
    if not all(isinstance(item, ValueNode) for item in items):
        return False
    for item, value in zip(items, values, strict=True):
        item._set_value(value)
    return True


def _plain_value(value: Any) -> bool:
    if isinstance(value, _PRIMITIVES):
        return True
    if isinstance(value, list | ListConfig):
        return all(isinstance(v, _PRIMITIVES) for v in value)
    return False


def _c_dumper() -> Any:
    """Return a libyaml-emitter Dumper with OmegaConf's representers, or None without libyaml."""
    import yaml
    from omegaconf._utils import get_omega_conf_dumper

    if not getattr(yaml, "__with_libyaml__", False):
        return None
    python_dumper = get_omega_conf_dumper()

    class OmegaConfCDumper(yaml.CDumper):  # type: ignore[misc,name-defined]
        pass

    for kind, representer in python_dumper.yaml_representers.items():
        OmegaConfCDumper.add_representer(kind, representer)
    return OmegaConfCDumper


_DUMPER: list[Any] = []


def _dumper() -> Any:
    """Return this process's libyaml Dumper with OmegaConf's representers (None without libyaml)."""
    if not _DUMPER:
        _DUMPER.append(_c_dumper())
    return _DUMPER[0]


def container_yaml(container: Any, *, sort_keys: bool = False) -> str:
    """Return ``to_yaml``'s text of a config already converted with
    ``OmegaConf.to_container(cfg, resolve=..., enum_to_str=True)``."""
    import yaml

    dumper = _dumper()
    if dumper is None:
        return OmegaConf.to_yaml(OmegaConf.create(container), sort_keys=sort_keys)
    return yaml.dump(
        container, default_flow_style=False, allow_unicode=True, sort_keys=sort_keys, Dumper=dumper
    )


def to_yaml(cfg: Any, *, resolve: bool = False, sort_keys: bool = False) -> str:
    """Return ``OmegaConf.to_yaml(cfg, ...)``'s text, emitted by libyaml (~4x faster per job).

    Same container, same representers (OmegaConf quotes strings that would read back as other
    types), same options; only the emitter is the C one. ``tests/test_sweep_speed.py`` checks the
    text equals OmegaConf's. Without libyaml this is ``OmegaConf.to_yaml``.
    """
    if _dumper() is None or not isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_yaml(cfg, resolve=resolve, sort_keys=sort_keys)
    container = OmegaConf.to_container(cfg, resolve=resolve, enum_to_str=True)
    return container_yaml(container, sort_keys=sort_keys)


def install() -> bool:
    """Wrap the running Hydra's config loader (before the sweeper is built); return True if done."""
    try:
        from hydra.core.global_hydra import GlobalHydra

        hydra = GlobalHydra.instance().hydra
        if hydra is None or isinstance(hydra.config_loader, FastSweepConfigLoader):
            return hydra is not None
        hydra.config_loader = FastSweepConfigLoader(hydra.config_loader)
    except Exception:  # a Hydra without these internals: compose every job the slow way
        return False
    return True


def skip_mode_probe_for_multirun(argv: list[str]) -> bool:
    """With ``-m``/``--multirun`` on the command line, answer Hydra's mode probe without composing.

    Before every run Hydra composes the whole config once only to read ``hydra.mode``
    (``Hydra.get_mode``, ~0.1 s), then composes it again for the run. Under ``--multirun`` that
    answer changes nothing: None (no ``hydra.mode`` in the config) makes Hydra append
    ``hydra.mode=MULTIRUN``; RUN (a config that sets it) makes it warn and append the same; only a
    config that itself sets MULTIRUN skips the append, and appending what it sets composes the
    same config. So the probe answers None there. A single run (no ``-m``) keeps the probe: a
    config may set ``hydra.mode: MULTIRUN`` and turn it into a sweep. Returns True when installed.
    """
    if not any(arg in ("-m", "--multirun") for arg in argv):
        return False
    try:
        from hydra._internal.hydra import Hydra
    except ImportError:  # a Hydra without these internals: keep its probe
        return False

    def get_mode(self: Any, config_name: Any, overrides: Any) -> None:
        return None

    Hydra.get_mode = get_mode  # type: ignore[method-assign]
    return True


def reuse_mode_probe_for_run(argv: list[str]) -> bool:
    """Without ``-m``, let the single run take the config Hydra composed to probe ``hydra.mode``.

    ``Hydra.get_mode`` composes the whole config (as for a multirun, sweep overrides left out)
    only to read ``hydra.mode``; when that is unset, the run composes it all again (~0.1 s of
    start-up) with ``hydra.mode=RUN`` appended. The two compositions differ only in that
    override (``hydra.mode`` and the last item of ``hydra.overrides.hydra``) unless an override
    is a sweep (a run refuses it) or a config group default is left missing (a run refuses it,
    a multirun skips it); then, and whenever anything else differs from this expectation, Hydra
    composes the run itself. ``tests/test_fast_compose.py`` compares both configs. Returns True
    when installed.
    """
    if any(arg in ("-m", "--multirun") for arg in argv):
        return False
    try:
        import logging

        from hydra._internal import hydra as hydra_module
        from hydra._internal.hydra import Hydra
        from hydra.core.utils import configure_log
        from hydra.types import RunMode
    except ImportError:  # a Hydra without these internals: compose twice
        return False
    compose = Hydra.compose_config
    kept: dict[str, Any] = {}

    def get_mode(self: Any, config_name: Any, overrides: Any) -> Any:
        kept.clear()
        try:
            cfg = compose(
                self,
                config_name=config_name,
                overrides=overrides,
                with_log_configuration=False,
                run_mode=RunMode.MULTIRUN,
                validate_sweep_overrides=False,
            )
        except Exception:
            return None  # what Hydra's probe answers; the run composes and reports the error
        if cfg.hydra.mode is None and _same_as_a_run(cfg, overrides):
            kept.update(key=(config_name, [*overrides, "hydra.mode=RUN"]), cfg=cfg)
        return cfg.hydra.mode

    def compose_config(
        self: Any,
        config_name: Any,
        overrides: Any,
        run_mode: Any,
        with_log_configuration: bool = False,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> Any:
        key, cfg = kept.pop("key", None), kept.pop("cfg", None)
        if cfg is None or run_mode != RunMode.RUN or key != (config_name, list(overrides)):
            return compose(
                self,
                config_name=config_name,
                overrides=overrides,
                run_mode=run_mode,
                with_log_configuration=with_log_configuration,
                from_shell=from_shell,
                validate_sweep_overrides=validate_sweep_overrides,
            )
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.overrides.hydra.append("hydra.mode=RUN")
            cfg.hydra.mode = RunMode.RUN
        if with_log_configuration:  # what Hydra.compose_config does after composing
            configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
            hydra_module.log = logging.getLogger(hydra_module.__name__)
            self._print_debug_info(config_name, overrides, run_mode)
        return cfg

    Hydra.get_mode = get_mode  # type: ignore[method-assign]
    Hydra.compose_config = compose_config  # type: ignore[method-assign]
    return True


def _same_as_a_run(cfg: DictConfig, overrides: list[str]) -> bool:
    """True when a single run's composition of ``overrides`` can differ from ``cfg`` (the
    multirun-mode probe) only by ``hydra.mode=RUN``: no sweep override, no missing default."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        if any(o.is_sweep_override() for o in parsed):
            return False
        choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
        return isinstance(choices, dict) and "???" not in choices.values()
    except Exception:
        return False


_SPLICEABLE = (int, float, bool, type(None))  # context-free plain scalars (never a str: quoting)


class YamlSplicer:
    """``container_yaml`` of a run of similar containers, re-emitting only the values that vary.

    A grid's jobs dump the same config but for a few swept numbers; libyaml's emitter is C, but
    representing ~200 nodes is Python (~0.8 ms a job). The splicer keeps the first container's
    leaves as a base; once leaves differ from it, it dumps the base once more with a unique token
    in place of each varying leaf and keeps that text cut at the tokens. A later container whose
    leaves differ from the base only there, each an int, float, bool or None (whose text does
    not depend on where it stands), is that text with each value's own dump spliced in. Anything
    else (other keys, a str or list that varies, a token that does not appear exactly once) is
    dumped whole. ``tests/test_fast_compose.py`` compares it with ``container_yaml``.
    """

    def __init__(self) -> None:
        self._base: dict[tuple[Any, ...], Any] | None = None
        self._paths: tuple[tuple[Any, ...], ...] = ()
        self._parts: list[str] = []
        self._scalars: dict[tuple[str, str], str] = {}

    def text(self, container: dict[str, Any]) -> str:
        leaves = dict(_leaves(container))
        base = self._base
        if base is not None and leaves.keys() == base.keys():
            varying = {p for p, v in leaves.items() if not _same(v, base[p])}
            if (
                varying <= set(self._paths)
                and self._parts
                and all(isinstance(leaves[p], _SPLICEABLE) for p in self._paths)
            ):
                return self._splice(leaves)
            paths = tuple(p for p in base if p in varying or p in self._paths)
            if all(isinstance(leaves[p], _SPLICEABLE) for p in paths):
                self._cut(container, leaves, paths)
                if self._parts:
                    return self._splice(leaves)
        else:
            self._base, self._paths, self._parts = leaves, (), []
        return container_yaml(container)

    def _splice(self, leaves: dict[tuple[Any, ...], Any]) -> str:
        out = [self._parts[0]]
        for path, part in zip(self._paths, self._parts[1:], strict=True):
            out.append(self._scalar(leaves[path]))
            out.append(part)
        return "".join(out)

    def _scalar(self, value: Any) -> str:
        key = (type(value).__name__, repr(value))
        text = self._scalars.get(key)
        if text is None:
            dumped = container_yaml({"k": value})
            if not dumped.startswith("k: ") or dumped.count("\n") != 1:
                raise ValueError(f"not a one-line scalar: {dumped!r}")
            text = self._scalars[key] = dumped[3:-1]
        return text

    def _cut(
        self,
        container: dict[str, Any],
        leaves: dict[tuple[Any, ...], Any],
        paths: tuple[tuple[Any, ...], ...],
    ) -> None:
        """Keep the base's text cut at ``paths`` (tokens dumped in their place), or nothing."""
        self._paths, self._parts = paths, []
        marked = copy.deepcopy(container)
        tokens = [f"zzsplice{uuid.uuid4().hex}{k}zz" for k in range(len(paths))]
        for path, token in zip(paths, tokens, strict=True):
            node = marked
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = token
        text = container_yaml(marked)
        parts, rest = [], text
        for token in tokens:
            if text.count(token) != 1 or token not in rest:
                return  # in another order or twice: dump whole
            head, rest = rest.split(token, 1)
            parts.append(head)
        try:
            for path in paths:
                self._scalar(leaves[path])
        except ValueError:
            return
        self._parts = [*parts, rest]


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Any:
    """Yield (path, leaf) of nested dicts; lists and empty dicts are leaves."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path, node


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)
