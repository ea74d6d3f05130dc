"""Pointwise nonlinearities: `Relu` and `Erf` (neural-tangents ``stax.Relu`` / ``stax.Erf``).

For pre-activations with covariance ``[[v1, c], [c, v2]]`` a nonlinearity phi maps the
NNGP to ``E[phi(u) phi(u')]`` and multiplies the NTK by ``E[phi'(u) phi'(u')]``:

* ReLU (arc-cosine kernel, Cho & Saul 2009), with the correlation ``rho = c / sqrt(v1 v2)``,
  ``q = sqrt(1 - rho^2)`` and ``theta = arccos(rho)``:
  ``K <- sqrt(v1 v2) (q + (pi - theta) rho) / (2 pi)``, ``Theta <- Theta (pi - theta) / (2 pi)``.
* ``a erf(b x) + c0`` (Williams 1997):
  ``K <- a^2 (2/pi) arcsin(2 b^2 c / sqrt((1 + 2 b^2 v1)(1 + 2 b^2 v2))) + c0^2``,
  ``Theta <- Theta a^2 4 b^2 / (pi sqrt((1 + 2 b^2 v1)(1 + 2 b^2 v2) - 4 b^4 c^2))``.

Where the two inputs are the same (the self-kernel diagonal) the ReLU correlation is set
to exactly 1 (angle 0), so values are exact and gradients finite there; a zero variance
(an all-zero input without bias) gives ``rho = 0`` and a zero kernel.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla as tfxla

from tfkip.checks import check_std
from tfkip.kernels import band, spatial
from tfkip.kernels.kernel import Kernel, Layout, Shape
from tfkip.kernels.layer import Layer


class _Pointwise(Layer):
    """Shared bookkeeping: broadcasting the variances to each layout."""

    needs_variances = True
    zero_outside = False
    """Whether a zero variance (a position outside the image, `band`) maps to a zero
    kernel, so that BAND entries outside the image stay 0 without a mask."""
    maps_pairs = False
    """Whether `_map` reads and writes BAND kernels as ``K + i Theta`` pairs (`Kernel`);
    otherwise it gets the stack ``[K, Theta]`` and its output is paired afterwards."""

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def _map(self, values, v1, v2, same, full=False, ntk_is_nngp=False, pair=False):
        """New ``(k, ...)`` values from stacked ``values = [c(, Theta)]`` and variances.

        ``v1``, ``v2`` broadcast against ``c = values[0]``; ``same`` marks identical
        inputs: None, a bool tensor broadcastable to c, or a tuple of them (their
        conjunction, see `_where_same`); ``full`` says the values are
        position-by-position (FULL layout), where a layer's tensors are largest;
        ``ntk_is_nngp`` that ``values = [c]`` stands for ``[c, Theta = c]``; ``pair``
        (only for `maps_pairs` layers) that ``values`` may be a ``[c + i Theta]`` pair and a
        new NTK is returned as one too (`Kernel`).
        """
        raise NotImplementedError

    def _self(self, v: tf.Tensor) -> tf.Tensor:
        """New variance of an input with variance v (identical inputs)."""
        raise NotImplementedError

    def apply(self, kernel: Kernel) -> Kernel:
        if kernel.batch_ndim == 1:
            return kernel.replace(values=self._apply_self(kernel)[None])
        v1, v2 = kernel.variances
        same = kernel.same
        # (n1, 1, ...) and (1, n2, ...); for zipped pairs both (P, 1, ...).
        v1, v2 = v1[:, None], v2[:, None] if kernel.zipped else v2[None]
        if kernel.layout == Layout.DIAG:
            same = None if same is None else same[:, :, None, None]
        elif kernel.layout == Layout.FULL:
            v1, v2 = v1[..., None, None], v2[:, :, None, None]
            if same is not None:
                eye = spatial.positions_eye(kernel.shape.spatial)
                # Kept apart: their conjunction is a full-size mask, which TensorFlow
                # folds into a constant of the whole kernel's size when the pairs are
                # static (memory, and compilation time, of a kernel-sized constant).
                same = (same[:, :, None, None, None, None], eye[None, None])
        elif kernel.layout == Layout.BAND:
            # v2 at the offset position p + d; 0 outside the image, where the band is 0.
            radius = band.radius_of(kernel.values)
            v1, v2 = band.position_variances(v1, v2, radius)
            if same is not None:
                same = (same[:, :, None, None, None, None], band.center_indicator(radius))
        full = kernel.layout in (Layout.FULL, Layout.BAND)
        ntk_is_nngp = kernel.ntk_state == "nngp"
        banded = kernel.layout == Layout.BAND
        pair = banded and self.maps_pairs
        if banded and not pair:
            kernel = kernel.stacked()
        values = self._map(kernel.values, v1, v2, same, full, ntk_is_nngp, pair)
        if banded and not self.zero_outside:
            values = values * band.mask(kernel.shape.spatial, band.radius_of(values), values.dtype)
        state = "pair" if values.dtype.is_complex else "tensor" if ntk_is_nngp else kernel.ntk_state
        out = kernel.replace(values=values, ntk_state=state, variances=None)
        return out.paired() if banded else out

    def _apply_self(self, kernel: Kernel) -> tf.Tensor:
        cov = kernel.nngp
        if kernel.layout == Layout.BAND:
            d, radius = band.center(cov), band.radius_of(cov)
            same = band.center_indicator(radius)
            v1, v2 = band.position_variances(d, d, radius)
            out = self._map(cov[None], v1, v2, same, True)[0]
            if not self.zero_outside:
                out = out * band.mask(kernel.shape.spatial, radius, out.dtype)
            return out
        if kernel.layout != Layout.FULL:
            return self._self(cov)  # every entry pairs a position with itself
        d = spatial.full_to_diag(cov)
        eye = spatial.positions_eye(kernel.shape.spatial)[None]
        return self._map(cov[None], d[:, :, :, None, None], d[:, None, None, :, :], eye, True)[0]


class Relu(_Pointwise):
    """ReLU: the arc-cosine kernel of degree 1 (see module docstring and `relu_map`)."""

    zero_outside = True  # K = sqrt(v1 v2) (...) and T = Theta j0 with Theta = 0 there
    maps_pairs = True  # one loop writes K and T (`relu_map`)

    def _map(self, values, v1, v2, same, full=False, ntk_is_nngp=False, pair=False):
        return relu_map(values, v1, v2, same, recompute=full, ntk_is_nngp=ntk_is_nngp, pair=pair)

    def _self(self, v):
        return 0.5 * v

    def get_config(self) -> dict[str, Any]:
        return {}


# A&S 4.4.46: arccos(x) = sqrt(1 - x) * poly(x) on [0, 1], |error| <= 2e-8.
_ARCCOS_COEFFICIENTS = (
    -0.0012624911,
    0.0066700901,
    -0.0170881256,
    0.0308918810,
    -0.0501743046,
    0.0889789874,
    -0.2145988016,
    1.5707963050,
)


def _arccos_unit(x: tf.Tensor, q: tf.Tensor) -> tf.Tensor:
    """``arccos(x)`` for ``x`` in [0, 1], given ``q = sqrt(1 - x^2)``.

    Float64 uses ``atan2(q, x)`` (exact to rounding; never at the origin since
    ``x^2 + q^2 = 1``); float32 a polynomial in ``x`` times ``sqrt(1 - x)`` (error 2e-8,
    a few multiply-adds that vectorise, where ``atan2`` is a scalar libm call on CPU).
    """
    if x.dtype == tf.float64:
        return tf.math.atan2(q, x)
    poly = tf.constant(_ARCCOS_COEFFICIENTS[0], x.dtype)
    for coefficient in _ARCCOS_COEFFICIENTS[1:]:
        poly = poly * x + coefficient
    return tf.sqrt(tf.maximum(1.0 - x, 0.0)) * poly


def _safe_rsqrt(v: tf.Tensor) -> tf.Tensor:
    """``1 / sqrt(v)``, and 0 where ``v <= 0`` (a zero variance)."""
    positive = v > 0
    return tf.where(positive, tf.math.rsqrt(tf.where(positive, v, 1.0)), 0.0)


def _relu_parts(c, r1, r2, same, distinct: bool = False):
    """``(rho, q, j0)`` of ReLU: correlation, ``sqrt(1 - rho^2)``, ``(pi - theta)/(2 pi)``.

    ``distinct`` forms ``rho`` as ``(c r1) r2`` instead of ``c (r1 r2)``: the same value to
    rounding, but not the same XLA expression, so that common-subexpression elimination
    cannot merge a backward pass's recomputation into the forward's tensors.
    """
    rho = (c * r1) * r2 if distinct else c * (r1 * r2)
    rho = tf.clip_by_value(rho, -1.0, 1.0)
    rho = _where_same(same, tf.constant(1.0, c.dtype), rho)
    q = tf.sqrt(tf.maximum(1.0 - rho * rho, 0.0))
    arccos_abs = _arccos_unit(tf.abs(rho), q)
    j0 = tf.where(rho < 0, arccos_abs, math.pi - arccos_abs) * (0.5 / math.pi)
    return rho, q, j0


def _where_same(same, value, x):
    """``value`` where every mask of ``same`` holds, else ``x`` (``same``: None, a bool
    tensor, or a tuple of bool tensors, each broadcastable to ``x``)."""
    if same is None:
        return x
    for mask in reversed(same if isinstance(same, tuple) else (same,)):
        value = tf.where(mask, value, x)
    return value


def _unbroadcast(grad: tf.Tensor, shape: tf.TensorShape) -> tf.Tensor:
    """Sums ``grad`` over the axes that were broadcast from ``shape`` (same rank)."""
    axes = [i for i, (g, d) in enumerate(zip(grad.shape, shape)) if d == 1 and g != 1]
    return tf.reduce_sum(grad, axis=axes, keepdims=True) if axes else grad


def relu_map(
    values: tf.Tensor,
    v1: tf.Tensor,
    v2: tf.Tensor,
    same=None,
    recompute: bool = False,
    ntk_is_nngp: bool = False,
    pair: bool = False,
) -> tf.Tensor:
    """ReLU's stacked ``[K(, T)]`` from stacked ``[c(, Theta)]``, with an analytic adjoint.

    Forward, with ``r_i = v_i^(-1/2)`` (0 for a zero variance), ``R = sqrt(v1 v2)``,
    ``rho = c r1 r2`` (1 where ``same``), ``q = sqrt(1 - rho^2)`` and
    ``j0 = (pi - arccos rho) / (2 pi)``:

        K = R (q / (2 pi) + j0 rho),        T = Theta j0.

    Adjoint, for cotangents ``(K_bar, T_bar)`` (``1/q`` read as 0 where ``q = 0``, where
    ``T`` is flat in c; ``dj0/drho = 1 / (2 pi q)``, ``d(q/(2 pi) + j0 rho)/drho = j0``):

        c_bar     = K_bar j0 + T_bar Theta r1 r2 / (2 pi q)
        Theta_bar = T_bar j0
        v1_bar    = r1^2 / (4 pi) sum_broadcast(K_bar R q - T_bar Theta rho / q)   (v2 alike)

    With ``ntk_is_nngp`` the input is ``[c]`` standing for ``Theta = c`` (after a first
    affine layer): ``T = c j0`` and the input cotangent is ``c_bar + Theta_bar``.

    The backward recomputes ``rho, q, j0`` from the inputs. XLA's common-subexpression
    elimination merges that recomputation back into the forward's values, and its
    scheduler hoists what it cannot merge into the forward pass; either keeps full-size
    tensors alive until the reverse pass (about five per layer). With ``recompute`` the
    backward forms ``rho`` differently (`_relu_parts`), makes it depend on the cotangent,
    and writes its outputs (value cotangents and the variances' factor) in one fused pass,
    so the layer holds only its inputs for the reverse pass. That pays on the large FULL
    (position-by-position) covariances of pooled networks (fewer XLA buffers, less memory
    traffic); on small DIAG ones the recomputation costs more than the memory traffic it
    saves, so they keep them. Shapes: ``values`` ``(k, ...)`` with k = 1 (NNGP only, or
    ``ntk_is_nngp``) or 2; ``v1``, ``v2`` broadcast against ``values[0]``; ``same`` None, a
    bool tensor broadcastable to ``values[0]``, or a tuple of them marking identical inputs
    where all hold.

    With ``pair`` the NTK output is the complex ``[K + i T]`` (`Kernel`'s "pair"), and
    ``values`` may be the pair ``[c + i Theta]``; cotangents then come and go as pairs
    (``K_bar + i T_bar``, ``c_bar + i Theta_bar``).
    """
    values_are_pair = values.dtype.is_complex
    with_ntk = values.shape[0] == 2 or ntk_is_nngp or values_are_pair
    inv_2pi = 0.5 / math.pi

    def parts(values):  # (c, Theta)
        if values_are_pair:
            return tf.math.real(values[0]), tf.math.imag(values[0])
        return values[0], values[-1]

    @tf.custom_gradient
    def fn(values, v1, v2):
        r1, r2 = _safe_rsqrt(v1), _safe_rsqrt(v2)
        c, theta = parts(values)
        rho, q, j0 = _relu_parts(c, r1, r2, same)
        nngp = (v1 * r1) * (v2 * r2) * (q * inv_2pi + j0 * rho)
        if not with_ntk:
            out = nngp[None]
        elif pair:
            out = tf.complex(nngp, theta * j0)[None]
        else:
            out = tf.stack([nngp, theta * j0])

        def grad(d_out):
            inputs, v1_, v2_ = values, v1, v2
            if recompute:
                inputs, v1_, v2_, d_out = tfxla.optimization_barrier(values, v1, v2, d_out)
            r1, r2 = _safe_rsqrt(v1_), _safe_rsqrt(v2_)
            c_, theta = parts(inputs)
            if pair and with_ntk:
                k_bar, t_bar = tf.math.real(d_out[0]), tf.math.imag(d_out[0])
            else:
                k_bar, t_bar = d_out[0], d_out[-1]
            if recompute:  # a data dependence on the cotangent: not hoisted into the forward
                c_ = c_ + k_bar * 0.0
            rho, q, j0 = _relu_parts(c_, r1, r2, same, distinct=recompute)
            d_c = k_bar * j0
            g = k_bar * ((v1_ * r1) * (v2_ * r2) * q)
            if with_ntk:
                positive = q > 0
                inv_q = tf.where(positive, 1.0 / tf.where(positive, q, 1.0), 0.0)
                u = t_bar * theta * inv_q
                d_c = d_c + u * (r1 * r2) * inv_2pi
                g = g - u * rho
                d_theta = t_bar * j0
                if ntk_is_nngp:
                    d_values = (d_c + d_theta)[None]
                elif values_are_pair:
                    d_values = tf.complex(d_c, d_theta)[None]
                else:
                    d_values = tf.stack([d_c, d_theta])
            else:
                d_values = d_c[None]
            if recompute:
                # One fused pass writes the value cotangents and g together: separate
                # consumers would make XLA materialise rho, q, 1/q and g's factors.
                last = tf.complex(g, tf.zeros_like(g)) if values_are_pair else g
                stacked = tfxla.optimization_barrier(tf.concat([d_values, last[None]], 0))[0]
                d_values, g = stacked[:-1], stacked[-1]
                g = tf.math.real(g) if values_are_pair else g
            d_v1 = _unbroadcast(g, v1.shape) * (r1 * r1 * (0.5 * inv_2pi))
            d_v2 = _unbroadcast(g, v2.shape) * (r2 * r2 * (0.5 * inv_2pi))
            return d_values, d_v1, d_v2

        return out, grad

    values, v1, v2 = (tf.convert_to_tensor(t) for t in (values, v1, v2))
    return fn(values, v1, v2)


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

    def _map(self, values, v1, v2, same, full=False, ntk_is_nngp=False, pair=False):
        two_b2 = 2.0 * self.b**2
        c = values[0]
        prod = (1.0 + two_b2 * v1) * (1.0 + two_b2 * v2)
        nngp = (self.a**2 * 2.0 / math.pi) * tf.asin(two_b2 * c * tf.math.rsqrt(prod))
        nngp = nngp + self.c**2
        if values.shape[0] == 1 and not ntk_is_nngp:
            return nngp[None]
        factor = (self.a**2 * 2.0 * two_b2 / math.pi) * tf.math.rsqrt(prod - (two_b2 * c) ** 2)
        return tf.stack([nngp, values[-1] * factor])

    def _self(self, v):
        two_b2 = 2.0 * self.b**2
        return (self.a**2 * 2.0 / math.pi) * tf.asin(two_b2 * v / (1.0 + two_b2 * v)) + self.c**2

    def get_config(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "c": self.c}
