"""Test-only components, imported into runner subprocesses via ``RUNNER_EXTRA_IMPORTS``."""
