"""Rebuilding a network from its JSON layer list (`Network.get_config`).

The schema is the one of the neural-tangents fixtures: a list of
``{"type": "Dense", "out_dim": ..., "W_std": ..., ...}`` dicts in layer order.
"""

from __future__ import annotations

from tfkip.kernels.linear import Conv, Dense
from tfkip.kernels.network import Network, serial
from tfkip.kernels.nonlinear import Erf, Relu
from tfkip.kernels.pooling import AvgPool, Flatten, GlobalAvgPool

LAYER_TYPES = {
    cls.__name__: cls for cls in (Dense, Conv, Relu, Erf, AvgPool, GlobalAvgPool, Flatten)
}


def layer_from_config(config: dict):
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ValueError(
            f"Unknown layer type. Expected one of {sorted(LAYER_TYPES)}. Received: type={kind!r}"
        )
    for key in ("filter_shape", "strides", "window_shape"):
        if isinstance(config.get(key), list):
            config[key] = tuple(config[key])
    return LAYER_TYPES[kind](**config)


def network_from_config(configs: list[dict]) -> Network:
    """Inverse of `Network.get_config`."""
    return serial(*(layer_from_config(c) for c in configs))
