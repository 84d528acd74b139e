"""Example strategies; each module registers one ``strategy=<name>`` option (RUNNER_PLUGINS)."""
