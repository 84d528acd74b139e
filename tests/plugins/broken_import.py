"""A RUNNER_PLUGINS module whose import raises (the runner must name it, file and line)."""

from components.strategies.api import Strategy

THRESHOLD = 1 / 0  # the bug: raises ZeroDivisionError while importing


class Never(Strategy):
    pass
