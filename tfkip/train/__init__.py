"""Distribution strategies, the distributed KIP loop, and checkpoints."""

from tfkip.train.preemption import Preempted
from tfkip.train.strategy import (
    STRATEGIES,
    configure_cpu_devices,
    get_strategy,
    is_default_strategy,
    replica_batch_size,
    set_precision_policy,
)

__all__ = [
    "STRATEGIES",
    "Preempted",
    "configure_cpu_devices",
    "get_strategy",
    "is_default_strategy",
    "replica_batch_size",
    "set_precision_policy",
]
