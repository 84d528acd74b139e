"""Hydra finds launchers only under the ``hydra_plugins`` namespace: expose ``runner.launcher``.

Hydra registers a plugin class by its ``__module__``, so the class is declared here (a thin
subclass); the code lives in ``runner/launcher.py``. Select it with ``hydra/launcher=batched``.
"""

from runner import launcher as _impl


class BatchedLauncher(_impl.BatchedLauncher):
    """``hydra/launcher=batched`` (``conf/hydra/launcher/batched.yaml``)."""
