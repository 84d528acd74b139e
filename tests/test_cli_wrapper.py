"""components.cli.run_cli: every way a CLI can end gets one line and a conventional exit code."""

from __future__ import annotations

import pytest

from components.cli import run_cli
from components.errors import MarketDbMissingError


def _raise(exc: BaseException):
    def main() -> None:
        raise exc

    return main


def test_run_cli_when_ctrl_c_outside_the_loop_then_one_line_and_exit_130(
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(SystemExit) as stop:
        run_cli(_raise(KeyboardInterrupt()))
    assert stop.value.code == 130
    assert capsys.readouterr().err == "error: interrupted by Ctrl-C; nothing further was written.\n"


def test_run_cli_when_user_error_then_message_and_exit_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        run_cli(
            _raise(
                MarketDbMissingError("market DB not found at x.duckdb (db.path); create it first")
            )
        )
    assert stop.value.code == 2
    assert (
        capsys.readouterr().err
        == "error: market DB not found at x.duckdb (db.path); create it first\n"
    )


def test_run_cli_when_unexpected_error_then_it_propagates() -> None:
    with pytest.raises(ZeroDivisionError):
        run_cli(_raise(ZeroDivisionError("bug")))
