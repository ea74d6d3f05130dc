"""`ZeroPaddedAveragePooling2D`: average pooling that divides by the full window.

`keras.layers.AveragePooling2D` with ``padding='same'`` divides each window by the number
of *in-range* pixels (TensorFlow's ``avg_pool``), so a constant image stays constant
at the border. neural-tangents ``stax.AvgPool(..., normalize_edges=False)`` and
`tfkip.kernels.AvgPool` pad with zeros and always divide by ``wh * ww``
(``count_include_pad``). This layer is that second rule; for 'VALID' padding the two
agree and `tfkip.finite.to_keras_layer` uses the Keras layer.
"""

from __future__ import annotations

from typing import Any

import keras

from tfkip.checks import check_padding, check_window
from tfkip.kernels import spatial


@keras.saving.register_keras_serializable(package="tfkip")
class ZeroPaddedAveragePooling2D(keras.layers.Layer):
    """Average pooling over NHWC images with zero padding counted in every window.

    ``y[P] = 1 / (wh * ww) * sum_{d in window} x_pad[s P + d]`` where ``x_pad`` is ``x``
    zero-padded as TensorFlow's 'SAME' (``floor(total / 2)`` before) or not at all
    ('VALID').

    Args:
      pool_size: ``(wh, ww)`` or an int.
      strides: ``(sh, sw)`` or an int; default ``pool_size``.
      padding: 'SAME' or 'VALID' (any case).
      **kwargs: base `keras.layers.Layer` arguments.

    >>> x = np.ones((1, 3, 3, 1), "float32")
    >>> ZeroPaddedAveragePooling2D(2, 1, "SAME")(x)[0, :, :, 0].numpy()
    array([[1.  , 1.  , 0.5 ],
           [1.  , 1.  , 0.5 ],
           [0.5 , 0.5 , 0.25]], dtype=float32)
    """

    def __init__(self, pool_size, strides=None, padding: str = "VALID", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = check_window("pool_size", pool_size)
        self.strides = check_window("strides", self.pool_size if strides is None else strides)
        self.padding = check_padding(padding)

    def _geometry(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"ZeroPaddedAveragePooling2D needs NHWC inputs. Received: input_shape={input_shape}"
            )
        geometry = []
        for length, window, stride in zip(input_shape[1:3], self.pool_size, self.strides):
            if length is None:
                raise ValueError(
                    "ZeroPaddedAveragePooling2D needs known image sizes. "
                    f"Received: input_shape={input_shape}"
                )
            out, lo, hi = spatial.window_geometry(int(length), window, stride, self.padding)
            if out < 1:
                raise ValueError(
                    f"pool_size={self.pool_size} with padding='VALID' is larger than the "
                    f"images (spatial shape {tuple(input_shape[1:3])})."
                )
            geometry.append((out, lo, hi))
        return geometry

    def call(self, inputs):
        (_, top, bottom), (_, left, right) = self._geometry(inputs.shape)
        if top or bottom or left or right:
            inputs = keras.ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]])
        return keras.ops.average_pool(inputs, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        (h, _, _), (w, _, _) = self._geometry(input_shape)
        return (input_shape[0], h, w, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }
