"""Example plugins: strategies written with ``components.strategies.api`` (see docs/strategies.md)."""
