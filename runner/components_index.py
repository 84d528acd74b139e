"""The one explicit import list that fills the registry (STYLE P4). Import before composing."""

from components.analytics import providers as _analytics  # noqa: F401
from components.data import config as _db  # noqa: F401
from components.execution import broker as _broker  # noqa: F401
from components.execution import handler as _execution  # noqa: F401
from components.execution import orders as _orders  # noqa: F401
from components.execution import sizing as _sizing  # noqa: F401
from components.execution import write_buffer as _buffer  # noqa: F401
from components.market import providers as _market  # noqa: F401
from components.strategies import builtin as _strategies  # noqa: F401
from runner.config import register_root

register_root()
