"""Shared entry-point wrapper for every CLI (runner and producers).

Hydra normally prints its own errors and exits 1. We set ``HYDRA_FULL_ERROR=1`` so errors reach
this wrapper as exceptions, then print one clear line and exit 2 for anything the user can fix:
a bad override, an unknown key, a wrong type, or any ``UserFacingError``. No traceback.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.errors import StopSignal, UserFacingError, interrupted_message
from components.suggest import closest

EXIT_USER_ERROR = 2
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
_HOME_VALUE = re.compile(r"^([+~]{0,2}[\w.@/-]+=)~(?=/|$)")
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}

_HYDRA_NOISE = re.compile(r"\n\s*(full_key|reference_type|object_type)=?.*", re.MULTILINE)
_SEARCH_PATH = re.compile(r"\s*Config search path:.*", re.DOTALL)
_TYPE_NAMES = {
    "Integer": ("an integer", "100"),
    "Float": ("a number", "0.5"),
    "Boolean": ("true or false", "true"),
}


def describe_config_error(exc: BaseException) -> str | None:
    """Return a one-line message for a Hydra/OmegaConf composition error, or None.

    The message names the override, the value, what was expected and the fix (STYLE P7): an
    unknown option lists the group's options and suggests the closest, a wrong type names the
    expected type with an example, an unknown key lists the keys the node has.
    """
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(exc, HydraException | OmegaConfBaseException):
        return None
    if isinstance(exc, MissingConfigException) and "/" in str(exc.missing_cfg_file or ""):
        return _missing_option(exc)
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    full_key = getattr(cause, "full_key", None)
    if full_key and "not in" in str(getattr(cause, "msg", "")) and "Could not override" in str(exc):
        return _unknown_key(exc, cause)
    if full_key and getattr(cause, "value", None) is not None:
        return _wrong_value(cause)
    return _generic(exc)


def _missing_option(exc: Any) -> str:
    """``market=chunkd``: list the group's options (not the ``*_schema`` nodes) and suggest one."""
    group, _, option = str(exc.missing_cfg_file).rpartition("/")
    options = [o for o in (exc.options or _listed_options(str(exc))) if not o.endswith("_schema")]
    typed = _typed_override(group, option) or f"{group}={option}"
    prefix = typed[: len(typed) - len(typed.lstrip("+~"))]
    close = closest(option, options)
    hint = f" Did you mean {close!r}?" if close else ""
    fix = f"{prefix}{group}={close}" if close else f"{prefix}{group}=<one of the options above>"
    where = "" if group.startswith("hydra/") else f", or add conf/{group}/{option}.yaml"
    return (
        f"{typed}: no option {option!r} in config group {group!r} (available: {', '.join(options) or 'none'})."
        f"{hint} Fix: {fix}{where}."
    )


def _listed_options(text: str) -> list[str]:
    block = text.split("Available options in", 1)[-1].split("Config search path:", 1)[0]
    return [line.strip() for line in block.splitlines()[1:] if line.strip()]


def _unknown_key(exc: BaseException, cause: Any) -> str:
    """``market.chunk_sise=5``: name the node's real keys and suggest the closest."""
    full_key, key = str(cause.full_key), str(cause.key)
    node = full_key.rpartition(".")[0]
    keys = _field_names(getattr(cause, "object_type", None))
    close = closest(key, keys)
    value = (_typed_override(full_key) or "=").split("=", 1)[1]
    where = (
        f"{node} ({cause.object_type.__name__})" if node and keys else (node or "the root config")
    )
    listed = f" (its keys: {', '.join(keys)})" if keys else ""
    hint = f" Did you mean {close!r}?" if close else ""
    fix = (
        f"{node + '.' if node else ''}{close}={value}"
        if close
        else "use one of its keys, or drop the override"
    )
    return f"{full_key}={value}: {where} has no key {key!r}{listed}.{hint} Fix: {fix}."


def _wrong_value(cause: Any) -> str:
    """``market.chunk_size=abc``: say which type the key takes and give an example."""
    full_key, value = str(cause.full_key), cause.value
    text = str(getattr(cause, "msg", cause)).splitlines()[0]
    match = re.search(r"converted to (\w+)", text)
    if match and match.group(1) in _TYPE_NAMES:
        expected, example = _TYPE_NAMES[match.group(1)]
    elif "valid bool" in text:
        expected, example = _TYPE_NAMES["Boolean"]
    else:
        return f"{full_key}={value}: {text}. Fix: give a value of the key's type (see `python -m {_program()} --help`)."
    default = _field_default(getattr(cause, "object_type", None), str(cause.key))
    example = default if default is not None else example
    return (
        f"{full_key}={value}: expected {expected}, got {value!r}. Fix: e.g. {full_key}={example}."
    )


def _generic(exc: BaseException) -> str:
    parts: list[str] = []
    node: BaseException | None = exc
    while node is not None and len(parts) < 3:
        text = _SEARCH_PATH.sub("", _HYDRA_NOISE.sub("", str(node))).strip()
        if text and text not in parts:
            parts.append(text)
        node = node.__cause__
    message = " ".join(" ".join(parts).split()).rstrip(".")
    return (
        f"configuration error: {message}. Fix: correct the override "
        f"(see `python -m {_program()} --help` for each group, key, type and unit)."
    )


def _typed_override(key: str, value: str | None = None) -> str | None:
    """Return the command-line override for ``key`` (and ``value``) as typed, with any + or ~."""
    tail = re.escape(value) + "$" if value is not None else ""
    pattern = re.compile(rf"^[+~]{{0,2}}{re.escape(key)}={tail}")
    return next((arg for arg in sys.argv[1:] if pattern.match(arg)), None)


def _field_names(config_cls: Any) -> list[str]:
    return (
        sorted(f.name for f in dataclasses.fields(config_cls))
        if dataclasses.is_dataclass(config_cls)
        else []
    )


def _field_default(config_cls: Any, key: str) -> Any:
    if not dataclasses.is_dataclass(config_cls):
        return None
    field = next((f for f in dataclasses.fields(config_cls) if f.name == key), None)
    default = getattr(field, "default", None)
    if default is None or default is dataclasses.MISSING:
        return None
    return str(default).lower() if isinstance(default, bool) else default


def _program() -> str:
    """Return the module run with ``python -m`` (runner, producers.ingest, ...)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", "") or "runner"
    return name.removesuffix(".__main__")


class _DropHydraJobError:
    """Stream wrapper that drops Hydra's unconditional "Error executing job with overrides" line.

    Hydra writes it to stderr before re-raising a task's exception, so without this a user error
    would print two lines instead of one.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides:"):
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _group_override_error(exc: BaseException) -> str | None:
    """``market=-1``, ``buffer=null``, ``strategy=[[1]]``: a config group given a non-name value.

    Hydra fails deep inside its defaults list (a ValueError or TypeError, 39-52 lines); name the
    override, the options of the group and the fix instead.
    """
    if not isinstance(exc, ValueError | TypeError):
        return None
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or not frames[-1].filename.endswith(("defaults_list.py", "overrides.py")):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in sys.argv[1:]:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            override = parser.parse_override(arg)
        except Exception:  # an unparsable argument is Hydra's to report
            continue
        group = override.key_or_group
        options = _group_options(group)
        if options is None:
            continue
        value = override.value()
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            continue
        shown = "null" if value is None else repr(value)
        prefix = arg[: len(arg) - len(arg.lstrip("+~"))]
        return (
            f"{arg}: {group} is a config group and takes an option name, got {shown}; "
            f"options: {', '.join(options) or 'none'}. Fix: {prefix}{group}={options[0] if options else '<option>'}"
            f" (a key inside the group is set as {group}.<key>=<value>)."
        )
    return None


def _group_options(group: str) -> list[str] | None:
    """Return the options of config group ``group`` (None if it is not a group)."""
    folder = CONF_DIR / group
    if not folder.is_dir():
        return None
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.endswith("_schema"))


def expand_home(args: list[str]) -> list[str]:
    """Expand a leading ``~`` in override values (``db.path=~/x.duckdb``), as a shell would.

    Hydra's override grammar cannot parse an unquoted ``~`` inside a value.
    """
    return [_HOME_VALUE.sub(lambda m: m.group(1) + os.path.expanduser("~"), a) for a in args]


def _disk_error(exc: OSError) -> str | None:
    """Return one line for a file the CLI could not write (full disk, size limit, read-only).

    Hydra creates the run dir and writes ``.hydra/`` before the task runs, so this is where a
    disk too full to start ends up.
    """
    if exc.errno not in _DISK_ERRNOS:
        return None
    return (
        f"could not write {_path_of(exc)}: {exc.strerror or exc}; free space on that disk (or raise the limit), "
        "or write elsewhere (the runner: hydra.run.dir=<dir on another disk>), then run again."
    )


def _run_dir_error(exc: OSError) -> str | None:
    """Return one line for a run dir Hydra could not prepare before the task ran.

    Hydra creates ``hydra.run.dir`` and writes ``.hydra/`` (``hydra.output_subdir``) in its
    ``run_job`` before calling the task: a path through a file, a dir without permission, or a
    run dir removed meanwhile (two runs started on one ``hydra.run.dir``, one of them refused)
    raised a traceback. Errors raised inside the task (our code below ``run_job``) are not this.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    hydra_job = [
        i
        for i, frame in enumerate(frames)
        if frame.name == "run_job"
        and Path(frame.filename).parts[-3:] == ("hydra", "core", "utils.py")
    ]
    if not hydra_job:
        return None
    ours = {"runner", "components", "producers"}
    if any(ours & set(Path(f.filename).parts) for f in frames[hydra_job[-1] + 1 :]):
        return None
    return (
        f"could not prepare the run directory: {_path_of(exc)}: {exc.strerror or exc}; choose a new "
        "hydra.run.dir (one run per directory, and hydra.output_subdir a plain name such as "
        ".hydra), then run again."
    )


def _path_of(exc: OSError) -> str:
    """Return the path an ``OSError`` of Hydra's run-dir preparation is about."""
    return exc.filename or _file_being_saved(exc) or "the run directory (hydra.run.dir)"


def _file_being_saved(exc: BaseException) -> str | None:
    """Return the file Hydra was saving (``_save_config(cfg, filename, output_dir)``), if any."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        names = tb.tb_frame.f_locals
        if "filename" in names and "output_dir" in names:
            found = str(Path(str(names["output_dir"])) / str(names["filename"]))
        tb = tb.tb_next
    return found


def _raise_stop(signum: int, _frame: Any) -> None:
    raise StopSignal(signum)


def _interrupted(exc: KeyboardInterrupt, note: Callable[[], str] | None = None) -> tuple[str, int]:
    signum = int(getattr(exc, "signum", signal.SIGINT))
    if note is None:
        return interrupted_message(signum), 128 + signum
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return f"stopped by {name}; {note()}", 128 + signum


def run_cli(
    main: Callable[[], Any],
    on_refusal: Callable[[], Any] | None = None,
    interrupted: Callable[[], str] | None = None,
) -> None:
    """Run a Hydra ``main`` and turn user errors into one line on stderr with exit code 2.

    ``on_refusal`` runs before the CLI exits on a refusal or an interruption (the runner removes
    the stub run dir there). ``interrupted`` (the producers): SIGTERM and SIGHUP raise like Ctrl-C
    does, so the work in progress is rolled back, and the CLI prints "stopped by <signal>;
    <interrupted()>" (what was and was not written) and exits 128 + the signal number, instead
    of dying silently.
    """
    if interrupted is not None:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_stop)
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    sys.argv[1:] = expand_home(sys.argv[1:])
    stderr = sys.stderr
    if not isinstance(stderr, _DropHydraJobError):
        sys.stderr = _DropHydraJobError(stderr)
    try:
        try:
            main()
        except (Exception, KeyboardInterrupt) as exc:
            if on_refusal is not None and not isinstance(exc, SystemExit):
                on_refusal()
            raise
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        message = (
            describe_config_error(exc)
            or _group_override_error(exc)
            or (_disk_error(exc) or _run_dir_error(exc) if isinstance(exc, OSError) else None)
        )
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt as exc:  # Ctrl-C / SIGTERM outside the backtest loop
        message, code = _interrupted(exc, interrupted)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(code)
    finally:
        sys.stderr = stderr  # in-process callers (tests) get their stream back
