"""Test-only components, imported into runner subprocesses via ``RUNNER_PLUGINS``."""
