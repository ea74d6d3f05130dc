"""Distribution strategies, the distributed KIP loop, and checkpoints."""

from tfkip.train.strategy import (
    STRATEGIES,
    configure_cpu_devices,
    get_strategy,
    replica_batch_size,
)

__all__ = ["STRATEGIES", "configure_cpu_devices", "get_strategy", "replica_batch_size"]
