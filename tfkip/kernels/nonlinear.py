"""Pointwise nonlinearities: `Relu` and `Erf` (neural-tangents ``stax.Relu`` / ``stax.Erf``).

For pre-activations with covariance ``[[v1, c], [c, v2]]`` a nonlinearity phi maps the
NNGP to ``E[phi(u) phi(u')]`` and multiplies the NTK by ``E[phi'(u) phi'(u')]``:

* ReLU (arc-cosine kernel, Cho & Saul 2009), ``theta = atan2(sqrt(v1 v2 - c^2), c)``:
  ``K <- (sqrt(v1 v2 - c^2) + (pi - theta) c) / (2 pi)``, ``Theta <- Theta (pi - theta) / (2 pi)``.
* ``a erf(b x) + c0`` (Williams 1997):
  ``K <- a^2 (2/pi) arcsin(2 b^2 c / sqrt((1 + 2 b^2 v1)(1 + 2 b^2 v2))) + c0^2``,
  ``Theta <- Theta a^2 4 b^2 / (pi sqrt((1 + 2 b^2 v1)(1 + 2 b^2 v2) - 4 b^4 c^2))``.

Where the two inputs are the same (the self-kernel diagonal, ``c^2 = v1 v2``) the ReLU
angle is set to exactly 0 with a zero-derivative square root (see `numerics`), so values
are exact and gradients finite there.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

from tfkip.kernels import spatial
from tfkip.kernels.base import Layer, check_std
from tfkip.kernels.kernel import Kernel, Layout, Shape, is_tensor
from tfkip.kernels.numerics import angle, safe_sqrt


class _Pointwise(Layer):
    """Shared bookkeeping: broadcasting the variances to each layout."""

    needs_variances = True

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def _pair(self, c, v1, v2, same) -> tuple[tf.Tensor, tf.Tensor]:
        """(new nngp, ntk factor) for covariance c and variances v1, v2 (broadcastable).

        ``same`` is None or a bool tensor broadcastable to c marking identical inputs.
        """
        raise NotImplementedError

    def _self(self, v: tf.Tensor) -> tf.Tensor:
        """New variance of an input with variance v (identical inputs)."""
        raise NotImplementedError

    def apply(self, kernel: Kernel) -> Kernel:
        if kernel.batch_ndim == 1:
            return kernel.replace(nngp=self._apply_self(kernel))
        v1, v2 = kernel.variances
        same = kernel.same
        if kernel.layout == Layout.FLAT:
            v1, v2 = v1[:, None], v2[None, :]
        elif kernel.layout == Layout.DIAG:
            v1, v2 = v1[:, None], v2[None]
            same = None if same is None else same[:, :, None, None]
        else:
            v1, v2 = v1[:, None, :, :, None, None], v2[None, :, None, None, :, :]
            if same is not None:
                eye = spatial.positions_eye(kernel.shape.spatial)
                same = tf.logical_and(same[:, :, None, None, None, None], eye[None, None])
        nngp, factor = self._pair(kernel.nngp, v1, v2, same)
        ntk = kernel.ntk * factor if is_tensor(kernel.ntk) else kernel.ntk
        return kernel.replace(nngp=nngp, ntk=ntk, variances=None)

    def _apply_self(self, kernel: Kernel) -> tf.Tensor:
        cov = kernel.nngp
        if kernel.layout != Layout.FULL:
            return self._self(cov)  # every entry pairs a position with itself
        d = spatial.full_to_diag(cov)
        eye = spatial.positions_eye(kernel.shape.spatial)[None]
        return self._pair(cov, d[:, :, :, None, None], d[:, None, None, :, :], eye)[0]


class Relu(_Pointwise):
    """ReLU: the arc-cosine kernel of degree 1 (see module docstring)."""

    def _pair(self, c, v1, v2, same):
        dtype = c.dtype
        s = safe_sqrt(v1 * v2 - c * c)
        if same is not None:
            s = tf.where(same, tf.constant(0.0, s.dtype), s)
        theta = angle(s, c)
        pi = tf.constant(math.pi, dtype)
        inv_2pi = tf.constant(0.5 / math.pi, dtype)
        rest = (pi - theta) * inv_2pi
        return s * inv_2pi + rest * c, rest

    def _self(self, v):
        return 0.5 * v

    def get_config(self) -> dict[str, Any]:
        return {}


class Erf(_Pointwise):
    """``a * erf(b * x) + c`` (see module docstring).

    Args:
      a: output scale. b: input scale (>= 0). c: output shift.
    """

    def __init__(self, a: float = 1.0, b: float = 1.0, c: float = 0.0):
        for name, value in (("a", a), ("b", b), ("c", c)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number. Received: {name}={value!r}")
        check_std("b", b, allow_none=False)
        self.a, self.b, self.c = float(a), float(b), float(c)

    def _pair(self, c, v1, v2, same):
        two_b2 = 2.0 * self.b**2
        prod = (1.0 + two_b2 * v1) * (1.0 + two_b2 * v2)
        nngp = (self.a**2 * 2.0 / math.pi) * tf.asin(two_b2 * c * tf.math.rsqrt(prod))
        nngp = nngp + self.c**2
        factor = (self.a**2 * 2.0 * two_b2 / math.pi) * tf.math.rsqrt(prod - (two_b2 * c) ** 2)
        return nngp, factor

    def _self(self, v):
        two_b2 = 2.0 * self.b**2
        return (self.a**2 * 2.0 / math.pi) * tf.asin(two_b2 * v / (1.0 + two_b2 * v)) + self.c**2

    def get_config(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "c": self.c}
