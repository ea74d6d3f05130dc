"""Export a finite network (or its centred form) as a model of built-in Keras layers only.

A trained `tfkip.finite.build_model` network computes exactly what built-in Keras layers
compute once every affine layer's scales are folded into its weights:

=================================  ==============================================
tfkip layer                        built-in Keras layer(s)
=================================  ==============================================
`NTKDense` (either param.)         ``Dense`` with kernel ``s_W theta_W``, bias ``s_b theta_b``
`NTKConv` (either param.)          ``Conv2D`` with the same folded weights
`ZeroPaddedAveragePooling2D`       ``ZeroPadding2D`` (TF 'SAME' amounts) + ``AveragePooling2D``
ReLU, Flatten, pooling             the same layer (a fresh copy from its config)
=================================  ==============================================

(``s_W = W_std / sqrt(fan_in)``, ``s_b = b_std`` under 'ntk', 1 under 'standard'.) The
centred network ``g(x) = f(x; theta) - f(x; theta_0)`` becomes a functional model with two
such branches, the second frozen (``trainable=False``), joined by ``Subtract``. The
saved file then loads with ``keras.models.load_model(path)`` in a process that never
imported tfkip. Only `tfkip.finite.Erf` has no built-in counterpart: it stays (registered
as ``tfkip>Erf``), so such a model needs ``import tfkip`` before loading.

>>> from tfkip import architectures
>>> from tfkip.finite import build_model
>>> net = build_model(architectures.get("fc", 1), (4,), width=8, seed=0)
>>> plain = plain_keras_model(net)
>>> bool(np.allclose(plain(np.ones((2, 4))), net(np.ones((2, 4))), atol=1e-6))
True
"""

from __future__ import annotations

import keras
import numpy as np

from tfkip.finite.conv import NTKConv
from tfkip.finite.dense import NTKDense
from tfkip.finite.pooling import ZeroPaddedAveragePooling2D


def _folded(layer) -> list[np.ndarray]:
    return [np.asarray(v.numpy()) * scale for v, scale in layer.effective_weights()]


def _apply_plain(layer: keras.layers.Layer, x, trainable: bool):
    """Applies the built-in counterpart of ``layer`` to the symbolic tensor ``x``."""
    kw = {"name": layer.name, "trainable": trainable}
    if isinstance(layer, NTKDense):
        plain = keras.layers.Dense(layer.units, use_bias=layer.use_bias, **kw)
    elif isinstance(layer, NTKConv):
        plain = keras.layers.Conv2D(
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding.lower(),
            use_bias=layer.use_bias,
            **kw,
        )
    elif isinstance(layer, ZeroPaddedAveragePooling2D):
        (_, top, bottom), (_, left, right) = layer._geometry(x.shape)
        if top or bottom or left or right:
            pads = ((top, bottom), (left, right))
            x = keras.layers.ZeroPadding2D(pads, name=f"{layer.name}_pad")(x)
        pool = keras.layers.AveragePooling2D(layer.pool_size, layer.strides, "valid", **kw)
        return pool(x)
    else:
        config = {**layer.get_config(), "trainable": trainable}
        return type(layer).from_config(config)(x)
    out = plain(x)
    plain.set_weights(_folded(layer))
    return out


def _chain(model: keras.Model, x, trainable: bool, prefix: str = ""):
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            raise ValueError(
                "plain_keras_model expects a tfkip.finite.build_model network (a chain of "
                f"layers). Received: nested model {layer.name!r} in {model.name!r}"
            )
        x = _apply_plain(layer, x, trainable)
    return x


def plain_keras_model(model: keras.Model, initial: keras.Model | None = None) -> keras.Model:
    """``model`` (and, if given, ``model - initial``) rebuilt from built-in Keras layers.

    Args:
      model: a `tfkip.finite.build_model` network ``(N, *input_shape) -> (N, C)``.
      initial: the same architecture at its initial weights; if given, the result is the
        centred network ``x -> model(x) - initial(x)`` with the initial branch frozen.

    Returns:
      A functional `keras.Model` computing the same function (up to float rounding:
      the scales are folded into the weights), named ``finite`` or ``finite_centered``.
    """
    shape = tuple(model.inputs[0].shape[1:])
    inputs = keras.Input(shape, name="images" if len(shape) == 3 else "inputs")
    if initial is None:
        return keras.Model(inputs, _chain(model, inputs, True), name="finite")
    trained = keras.Model(inputs, _chain(model, inputs, True), name="trained")
    frozen_in = keras.Input(shape, name="initial_inputs")
    frozen = keras.Model(frozen_in, _chain(initial, frozen_in, False), name="initial")
    frozen.trainable = False
    outputs = keras.layers.Subtract(name="centered")([trained(inputs), frozen(inputs)])
    return keras.Model(inputs, outputs, name="finite_centered")
