"""Spatial reductions: `AvgPool`, `GlobalAvgPool` and `Flatten`.

* AvgPool averages each position's window independently:
  ``K_out(P, Q) = 1/|w|^2 sum_{p in w(P), q in w(Q)} K(p, q)``; it needs the FULL layout.
* GlobalAvgPool: ``K <- mean over all (p, q) of K(p, q)``; needs FULL.
* Flatten: ``K <- mean over p of K(p, p)`` (neural-tangents divides by the number of
  positions, so that a following Dense sees normalised features); needs only DIAG.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfkip.checks import check_padding, check_window
from tfkip.kernels import band, spatial
from tfkip.kernels.kernel import Kernel, Layout, Shape, scale_real
from tfkip.kernels.layer import Layer, require_spatial


class AvgPool(Layer):
    """Average pooling over NHWC images.

    Args:
      window_shape: ``(wh, ww)``.
      strides: ``(sh, sw)``; default ``(1, 1)``, as in neural-tangents (pass
        ``strides=window_shape`` for non-overlapping windows).
      padding: 'VALID' or 'SAME' (zero padding, always divided by the window size, as
        neural-tangents' ``normalize_edges=False``).
    """

    def __init__(self, window_shape, strides=None, padding: str = "VALID"):
        self.window_shape = check_window("window_shape", window_shape)
        self.strides = check_window("strides", (1, 1) if strides is None else strides)
        self.padding = check_padding(padding)

    def _geometry(self, shape: Shape):
        require_spatial(self, shape)
        geometry = []
        for length, window, stride in zip(shape.spatial, self.window_shape, self.strides):
            if self.padding == "VALID" and window > length:
                raise ValueError(
                    f"AvgPool window_shape={self.window_shape} is larger than the images "
                    f"(spatial shape {shape.spatial}) reaching it. Use a smaller window or "
                    f"fewer pooling layers."
                )
            geometry.append(spatial.window_geometry(length, window, stride, self.padding))
        return geometry

    def output_shape(self, shape: Shape) -> Shape:
        return Shape(tuple(g[0] for g in self._geometry(shape)), shape.channels)

    def input_layout(self, output_layout: Layout) -> Layout:
        return Layout.FULL

    def output_layout(self, input_layout: Layout) -> Layout:
        return Layout.FULL

    def input_band(self, output_radius):
        if output_radius is None:
            return None
        return tuple(
            s * r + w - 1 for s, r, w in zip(self.strides, output_radius, self.window_shape)
        )

    def apply(self, kernel: Kernel) -> Kernel:
        geometry = self._geometry(kernel.shape)
        norm = 1.0 / (self.window_shape[0] * self.window_shape[1]) ** 2
        if kernel.layout == Layout.BAND:
            shape = self.output_shape(kernel.shape)

            def pool_band(x):
                y = band.pool(x, self.window_shape, self.strides, geometry)
                inside = band.mask(shape.spatial, band.radius_of(y), x.dtype.real_dtype)
                return scale_real(y, inside * norm)

            return kernel.map_linear(pool_band).replace(shape=shape)
        if kernel.layout != Layout.FULL:
            raise ValueError("AvgPool needs the position-by-position covariance (FULL or BAND).")

        # One group per axis: each position's window is summed independently.
        groups = [
            ((axis,), window, stride, (lo, hi), out)
            for axis, (out, lo, hi), window, stride in zip(
                (-4, -3, -2, -1), geometry * 2, self.window_shape * 2, self.strides * 2
            )
        ]

        def pool(x):
            return spatial.window_sum(x, groups) * norm

        return kernel.map_linear(pool).replace(shape=self.output_shape(kernel.shape))

    def get_config(self) -> dict[str, Any]:
        return {
            "window_shape": list(self.window_shape),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class GlobalAvgPool(Layer):
    """Average over all spatial positions (needs the FULL layout)."""

    def output_shape(self, shape: Shape) -> Shape:
        require_spatial(self, shape)
        return Shape((), shape.channels)

    def input_layout(self, output_layout: Layout) -> Layout:
        return Layout.FULL

    def input_band(self, output_radius):
        return None  # every pair of positions

    def output_layout(self, input_layout: Layout) -> Layout:
        return Layout.FLAT

    def apply(self, kernel: Kernel) -> Kernel:
        if kernel.layout != Layout.FULL:
            raise ValueError("GlobalAvgPool needs the full position-by-position covariance.")

        def mean(x):
            return tf.reduce_mean(x, axis=(-4, -3, -2, -1))

        return kernel.map_linear(mean).replace(
            layout=Layout.FLAT, shape=self.output_shape(kernel.shape)
        )

    def get_config(self) -> dict[str, Any]:
        return {}


class Flatten(Layer):
    """Flatten the spatial and channel axes into features (needs only the DIAG layout)."""

    def output_shape(self, shape: Shape) -> Shape:
        size = shape.channels
        for length in shape.spatial:
            size *= length
        return Shape((), size)

    def input_layout(self, output_layout: Layout) -> Layout:
        return Layout.DIAG

    def input_band(self, output_radius):
        return 0, 0

    def output_layout(self, input_layout: Layout) -> Layout:
        return Layout.FLAT

    def apply(self, kernel: Kernel) -> Kernel:
        if kernel.layout == Layout.FLAT:
            return kernel.replace(shape=self.output_shape(kernel.shape))
        if kernel.layout == Layout.FULL:
            kernel = kernel.map_linear(spatial.full_to_diag)
        elif kernel.layout == Layout.BAND:
            kernel = kernel.stacked().map_linear(band.center)
        return kernel.map_linear(lambda x: tf.reduce_mean(x, axis=(-2, -1))).replace(
            layout=Layout.FLAT, shape=self.output_shape(kernel.shape)
        )

    def get_config(self) -> dict[str, Any]:
        return {}
