"""The one explicit import list that fills the registry (STYLE P4). Import before composing."""

from components.analytics import providers as _analytics  # noqa: F401
from components.data import config as _db  # noqa: F401
from components.execution import handler as _execution  # noqa: F401
from components.execution import write_buffer as _buffer  # noqa: F401
from components.execution.broker import BrokerConfig, SimulatedBroker
from components.market import providers as _market  # noqa: F401
from components.registry import register
from components.strategies import builtin as _strategies  # noqa: F401
from runner.config import register_root

register_root()


@register("broker", "simulated", BrokerConfig)
def make_broker_config(config: BrokerConfig) -> BrokerConfig:
    """Return the config: the engine builds the broker once it knows the universe."""
    return config


__all__ = ["SimulatedBroker"]
