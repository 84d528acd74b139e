"""The progress bar (issue 14, item 22): the kill-switch text follows a trip, a log line never lands
on the bar's line, and the pause after the last bar says "writing report"."""

from __future__ import annotations

import io
import re

import pytest

from runner import progress
from runner.progress import _Bar, console_sink


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _frames(text: str) -> list[str]:
    """Return what the terminal shows after each carriage return or newline."""
    return [f for f in re.split(r"[\r\n]", text) if f.strip()]


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def test_bar_when_kill_switch_trips_then_text_says_halted_at_once_issue14_item22(
    stream: io.StringIO,
) -> None:
    clock = Clock()
    bar = _Bar(1_000, file=stream, delay=0.5, clock=clock)
    bar.update(100, "active")  # inside the delay: nothing drawn
    assert stream.getvalue() == ""
    clock.now = 1.0
    bar.update(200, "active")
    bar.update(300, "active")

    bar.update(310, "halted")  # no mininterval has passed since the last draw

    assert _frames(stream.getvalue())[-1].endswith("kill switch HALTED]")
    bar.close()


def test_bar_when_loop_done_then_says_writing_report_issue14_item22(stream: io.StringIO) -> None:
    clock = Clock()
    bar = _Bar(1_000, file=stream, delay=0.5, clock=clock)
    clock.now = 1.0
    bar.update(500, "active")

    bar.writing_report()

    last = _frames(stream.getvalue())[-1]
    assert last.startswith("writing report 100%") and "1.00k/1.00k bars" in last
    bar.close()


def test_bar_when_short_run_then_no_bar_even_while_writing_report_issue14_item22(
    stream: io.StringIO,
) -> None:
    bar = _Bar(1_000, file=stream, delay=0.5, clock=Clock())
    bar.update(1_000, "active")
    bar.writing_report()
    bar.close()
    assert stream.getvalue() == ""


def test_console_sink_when_bar_visible_then_log_line_starts_on_its_own_line_issue14_item22(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stderr", stream)  # console_sink writes to sys.stderr, like the bar
    clock = Clock()
    bar = _Bar(1_000, file=stream, delay=0.0, clock=clock)
    bar.update(400, "active")

    console_sink("12:00:00 | WARNING | kill switch active -> halted\n")
    bar.update(450, "halted")
    bar.close()

    text = stream.getvalue()
    at = text.index("12:00:00 | WARNING")
    before = text[:at]
    assert before.endswith("\r"), repr(before[-80:])  # the bar's line was cleared first
    assert text[at:].split("\n", 1)[0] == "12:00:00 | WARNING | kill switch active -> halted"
    assert progress.BAR_DELAY_S <= 1.0  # a 1M-bar demo (about 3 s) shows its bar early
