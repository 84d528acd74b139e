"""Exceptions a user can act on. Each message says what failed, where, and how to fix it (STYLE P7).

Every class here derives from ``UserFacingError``; the CLIs print its message as one line and exit
with code 2, never a traceback.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error caused by input or configuration: print the message, exit 2, no traceback."""

    exit_code = 2


class ConfigError(UserFacingError, ValueError):
    """A configuration value is invalid (type, range, cross-field rule)."""


class UnknownComponentError(UserFacingError, LookupError):
    """No component is registered under the requested ``(group, kind)``."""


class MarketDbMissingError(UserFacingError, FileNotFoundError):
    """The market DB file does not exist."""


class ReadOnlyViolationError(UserFacingError, PermissionError):
    """A write was attempted on a read-only connection."""


class DbLockedError(UserFacingError, BlockingIOError):
    """Another process holds a conflicting lock on the DuckDB file."""


class DbModeConflictError(UserFacingError, RuntimeError):
    """The same file is already open in this process with another ``read_only`` setting."""


class DbCorruptError(UserFacingError, OSError):
    """The file is not a DuckDB database, or it is truncated or damaged."""


class DataValidationError(UserFacingError, ValueError):
    """Input rows failed the pandera contract; ``report`` lists every failing row."""

    def __init__(self, message: str, report: str = "", n_failures: int = 0) -> None:
        super().__init__(message)
        self.report = report
        self.n_failures = n_failures


class PublishLockTimeoutError(UserFacingError, TimeoutError):
    """Another producer held the publish lock longer than the bounded wait."""


class DataRangeError(UserFacingError, LookupError):
    """Requested symbols or dates are not in the market DB."""


class DbNotAFileError(UserFacingError, IsADirectoryError):
    """``db.path`` names a directory, a FIFO, a socket or a device instead of a regular file."""


class DbUnreadableError(UserFacingError, PermissionError):
    """The market DB file exists but this user may not read it."""


class StopSignal(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) turned into an exception, so ``finally`` blocks and
    rollbacks run; a KeyboardInterrupt so ``except Exception`` lets it pass."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def interrupted_message(signum: int) -> str:
    """Return the one line a CLI prints when SIGINT or SIGTERM stops it before its work began."""
    if signum == 2:  # SIGINT
        return "interrupted by Ctrl-C; nothing further was written."
    names = {15: "SIGTERM", 1: "SIGHUP", 3: "SIGQUIT"}
    return f"stopped by {names.get(signum, f'signal {signum}')} before the run started; nothing further was written."
