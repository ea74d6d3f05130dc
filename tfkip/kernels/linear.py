"""Affine layers: `Dense` and `Conv` (neural-tangents ``stax.Dense`` / ``stax.Conv``).

For weights ``W ~ N(0, W_std^2 / fan_in)`` and bias ``b ~ N(0, b_std^2)`` the layer maps
(A the layer's linear action on covariances; identity for Dense, the shared-offset window
average for Conv; Jacot et al. 2018, Novak et al. 2019):

* NNGP: ``K <- W_std^2 A(K) + b_std^2``
* NTK, 'ntk' parameterization: ``Theta <- W_std^2 A(Theta) + K_new``
* NTK, 'standard' parameterization: ``Theta <- fan_in A(K) + W_std^2 A(Theta) + [bias]``,
  where ``[bias]`` is 1 if ``b_std`` is not None (the bias is a trained parameter) and
  fan_in is the input features (Dense) or ``C_in * prod(filter_shape)`` (Conv).

Under 'ntk' the widths ``out_dim``/``out_chan`` do not change the kernels; under
'standard' they are the next layer's fan-in, exactly as in neural-tangents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from tfkip.checks import (
    check_padding,
    check_parameterization,
    check_positive_int,
    check_std,
    check_window,
)
from tfkip.kernels import band, spatial
from tfkip.kernels.kernel import Kernel, Layout, Shape, scale_real
from tfkip.kernels.layer import Layer, require_spatial, scale_add


class _Affine(Layer):
    """Shared NNGP/NTK update of Dense and Conv."""

    W_std: float
    b_std: float | None
    parameterization: str

    def _linear_map(self, kernel: Kernel) -> Callable[[tf.Tensor], tf.Tensor]:
        return lambda x: x

    def _fan_in(self, shape: Shape) -> int:
        raise NotImplementedError

    def apply(self, kernel: Kernel) -> Kernel:
        # One pass of the linear map over the stacked (nngp, ntk), then the elementwise
        # update of both, stacked again (XLA fuses it into the map's loop).
        return self.update(kernel, self._linear_map(kernel)(kernel.values))

    def update(self, kernel: Kernel, a: tf.Tensor) -> Kernel:
        """The layer's output from ``a``, its linear map of ``kernel.values`` (same stack,
        or the same ``K + i Theta`` pair). BAND outputs carrying an NTK tensor are pairs."""
        w2 = self.W_std**2
        b2 = 0.0 if self.b_std is None else self.b_std**2
        shape = self.output_shape(kernel.shape)
        state = kernel.ntk_state
        if state == "pair":
            a_nngp, a_ntk = tf.math.real(a[0]), tf.math.imag(a[0])
        else:
            a_nngp, a_ntk = a[0], a[-1]  # a[-1] is a[0] itself under "nngp"
        inside = None
        if kernel.layout == Layout.BAND:  # offsets outside the image stay 0 (`band.mask`)
            inside = band.mask(shape.spatial, band.radius_of(a), a_nngp.dtype)
        # Each part is masked before it is stacked, so that a consumer's slice of the stack
        # reads that part's expression (XLA folds slice(concatenate)) instead of a stored
        # copy of the stack: one pass over the layer's output less.
        nngp = _masked(scale_add(a_nngp, w2, b2), inside)
        if state == "none" or (self.parameterization == "ntk" and state == "zero"):
            # Theta = K after a first affine layer: one tensor, not two equal ones.
            return kernel.replace(
                values=nngp[None], ntk_state="none" if state == "none" else "nngp", shape=shape
            )
        if self.parameterization == "ntk":
            ntk = nngp
        else:
            bias_term = 0.0 if self.b_std is None else 1.0
            ntk = _masked(scale_add(a_nngp, float(self._fan_in(kernel.shape)), bias_term), inside)
        if state in ("tensor", "nngp", "pair"):
            ntk = ntk + _masked(a_ntk, inside) * tf.constant(w2, a_nngp.dtype)
        if kernel.layout == Layout.BAND:
            return kernel.replace(values=tf.complex(nngp, ntk)[None], ntk_state="pair", shape=shape)
        return kernel.replace(values=tf.stack([nngp, ntk]), ntk_state="tensor", shape=shape)


def _masked(x: tf.Tensor, inside: tf.Tensor | None) -> tf.Tensor:
    """``x`` times the BAND mask ``inside``, or ``x`` itself for other layouts (None)."""
    return x if inside is None else x * inside


class Dense(_Affine):
    """Fully connected layer acting on the last (channel) axis.

    Args:
      out_dim: output features (the width; only matters under 'standard').
      W_std: weight standard deviation (>= 0).
      b_std: bias standard deviation, or None for no bias.
      parameterization: 'ntk' or 'standard'.

    >>> from tfkip import kernels as k
    >>> net = k.serial(k.Dense(512, W_std=2**0.5, b_std=0.1), k.Relu(), k.Dense(10))
    """

    def __init__(
        self,
        out_dim: int,
        W_std: float = 1.0,  # noqa: N803 (neural-tangents argument name)
        b_std: float | None = None,
        parameterization: str = "ntk",
    ):
        self.out_dim = check_positive_int("out_dim", out_dim)
        self.W_std = check_std("W_std", W_std, allow_none=False)
        self.b_std = check_std("b_std", b_std, allow_none=True)
        self.parameterization = check_parameterization(parameterization)

    def output_shape(self, shape: Shape) -> Shape:
        return Shape(shape.spatial, self.out_dim)

    def _fan_in(self, shape: Shape) -> int:
        return shape.channels

    def get_config(self) -> dict[str, Any]:
        return {
            "out_dim": self.out_dim,
            "W_std": self.W_std,
            "b_std": self.b_std,
            "parameterization": self.parameterization,
        }


class Conv(_Affine):
    """2-D convolution over NHWC images.

    Its linear action on a covariance averages over the filter taps, moving both
    positions by the same offset: ``A(K)(P, Q) = 1/|F| sum_d K(sP + d - lo, sQ + d - lo)``
    (zero outside the image; with 'SAME' padding the out-of-range taps still count in
    ``1/|F|``). On a DIAG kernel this is a plain window average of K(p, p).

    Args:
      out_chan: output channels (the width; only matters under 'standard').
      filter_shape: ``(fh, fw)``.
      strides: ``(sh, sw)``; default ``(1, 1)``.
      padding: 'SAME' or 'VALID'.
      W_std, b_std, parameterization: as in `Dense`.
    """

    def __init__(
        self,
        out_chan: int,
        filter_shape: tuple[int, int],
        strides: tuple[int, int] | None = None,
        padding: str = "VALID",
        W_std: float = 1.0,  # noqa: N803
        b_std: float | None = None,
        parameterization: str = "ntk",
    ):
        self.out_chan = check_positive_int("out_chan", out_chan)
        self.filter_shape = check_window("filter_shape", filter_shape)
        self.strides = check_window("strides", (1, 1) if strides is None else strides)
        self.padding = check_padding(padding)
        self.W_std = check_std("W_std", W_std, allow_none=False)
        self.b_std = check_std("b_std", b_std, allow_none=True)
        self.parameterization = check_parameterization(parameterization)

    def _geometry(self, shape: Shape) -> list[tuple[int, int, int]]:
        require_spatial(self, shape)
        geometry = []
        for length, window, stride in zip(shape.spatial, self.filter_shape, self.strides):
            out, lo, hi = spatial.window_geometry(length, window, stride, self.padding)
            if out < 1:
                raise ValueError(
                    f"Conv filter_shape={self.filter_shape} with padding='VALID' does not "
                    f"fit in images of spatial shape {shape.spatial}."
                )
            geometry.append((out, lo, hi))
        return geometry

    def output_shape(self, shape: Shape) -> Shape:
        return Shape(tuple(g[0] for g in self._geometry(shape)), self.out_chan)

    def _fan_in(self, shape: Shape) -> int:
        return shape.channels * self.filter_shape[0] * self.filter_shape[1]

    def input_band(self, output_radius):
        if output_radius is None:
            return None
        return tuple(s * r for s, r in zip(self.strides, output_radius))

    def _linear_map(self, kernel: Kernel) -> Callable[[tf.Tensor], tf.Tensor]:
        geometry = self._geometry(kernel.shape)
        norm = 1.0 / (self.filter_shape[0] * self.filter_shape[1])
        if kernel.layout == Layout.BAND:  # positions only; every offset on its own
            axis_groups = ((-2,), (-1,))
        elif kernel.layout == Layout.FULL:
            axis_groups = ((-4, -2), (-3, -1))
        elif kernel.layout == Layout.DIAG:
            axis_groups = ((-2,), (-1,))
        else:  # pragma: no cover - prevented by require_spatial
            raise ValueError("Conv needs a spatial kernel.")

        groups = [
            (axes, window, stride, (lo, hi), out)
            for axes, (out, lo, hi), window, stride in zip(
                axis_groups, geometry, self.filter_shape, self.strides
            )
        ]

        def linear_map(x: tf.Tensor) -> tf.Tensor:
            if kernel.layout == Layout.BAND:
                x = band.conv_offsets(x, self.strides)
            return scale_real(spatial.window_sum(x, groups), norm)

        return linear_map

    def patches(self, x: tf.Tensor) -> tf.Tensor:
        """``(n, H, W, C) -> (n, H' W', fh fw C)``: the zero-padded input window of every
        output position, so that this conv's linear map of the input covariance is
        ``A(<x_p, x'_q> / C)(P, Q) = <patch(x)_P, patch(x')_Q> / (fh fw C)``: one matmul
        instead of a window sum over the (much larger) position-by-position covariance.
        """
        shape = Shape(tuple(x.shape[1:3]), x.shape[3])
        (ho, lo_h, hi_h), (wo, lo_w, hi_w) = self._geometry(shape)
        (sh, sw), (fh, fw) = self.strides, self.filter_shape
        padded = tf.pad(x, [[0, 0], [lo_h, hi_h], [lo_w, hi_w], [0, 0]])
        taps = [
            padded[:, dh : dh + sh * (ho - 1) + 1 : sh, dw : dw + sw * (wo - 1) + 1 : sw, :]
            for dh in range(fh)
            for dw in range(fw)
        ]
        return tf.reshape(tf.concat(taps, axis=-1), [-1, ho * wo, fh * fw * shape.channels])

    def get_config(self) -> dict[str, Any]:
        return {
            "out_chan": self.out_chan,
            "filter_shape": list(self.filter_shape),
            "strides": list(self.strides),
            "padding": self.padding,
            "W_std": self.W_std,
            "b_std": self.b_std,
            "parameterization": self.parameterization,
        }
