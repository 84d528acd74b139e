"""Shared entry-point wrapper for every CLI (runner and producers).

Hydra normally prints its own errors and exits 1. We set ``HYDRA_FULL_ERROR=1`` so errors reach
this wrapper as exceptions, then print one clear line and exit 2 for anything the user can fix:
a bad override, an unknown key, a wrong type, or any ``UserFacingError``. No traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from components.errors import UserFacingError

EXIT_USER_ERROR = 2

_HYDRA_NOISE = re.compile(r"\n\s*(full_key|reference_type|object_type)=?.*", re.MULTILINE)


def describe_config_error(exc: BaseException) -> str | None:
    """Return a one-paragraph message for a Hydra/OmegaConf composition error, or None."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(exc, HydraException | OmegaConfBaseException):
        return None
    parts = []
    node: BaseException | None = exc
    while node is not None and len(parts) < 3:
        text = _HYDRA_NOISE.sub("", str(node)).strip()
        if text and text not in parts:
            parts.append(text)
        node = node.__cause__
    message = " ".join(" ".join(parts).split())
    message = message.replace("Could not override", "could not apply override")
    help_cmd = f"python -m {_program()} --help"
    if "not in struct" in message or ("Key '" in message and ("not found" in message or "not in '" in message)):
        fix = (f"check the key's spelling against `{help_cmd}`; prefix with + only to add "
               "a key that is really new")
    elif "Could not find" in message or "not found in" in message.lower() or "MissingConfig" in type(exc).__name__:
        fix = f"pick one of the options listed above (see `{help_cmd}`)"
    else:
        fix = f"fix the value (see `{help_cmd}` for each key's type and unit)"
    return f"configuration error: {message} Fix: {fix}."


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


def run_cli(main: Callable[[], Any]) -> None:
    """Run a Hydra ``main`` and turn user errors into one line on stderr with exit code 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    if not isinstance(sys.stderr, _DropHydraJobError):
        sys.stderr = _DropHydraJobError(sys.stderr)
    try:
        main()
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        message = describe_config_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
