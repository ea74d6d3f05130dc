"""Numerically safe elementary functions with gradients that stay finite.

The arc-cosine (ReLU) kernel is ``(sqrt(v1 v2 - c^2) + (pi - theta) c) / (2 pi)`` with
``theta = atan2(sqrt(v1 v2 - c^2), c)``. On the self-kernel diagonal ``v1 v2 - c^2 = 0``
where ``sqrt`` has an infinite derivative, and for all-zero inputs without bias
``atan2(0, 0)`` has none. The functions here define the derivative there as 0, which is
the derivative of the smooth continuation (e.g. K(x, x) = |x|^2 / 2 for ReLU).
"""

from __future__ import annotations

import tensorflow as tf


def safe_sqrt(x: tf.Tensor) -> tf.Tensor:
    """``sqrt(max(x, 0))`` whose gradient is 0 (not inf or NaN) where ``x <= 0``.

    Written with the "double where" so the forward pass stays one fusible expression
    (no custom-gradient barrier): the unselected branch sees a harmless ``sqrt(1)``.
    Scalar (broadcast) constants, never ``zeros_like``/``ones_like``: Grappler would
    materialise those as full-size constants in the graph.
    """
    positive = x > 0
    one, zero = tf.constant(1.0, x.dtype), tf.constant(0.0, x.dtype)
    return tf.where(positive, tf.sqrt(tf.where(positive, x, one)), zero)


def _atan_float32(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``atan2(y, x)`` for ``y >= 0`` in float32 from vectorisable ops (~2 ulp).

    XLA on CPU lowers ``atan2`` to a scalar libm call (~9 ns per entry here), which
    dominates pooled-kernel ReLU layers; this range-reduced Cephes ``atanf`` polynomial
    runs at the speed of a few multiply-adds, with a single division. At the origin it
    returns 0 with finite derivatives.
    """
    ax = tf.abs(x)
    big = tf.maximum(y, ax)
    small = tf.minimum(y, ax)
    # atan(small/big) on [0, pi/4]; above tan(pi/8) fold with (t - 1)/(t + 1), i.e.
    # (small - big)/(small + big), onto [-0.414, 0.414].
    reduce = small > 0.41421356237309503 * big
    numerator = tf.where(reduce, small - big, small)
    denominator = tf.where(reduce, small + big, big)
    t = numerator / tf.where(denominator > 0, denominator, tf.constant(1.0, x.dtype))
    z = t * t
    poly = ((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z
    atan = (poly - 3.33329491539e-1) * z * t + t
    atan = tf.where(reduce, atan + 0.7853981633974483, atan)  # now atan(small / big)
    atan = tf.where(y > ax, 1.5707963267948966 - atan, atan)  # angle in [0, pi/2]
    return tf.where(x < 0, 3.141592653589793 - atan, atan)


def angle(s: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
    """The angle ``atan2(s, c)`` in ``[0, pi]`` for ``s >= 0``, with finite gradients.

    Float32 uses a fast polynomial (`_atan_float32`, differentiated by autodiff, finite at
    the origin); float64 uses ``tf.math.atan2`` behind a double ``where`` so that
    ``s = c = 0`` (zero inputs without bias) gives 0 and a zero gradient.
    """
    if s.dtype == tf.float32:
        return _atan_float32(s, c)
    origin = tf.logical_and(tf.equal(s, 0), tf.equal(c, 0))
    theta = tf.math.atan2(s, tf.where(origin, tf.constant(1.0, c.dtype), c))
    return tf.where(origin, tf.constant(0.0, theta.dtype), theta)
