"""Performance vs behaviour keys (DESIGN section 6), declared once in ``conf/parity.yaml``.

Jobs of a sweep whose configs agree on every behaviour key must produce the same digest. A key is a
performance (or display) key only when ``conf/parity.yaml`` lists it; anything else is behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PARITY_FILE = Path(__file__).resolve().parents[1] / "conf" / "parity.yaml"
ABSENT = (
    "<absent>"  # value shown for a key one job's config does not have (market.chunk_size on direct)
)


@lru_cache(maxsize=4)
def declared_keys(path: Path = PARITY_FILE) -> tuple[str, ...]:
    """Return every performance and display pattern of ``path``.

    Read with libyaml's safe loader (plain lists of strings): ``OmegaConf.load`` took ~14 ms of
    every sweep worker's first job.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # a safe loader
    assert isinstance(data, dict)
    return tuple(str(k) for section in ("performance", "display") for k in data.get(section) or [])


def normalise_key(key: str) -> str:
    """Return the dotted key of an override key: ``+sweep/market`` -> ``sweep.market``."""
    return key.lstrip("+~").replace("/", ".").split("@", 1)[0]


def is_performance_key(key: str, patterns: Iterable[str] | None = None) -> bool:
    """Return True when ``key`` (dotted or an override key) may only change speed, memory or display."""
    if patterns is None:
        return _declared_performance_key(key, declared_keys())
    return _matches(normalise_key(key), patterns)


@lru_cache(maxsize=4096)
def _declared_performance_key(key: str, declared: tuple[str, ...]) -> bool:
    """``is_performance_key`` against the declared keys, once per key (a job asks ~50 times)."""
    return _matches(normalise_key(key), declared)


def _matches(key: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith(".*"):
            if key.startswith(pattern[:-1]):
                return True
        elif key == pattern:
            return True
    return False


def override_key(override: str) -> str:
    """Return the key of a command-line override (``market.chunk_size=100`` -> ``market.chunk_size``)."""
    return normalise_key(override.split("=", 1)[0])


def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return ``{dotted.key: leaf}`` for a nested mapping; lists stay leaves."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def split_config(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flattened config into (behaviour keys, performance/display keys)."""
    behaviour, performance = {}, {}
    for key, value in flat.items():
        (performance if is_performance_key(key) else behaviour)[key] = value
    return behaviour, performance
