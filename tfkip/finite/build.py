"""One architecture spec, two products: kernel layers -> finite Keras layers and models.

Every `tfkip.kernels` layer maps to the Keras layer whose wide-network limit it is:

=====================  ==========================================================
kernel layer           Keras layer
=====================  ==========================================================
``Dense``              `NTKDense` (same W_std, b_std, parameterization)
``Conv``               `NTKConv` (same filter, strides, padding, ...)
``Relu``               ``keras.layers.ReLU``
``Erf(a, b, c)``       `Erf` (``a * erf(b x) + c``)
``AvgPool`` VALID      ``keras.layers.AveragePooling2D``
``AvgPool`` SAME       `ZeroPaddedAveragePooling2D` (divides by the full window)
``GlobalAvgPool``      ``keras.layers.GlobalAveragePooling2D``
``Flatten``            ``keras.layers.Flatten``
=====================  ==========================================================

The kernels' input covariance ``x . x' / C`` and Flatten's mean over positions are
the ``1 / fan_in`` of the next finite layer, so the finite network sees the raw inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tfkip.checks import check_positive_int
from tfkip.finite.conv import NTKConv
from tfkip.finite.dense import NTKDense
from tfkip.finite.erf import Erf
from tfkip.finite.pooling import ZeroPaddedAveragePooling2D
from tfkip.kernels import AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Layer, Network, Relu
from tfkip.kernels import Erf as KernelErf


def to_keras_layer(
    layer: Layer, width: int | None = None, seed: int | None = None, name: str | None = None
) -> keras.layers.Layer:
    """The finite Keras counterpart of one kernel layer.

    Args:
      layer: a `tfkip.kernels` layer.
      width: if set, overrides ``out_dim`` / ``out_chan`` of a Dense / Conv (pass None
        for the readout, which keeps its ``out_dim``).
      seed: initialiser seed of a Dense / Conv (ignored by other layers).
      name: Keras layer name.

    >>> from tfkip import kernels as k
    >>> to_keras_layer(k.Dense(10, 2**0.5, 0.1), width=256).units
    256
    """
    if width is not None:
        width = check_positive_int("width", width)
    kw = {} if name is None else {"name": name}
    if isinstance(layer, Dense):
        return NTKDense(
            layer.out_dim if width is None else width,
            W_std=layer.W_std,
            b_std=layer.b_std,
            parameterization=layer.parameterization,
            seed=seed,
            **kw,
        )
    if isinstance(layer, Conv):
        return NTKConv(
            layer.out_chan if width is None else width,
            layer.filter_shape,
            strides=layer.strides,
            padding=layer.padding,
            W_std=layer.W_std,
            b_std=layer.b_std,
            parameterization=layer.parameterization,
            seed=seed,
            **kw,
        )
    if isinstance(layer, Relu):
        return keras.layers.ReLU(**kw)
    if isinstance(layer, KernelErf):
        return Erf(layer.a, layer.b, layer.c, **kw)
    if isinstance(layer, AvgPool):
        if layer.padding == "VALID":
            return keras.layers.AveragePooling2D(layer.window_shape, layer.strides, "valid", **kw)
        return ZeroPaddedAveragePooling2D(layer.window_shape, layer.strides, layer.padding, **kw)
    if isinstance(layer, GlobalAvgPool):
        return keras.layers.GlobalAveragePooling2D(**kw)
    if isinstance(layer, Flatten):
        return keras.layers.Flatten(**kw)
    raise ValueError(
        "No finite Keras counterpart is known for this layer; expected one of Dense, Conv, "
        f"Relu, Erf, AvgPool, GlobalAvgPool, Flatten. Received: layer={layer!r}"
    )


def build_model(
    network: Network,
    input_shape: Sequence[int],
    width: int | None = None,
    seed: int | None = None,
    name: str | None = None,
) -> keras.Model:
    """The finite functional `keras.Model` of a kernel network.

    The last Dense is the readout and keeps its ``out_dim``; every other Dense / Conv gets
    ``width`` channels if given (else its own ``out_dim`` / ``out_chan``).

    Args:
      network: a `tfkip.kernels.serial` network (e.g. from `tfkip.architectures.get`).
      input_shape: per-example shape, ``(H, W, C)`` or ``(d,)``.
      width: hidden width / channels, or None to keep the spec's.
      seed: if set, every layer's initialiser gets its own seed derived from it, so the
        same seed gives the same initial weights; None uses Keras' global RNG.
      name: model name.

    Returns:
      A functional model ``(N, *input_shape) -> (N, out_dim)``.

    Raises:
      ValueError: if ``input_shape`` does not fit the network (e.g. too small for its
        pooling) or the network's output is not flat.

    >>> from tfkip import architectures
    >>> model = build_model(architectures.get("fc", 1), (8, 8, 1), width=64, seed=0)
    >>> model.output_shape
    (None, 10)
    """
    if not isinstance(network, Network):
        raise ValueError(f"network must be a tfkip.kernels Network. Received: network={network!r}")
    input_shape = tuple(int(d) for d in input_shape)
    out = network.output_shape(input_shape)  # validates every layer against the shape
    if not out.is_flat:
        raise ValueError(
            f"The network's output is spatial (per-example shape {out.spatial}); end it with "
            f"Flatten() or GlobalAvgPool() before the readout. Network: {network!r}"
        )
    affine = [i for i, layer in enumerate(network.layers) if isinstance(layer, (Dense, Conv))]
    readout = max((i for i in affine if isinstance(network.layers[i], Dense)), default=None)
    seeds = [None] * len(network.layers)
    if seed is not None:
        states = np.random.SeedSequence(int(seed)).generate_state(len(network.layers))
        seeds = [int(s) & 0x7FFFFFFF for s in states]
    inputs = keras.Input(shape=input_shape, name="images" if len(input_shape) == 3 else "inputs")
    x = inputs
    for i, layer in enumerate(network.layers):
        layer_width = None if i == readout else width
        x = to_keras_layer(layer, layer_width, seeds[i])(x)
    return keras.Model(inputs, x, name=name)
