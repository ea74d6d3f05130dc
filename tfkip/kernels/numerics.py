"""Numerically safe elementary functions with gradients that stay finite.

The arc-cosine (ReLU) kernel is ``(sqrt(v1 v2 - c^2) + (pi - theta) c) / (2 pi)`` with
``theta = atan2(sqrt(v1 v2 - c^2), c)``. On the self-kernel diagonal ``v1 v2 - c^2 = 0``
where ``sqrt`` has an infinite derivative, and for all-zero inputs without bias
``atan2(0, 0)`` has none. The functions here define the derivative there as 0, which is
the derivative of the smooth continuation (e.g. K(x, x) = |x|^2 / 2 for ReLU).
"""

from __future__ import annotations

import tensorflow as tf


@tf.custom_gradient
def safe_sqrt(x: tf.Tensor) -> tf.Tensor:
    """``sqrt(max(x, 0))`` whose gradient is 0 (not inf or NaN) where ``x <= 0``."""
    positive = x > 0
    root = tf.sqrt(tf.where(positive, x, tf.ones_like(x)))
    y = tf.where(positive, root, tf.zeros_like(x))

    def grad(upstream):
        return tf.where(positive, upstream * 0.5 / root, tf.zeros_like(x))

    return y, grad


def _atan_float32(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``atan2(y, x)`` for ``y >= 0`` in float32 from vectorisable ops (~2 ulp).

    XLA on CPU lowers ``atan2`` to a scalar libm call (~9 ns per entry here), which
    dominates pooled-kernel ReLU layers; this range-reduced Cephes ``atanf`` polynomial
    runs at the speed of a few multiply-adds.
    """
    ax = tf.abs(x)
    big = tf.maximum(y, ax)
    small = tf.minimum(y, ax)
    t = small / tf.where(big > 0, big, tf.ones_like(big))  # in [0, 1]
    reduce = t > 0.41421356237309503  # tan(pi/8): fold onto [-0.414, 0.414]
    t = tf.where(reduce, (t - 1.0) / (t + 1.0), t)
    z = t * t
    poly = ((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z
    atan = (poly - 3.33329491539e-1) * z * t + t
    atan = tf.where(reduce, atan + 0.7853981633974483, atan)  # now atan(small / big)
    atan = tf.where(y > ax, 1.5707963267948966 - atan, atan)  # angle in [0, pi/2]
    return tf.where(x < 0, 3.141592653589793 - atan, atan)


@tf.custom_gradient
def angle(s: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
    """The angle ``atan2(s, c)`` in ``[0, pi]`` for ``s >= 0``, gradient 0 at the origin.

    Float32 uses a fast polynomial (`_atan_float32`); float64 uses ``tf.math.atan2``.
    The gradient is the exact ``(c ds - s dc) / (s^2 + c^2)`` in both.
    """
    theta = _atan_float32(s, c) if s.dtype == tf.float32 else tf.math.atan2(s, c)

    def grad(upstream):
        norm2 = s * s + c * c
        nonzero = norm2 > 0
        inv = tf.where(nonzero, 1.0 / tf.where(nonzero, norm2, tf.ones_like(norm2)), 0.0)
        return upstream * c * inv, -upstream * s * inv

    return theta, grad
