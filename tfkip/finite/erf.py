"""`Erf`: the finite counterpart of `tfkip.kernels.Erf`."""

from __future__ import annotations

from typing import Any

import keras

from tfkip.checks import check_std


@keras.saving.register_keras_serializable(package="tfkip")
class Erf(keras.layers.Layer):
    """Pointwise ``a * erf(b * x) + c`` (neural-tangents ``stax.Erf``).

    Args:
      a: output scale. b: input scale (>= 0). c: output shift.
      **kwargs: base `keras.layers.Layer` arguments.

    >>> Erf(a=2.0)(np.zeros((1, 3), "float32")).numpy()
    array([[0., 0., 0.]], dtype=float32)
    """

    def __init__(self, a: float = 1.0, b: float = 1.0, c: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("a", a), ("b", b), ("c", c)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number. Received: {name}={value!r}")
        check_std("b", b, allow_none=False)
        self.a, self.b, self.c = float(a), float(b), float(c)

    def call(self, inputs):
        return self.a * keras.ops.erf(self.b * inputs) + self.c

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "a": self.a, "b": self.b, "c": self.c}
