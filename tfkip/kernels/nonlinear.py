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

    def _pair_with_ntk(self, c, ntk, v1, v2, same):
        """(new nngp, new ntk) for an NTK tensor ``ntk`` (same shape as c)."""
        nngp, factor = self._pair(c, v1, v2, same)
        return nngp, ntk * factor

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
        if is_tensor(kernel.ntk):
            nngp, ntk = self._pair_with_ntk(kernel.nngp, kernel.ntk, v1, v2, same)
        else:
            nngp, ntk = self._pair(kernel.nngp, v1, v2, same)[0], kernel.ntk
        return kernel.replace(nngp=nngp, ntk=ntk, variances=None)

    def _apply_self(self, kernel: Kernel) -> tf.Tensor:
        cov = kernel.nngp
        if kernel.layout != Layout.FULL:
            return self._self(cov)  # every entry pairs a position with itself
        d = spatial.full_to_diag(cov)
        eye = spatial.positions_eye(kernel.shape.spatial)[None]
        return self._pair(cov, d[:, :, :, None, None], d[:, None, None, :, :], eye)[0]


class Relu(_Pointwise):
    """ReLU: the arc-cosine kernel of degree 1 (see module docstring).

    The backward pass is analytic (a custom gradient), a few multiply-adds per entry
    instead of autodiff through the angle: with ``R = sqrt(v1 v2)``,
    ``d nngp/dc = (pi - theta)/(2 pi)``, ``d nngp/dv1 = s/(4 pi v1)``,
    ``d factor/dc = 1/(2 pi s)``, ``d factor/dv1 = -c/(4 pi v1 s)`` (and v2 alike), the
    ``1/s`` terms being 0 where ``s = 0`` (identical inputs, where the factor is constant).
    """

    def _pair(self, c, v1, v2, same):
        return _arccos_pair(c, v1, v2, same)

    def _pair_with_ntk(self, c, ntk, v1, v2, same):
        return _arccos_pair_with_ntk(c, ntk, v1, v2, same)

    def _self(self, v):
        return 0.5 * v

    def get_config(self) -> dict[str, Any]:
        return {}


def _unbroadcast(grad: tf.Tensor, shape: tf.TensorShape) -> tf.Tensor:
    """Sums ``grad`` over the axes that were broadcast from ``shape`` (same rank)."""
    axes = [i for i, (g, d) in enumerate(zip(grad.shape, shape)) if d == 1 and g != 1]
    return tf.reduce_sum(grad, axis=axes, keepdims=True) if axes else grad


def _arccos_parts(c, v1, v2, same):
    """``(s, rest)``: ``s = sqrt(v1 v2 - c^2)`` (0 on identical pairs), ``(pi - theta)/(2 pi)``."""
    dtype = c.dtype
    s = safe_sqrt(v1 * v2 - c * c)
    if same is not None:
        s = tf.where(same, tf.constant(0.0, dtype), s)
    rest = (tf.constant(math.pi, dtype) - angle(s, c)) * (0.5 / math.pi)
    return s, rest


def _arccos_adjoint(c, v1, v2, s, rest, d_nngp, u):
    """``(c_bar, v1_bar, v2_bar)`` of ReLU's nngp and factor (see `Relu`).

    ``u`` is the cotangent of the factor ``rest``. With the ``1/s`` terms 0 where
    ``s = 0``: ``c_bar = K_bar rest + u / (2 pi s)``,
    ``v1_bar = sum_broadcast (K_bar s - u c / s) / (4 pi v1)``, and ``v2_bar`` alike.
    """
    dtype = c.dtype
    inv_2pi = 0.5 / math.pi
    zero, one = tf.constant(0.0, dtype), tf.constant(1.0, dtype)
    positive = s > 0
    inv_s = tf.where(positive, one / tf.where(positive, s, one), zero)
    inv_v1 = tf.where(v1 > 0, one / tf.where(v1 > 0, v1, one), zero)
    inv_v2 = tf.where(v2 > 0, one / tf.where(v2 > 0, v2, one), zero)
    common = (d_nngp * s - u * c * inv_s) * (0.5 * inv_2pi)
    d_c = d_nngp * rest + u * inv_2pi * inv_s
    # v1 and v2 are constant along the axes they were broadcast over: reduce first.
    return d_c, _unbroadcast(common, v1.shape) * inv_v1, _unbroadcast(common, v2.shape) * inv_v2


def _arccos_pair(c, v1, v2, same):
    """(nngp, ntk factor) of ReLU with its analytic gradient (see `Relu`)."""

    @tf.custom_gradient
    def pair(c, v1, v2):
        s, rest = _arccos_parts(c, v1, v2, same)

        def grad(d_nngp, d_factor):
            return _arccos_adjoint(c, v1, v2, s, rest, d_nngp, d_factor)

        return (s * (0.5 / math.pi) + rest * c, rest), grad

    c, v1, v2 = (tf.convert_to_tensor(t) for t in (c, v1, v2))
    return pair(c, v1, v2)


def _arccos_pair_with_ntk(c, ntk, v1, v2, same):
    """ReLU's ``(nngp, ntk * factor)`` with an analytic adjoint that recomputes.

    Forward (``s``, ``rest`` of `_arccos_parts`): ``K = s / (2 pi) + rest c``,
    ``T = Theta rest``. Adjoint, for cotangents ``(K_bar, T_bar)``: ``Theta_bar = T_bar rest``,
    and ``c_bar``, ``v1_bar``, ``v2_bar`` of `_arccos_adjoint` with the factor's cotangent
    ``u = T_bar Theta``. Only the inputs are kept for the backward, which recomputes
    ``s`` and ``rest`` instead of holding them as full-size intermediates.
    """

    @tf.custom_gradient
    def pair(c, ntk, v1, v2):
        s, rest = _arccos_parts(c, v1, v2, same)

        def grad(d_nngp, d_ntk):
            s, rest = _arccos_parts(c, v1, v2, same)
            d_c, d_v1, d_v2 = _arccos_adjoint(c, v1, v2, s, rest, d_nngp, d_ntk * ntk)
            return d_c, d_ntk * rest, d_v1, d_v2

        return (s * (0.5 / math.pi) + rest * c, ntk * rest), grad

    c, ntk, v1, v2 = (tf.convert_to_tensor(t) for t in (c, ntk, v1, v2))
    return pair(c, ntk, v1, v2)


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
