"""Typed config of the ``db`` group: where the market DB is and how it is opened."""

from __future__ import annotations

from dataclasses import dataclass

DB_MODES = ("read_only", "read_write")


@dataclass
class DbConfig:
    kind: str = "duckdb"
    path: str = "outputs/market/demo.duckdb"  # market DB file, relative to the working directory
    mode: str = "read_only"  # read_only (runner, always) | read_write (producer CLIs only)

    def __post_init__(self) -> None:
        if self.mode not in DB_MODES:
            raise ValueError(
                f"db.mode must be one of {', '.join(DB_MODES)}, was {self.mode!r}; the runner reads only, "
                "so use db.mode=read_only"
            )


def _register() -> None:
    from components.registry import register

    @register("db", "duckdb", DbConfig)
    def make_db(config: DbConfig) -> DbConfig:
        """Return the config itself: connections are opened by whoever reads or writes."""
        return config


_register()
