"""Component registry: ``(group, kind)`` -> typed config class + factory (STYLE P4).

YAML names a component by ``kind:``, never by import path, so only registered components can be
built: the runner cannot build a market-DB writer because none is registered.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from components.errors import ConfigError, UnknownComponentError
from components.suggest import closest


@dataclass(frozen=True)
class Entry:
    group: str
    kind: str
    config_cls: type
    factory: Callable[..., Any]


_ENTRIES: dict[tuple[str, str], Entry] = {}


def register(
    group: str, kind: str, config_cls: type
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``factory`` for ``(group, kind)`` and store ``<kind>_schema`` in Hydra's ConfigStore."""

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        key = (group, kind)
        if key in _ENTRIES and _ENTRIES[key].factory is not factory:
            raise ValueError(
                f"{group}: kind={kind!r} is already registered by {_ENTRIES[key].factory!r}"
            )
        _ENTRIES[key] = Entry(group, kind, config_cls, factory)
        ConfigStore.instance().store(group=group, name=f"{kind}_schema", node=config_cls)
        return factory

    return decorator


def unregister(group: str, kind: str) -> None:
    """Remove an entry (tests register throw-away components)."""
    _ENTRIES.pop((group, kind), None)


def known_kinds(group: str) -> list[str]:
    """Return the kinds registered for ``group``, sorted."""
    return sorted(kind for (g, kind) in _ENTRIES if g == group)


def entries() -> list[Entry]:
    """Return every registered entry, sorted by group then kind."""
    return [_ENTRIES[key] for key in sorted(_ENTRIES)]


def lookup(group: str, kind: str) -> Entry:
    """Return the entry for ``(group, kind)`` or raise ``UnknownComponentError`` with suggestions."""
    entry = _ENTRIES.get((group, kind))
    if entry is not None:
        return entry
    known = known_kinds(group)
    close = closest(kind, known)
    hint = f" Did you mean {close!r}?" if close else ""
    raise UnknownComponentError(
        f"{group}: no component registered as kind={kind!r} (known: {', '.join(known) or 'none'}).{hint} "
        f"Pick one with `{group}=<name>` or fix `kind:` in conf/{group}/."
    )


_TYPED: dict[tuple[Any, ...], Any] = {}  # (group, config class, node as JSON) -> typed config
_TYPED_MAX = 256


def typed_config(group: str, node: DictConfig | dict[str, Any]) -> Any:
    """Merge ``node`` into its registered schema and build the dataclass (runs ``__post_init__``).

    Built configs are memoised by their node's content and handed out as copies: the jobs of a
    sweep build the same market/broker/... configs again and again, and a schema merge costs
    ~1-3 ms (OmegaConf.structured) while a copy costs microseconds.
    """
    kind = node.get("kind") if node is not None else None
    entry = lookup(group, kind)
    key = _typed_key(group, entry, node)
    if key is not None and key in _TYPED:
        return copy.deepcopy(_TYPED[key])
    typed = _build_typed(group, kind, entry, node)
    if key is not None:
        if len(_TYPED) >= _TYPED_MAX:
            _TYPED.clear()
        _TYPED[key] = copy.deepcopy(typed)
    return typed


def _typed_key(group: str, entry: Entry, node: Any) -> tuple[Any, ...] | None:
    try:
        data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        return (group, entry.config_cls, entry.factory, json.dumps(data, sort_keys=True))
    except Exception:  # unresolvable or not JSON-able: build without the memo
        return None


_SCALARS = (int, float, str, bool)


@functools.cache
def _scalar_fields(config_cls: type) -> dict[str, tuple[type, bool]] | None:
    """Return {field: (scalar type or nested config dataclass, None allowed)} of a config
    dataclass, or None if any field is something else (a list, a Literal, an optional config)."""
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:
        return None
    fields: dict[str, tuple[type, bool]] = {}
    for f in dataclasses.fields(config_cls):
        hint = hints.get(f.name)
        optional = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0] if len(args) == 1 else None
        nested = isinstance(hint, type) and dataclasses.is_dataclass(hint) and not optional
        if (hint not in _SCALARS and not nested) or not f.init:
            return None
        fields[f.name] = (hint, optional)
    return fields


def direct_typed(entry: Entry, node: dict[str, Any]) -> Any | None:
    """Return ``entry``'s typed config built straight from a resolved plain dict, or None.

    The same object the schema merge (``OmegaConf.structured`` + ``to_object``, ~1 ms) builds,
    taken only where no conversion or refusal can differ: every field a plain scalar, every
    value of exactly its field's type (an int for a float field becomes ``float(value)``, as
    OmegaConf's float node does; None only where the field allows it). Anything else, an unknown
    key, or ``__post_init__`` refusing the values returns None: the caller takes the schema path,
    which words its error as always (``tests/test_registry.py`` compares both on every entry).
    """
    return direct_dataclass(entry.config_cls, node)


def direct_dataclass(config_cls: type, node: dict[str, Any]) -> Any | None:
    """``direct_typed`` for any config dataclass (``config_cls``): the object, or None."""
    fields = _scalar_fields(config_cls)
    if fields is None or not isinstance(node, dict):
        return None
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        spec = fields.get(key) if isinstance(key, str) else None
        if spec is None:
            return None
        kind, optional = spec
        if kind not in _SCALARS:  # a nested config dataclass, built the same way from its dict
            nested = direct_dataclass(kind, value) if isinstance(value, dict) else None
            if nested is None:
                return None
            kwargs[key] = nested
        elif value is None and optional:
            kwargs[key] = None
        elif type(value) is kind:
            kwargs[key] = value
        elif kind is float and type(value) is int:
            kwargs[key] = float(value)
        else:
            return None
    try:
        return config_cls(**kwargs)
    except Exception:
        return None


def _build_typed(group: str, kind: Any, entry: Entry, node: Any) -> Any:
    known = [f.name for f in dataclasses.fields(entry.config_cls)]
    unknown = sorted(str(k) for k in node if k not in known)
    if unknown:
        raise ConfigError(_unknown_key_message(group, kind, unknown[0], known))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(entry.config_cls), node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", "") or ""
        detail = str(getattr(exc, "msg", exc)).splitlines()[0]
        raise ConfigError(
            f"{group}.{key}: {detail}; fix the value (see `python -m runner --help`)"
        ) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _unknown_key_message(group: str, kind: str, key: str, known: list[str]) -> str:
    """Name the key and the fix; when the key belongs to another option, say how to switch option."""
    owners = [
        e.kind
        for e in entries()
        if e.group == group
        and e.kind != kind
        and key in {f.name for f in dataclasses.fields(e.config_cls)}
    ]
    if owners:
        return (
            f"{group}.{key}: no such key for {group} kind={kind!r} (keys: {', '.join(known)}); it comes "
            f"from the {owners[0]!r} option, because {group}.kind={kind} changes only the kind. "
            f"Fix: select the option with {group}={kind} instead of {group}.kind={kind}."
        )
    guess = closest(key, known)
    hint = f" Did you mean {group}.{guess}?" if guess else ""
    return (
        f"{group}.{key}: no such key for {group} kind={kind!r} (keys: {', '.join(known)}).{hint} "
        "Fix or remove the override."
    )


def build(group: str, node: DictConfig | dict[str, Any], **deps: Any) -> Any:
    """Build the component selected by ``node.kind`` in ``group``; ``deps`` go to the factory."""
    config = typed_config(group, node)
    return lookup(group, config.kind).factory(config, **deps)
