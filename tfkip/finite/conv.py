"""`NTKConv`: the finite counterpart of `tfkip.kernels.Conv`."""

from __future__ import annotations

from typing import Any

import keras

from tfkip.checks import check_padding, check_positive_int, check_window
from tfkip.finite._affine import AffineMixin
from tfkip.kernels import spatial


@keras.saving.register_keras_serializable(package="tfkip")
class NTKConv(AffineMixin, keras.layers.Layer):
    """2-D convolution over NHWC images, in 'ntk' or 'standard' parameterization.

    With ``fan_in = C_in * fh * fw`` and ``W`` of shape ``(fh, fw, C_in, filters)``:

    * 'ntk': ``y = W_std / sqrt(fan_in) * conv(x, W) + b_std * b``, ``W, b ~ N(0, 1)``;
    * 'standard': ``y = conv(x, W) + b``, ``W ~ N(0, W_std^2/fan_in)``, ``b ~ N(0, b_std^2)``.

    'SAME' padding pads with zeros as TensorFlow does (``floor(total/2)`` before), which
    is the padding of `tfkip.kernels.Conv`: out-of-range taps contribute 0 but still count
    in ``fan_in``. Its wide-network limit is that layer's NNGP / NTK (Novak et al. 2019,
    arXiv 1810.05148).

    Args:
      filters: output channels (> 0).
      kernel_size: ``(fh, fw)`` or an int.
      strides: ``(sh, sw)`` or an int; default ``(1, 1)``.
      padding: 'SAME' or 'VALID' (any case).
      W_std, b_std, parameterization, seed: as in `NTKDense`.
      **kwargs: base `keras.layers.Layer` arguments.

    Input ``(N, H, W, C_in)``; output ``(N, H', W', filters)``.

    >>> NTKConv(8, (3, 3), padding="SAME")(np.ones((1, 5, 5, 2), "float32")).shape
    TensorShape([1, 5, 5, 8])
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] | None = None,
        padding: str = "VALID",
        W_std: float = 1.0,  # noqa: N803 (neural-tangents argument name)
        b_std: float | None = None,
        parameterization: str = "ntk",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_window("kernel_size", kernel_size)
        self.strides = check_window("strides", (1, 1) if strides is None else strides)
        self.padding = check_padding(padding)
        self._init_affine(W_std, b_std, parameterization, seed)

    def build(self, input_shape) -> None:
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "NTKConv needs NHWC inputs (N, H, W, C) with a known channel count. "
                f"Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        fan_in = channels * self.kernel_size[0] * self.kernel_size[1]
        self._make_weights((*self.kernel_size, channels, self.filters), fan_in, self.filters)

    def call(self, inputs):
        out = keras.ops.conv(
            inputs, self.kernel, strides=self.strides, padding=self.padding.lower()
        )
        return self._affine_output(out)

    def compute_output_shape(self, input_shape):
        spatial_out = []
        for length, window, stride in zip(input_shape[1:3], self.kernel_size, self.strides):
            if length is None:
                spatial_out.append(None)
                continue
            out = spatial.window_geometry(length, window, stride, self.padding)[0]
            if out < 1:
                raise ValueError(
                    f"NTKConv kernel_size={self.kernel_size} with padding='VALID' does not fit "
                    f"in images of spatial shape {tuple(input_shape[1:3])}."
                )
            spatial_out.append(out)
        return (input_shape[0], *spatial_out, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            **self._affine_config(),
        }
