"""A RUNNER_PLUGINS module that imports fine but registers nothing (the runner must say so)."""

VALUE = 1
