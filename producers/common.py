"""What every producer CLI shares: the conf dir, logging set-up and typed config conversion."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from loguru import logger
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from components.errors import ConfigError

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def producer_interrupted() -> str:
    """What a producer stopped by SIGTERM / SIGHUP / Ctrl-C prints after "stopped by <signal>; "."""
    from producers.publish import PUBLISHED  # publishing is atomic: it happened or it did not

    if PUBLISHED:
        return (
            f"{PUBLISHED[-1]} was already published (the new version is live); nothing after it "
            "was written"
        )
    return (
        "nothing was published: the market DB is unchanged and its staging copy removed; "
        "run the producer again to publish"
    )


def configure_logging(level: str = "INFO") -> None:
    """Send concise log lines to stderr; call once in a CLI's ``main`` (STYLE P9)."""
    logger.remove()
    logger.add(sys.stderr, level=level, format="{time:HH:mm:ss} | {level: <7} | {message}")


def typed(node: DictConfig, schema: type, key: str) -> Any:
    """Build the dataclass ``schema`` from ``node``; its ``__post_init__`` errors become ConfigError."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {getattr(exc, 'msg', exc)}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
