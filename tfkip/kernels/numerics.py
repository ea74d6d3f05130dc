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


@tf.custom_gradient
def safe_atan2(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``atan2(y, x)`` whose gradient is 0 at the origin instead of NaN."""
    theta = tf.math.atan2(y, x)

    def grad(upstream):
        norm2 = x * x + y * y
        nonzero = norm2 > 0
        inv = tf.where(nonzero, 1.0 / tf.where(nonzero, norm2, tf.ones_like(norm2)), 0.0)
        return upstream * x * inv, -upstream * y * inv

    return theta, grad
