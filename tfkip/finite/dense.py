"""`NTKDense`: the finite counterpart of `tfkip.kernels.Dense`."""

from __future__ import annotations

from typing import Any

import keras

from tfkip.checks import check_positive_int
from tfkip.finite._affine import AffineMixin


@keras.saving.register_keras_serializable(package="tfkip")
class NTKDense(AffineMixin, keras.layers.Layer):
    """Fully connected layer on the last axis, in 'ntk' or 'standard' parameterization.

    With ``fan_in = x.shape[-1]``:

    * 'ntk': ``y = W_std / sqrt(fan_in) * x @ W + b_std * b`` with ``W, b ~ N(0, 1)``;
    * 'standard': ``y = x @ W + b`` with ``W ~ N(0, W_std^2/fan_in)``, ``b ~ N(0, b_std^2)``.

    As the width grows, the outputs of randomly initialised networks of these layers
    become a Gaussian process whose covariance is the NNGP of `tfkip.kernels.Dense`
    with the same arguments (Lee et al. 2018, arXiv 1711.00165), and under 'ntk' their
    Jacobian inner product tends to its NTK (Jacot et al. 2018, arXiv 1806.07572).

    Args:
      units: output features (> 0).
      W_std: weight standard deviation (>= 0).
      b_std: bias standard deviation (>= 0), or None for no bias.
      parameterization: 'ntk' or 'standard'.
      seed: int seed of the initialisers, or None for Keras' global seed.
      **kwargs: base `keras.layers.Layer` arguments (``name``, ``dtype``, ...).

    Input shape ``(..., fan_in)``; output shape ``(..., units)``.

    >>> layer = NTKDense(4, W_std=2**0.5, b_std=0.1)
    >>> layer(np.ones((2, 3), "float32")).shape
    TensorShape([2, 4])
    """

    def __init__(
        self,
        units: int,
        W_std: float = 1.0,  # noqa: N803 (neural-tangents argument name)
        b_std: float | None = None,
        parameterization: str = "ntk",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self._init_affine(W_std, b_std, parameterization, seed)

    def build(self, input_shape) -> None:
        fan_in = input_shape[-1]
        if fan_in is None:
            raise ValueError(
                f"NTKDense needs a known last input dimension. Received: input_shape={input_shape}"
            )
        self._make_weights((fan_in, self.units), fan_in, self.units)

    def call(self, inputs):
        return self._affine_output(keras.ops.matmul(inputs, self.kernel))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, **self._affine_config()}
