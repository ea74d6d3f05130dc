"""The input layer of every kernel: validated inputs and their covariance.

A network's recursion starts from the input covariance ``<x_p, x'_q> / C`` of positions
``p, q`` (images, NHWC) or of whole vectors (flat inputs), in the layout the network
planned for its first layer (`tfkip.kernels.kernel.Layout`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfkip.kernels import band
from tfkip.kernels.kernel import Layout, Shape
from tfkip.kernels.spatial import sum_trailing


def covariance(a, b, mode: str, layout: Layout, spatial, radius=None) -> tf.Tensor:
    """Position-by-position inner products of ``(n, positions, features)`` arrays.

    ``mode`` 'self': of ``a`` with itself per example, 'cross': of every ``a`` with every
    ``b`` (``(n1, n2, ...)``), 'zipped': of ``a[p]`` with ``b[p]`` (``(P, 1, ...)``).
    FLAT gives no spatial axes, DIAG same-position products ``(H, W)``, FULL all pairs
    ``(H, W, H, W)``, BAND the pairs within ``radius`` ``(2 r_h + 1, 2 r_w + 1, H, W)``.
    """
    if mode == "self":
        b = a
    if layout == Layout.BAND:
        return _band_positions(a, b, mode, spatial, radius)
    if layout == Layout.FULL:
        if mode == "cross":
            return _outer_positions(a, b, *spatial)
        cov = tf.matmul(a, b, transpose_b=True)
        cov = tf.reshape(cov, [-1, *spatial, *spatial])
    elif mode == "cross" and layout == Layout.FLAT:
        return tf.matmul(a[:, 0], b[:, 0], transpose_b=True)
    elif mode == "cross":
        # A few input channels: a broadcast multiply-add, not a batched matmul over
        # positions (hundreds of tiny matmuls).
        cov = tf.reduce_sum(a[:, None] * b[None], axis=-1)
        return tf.reshape(cov, tf.concat([tf.shape(cov)[:2], list(spatial)], 0))
    else:
        cov = tf.reshape(_sum_features(a * b), [-1, *spatial])
    return cov[:, None] if mode == "zipped" else cov


def _sum_features(x: tf.Tensor) -> tf.Tensor:
    """Sum over the last axis; a long one as a product with ones (`sum_trailing`)."""
    return tf.reduce_sum(x, axis=-1) if x.shape[-1] <= 32 else sum_trailing(x, 1)


def _outer_positions(a, b, h, w):
    """``(n1, HW, C), (n2, HW, C) -> (n1, n2, H, W, H, W)`` of ``<a_p, b_q>``."""
    n1, n2 = tf.shape(a)[0], tf.shape(b)[0]
    c = a.shape[-1]
    prod = tf.matmul(tf.reshape(a, [-1, c]), tf.reshape(b, [-1, c]), transpose_b=True)
    prod = tf.reshape(prod, [n1, h * w, n2, h * w])
    return tf.reshape(tf.transpose(prod, [0, 2, 1, 3]), [n1, n2, h, w, h, w])


def _band_positions(a, b, mode, spatial, radius):
    """``<a_p, b_(p + d)>`` for ``|d| <= radius``: ``(n1, n2 | 1, Bh, Bw, H, W)`` (`band`),
    a sum over the features of ``a`` times the neighbourhoods of ``b`` (`band.windows`)."""
    h, w = spatial
    f = a.shape[-1]
    a = tf.transpose(tf.reshape(a, [-1, h, w, f]), [3, 0, 1, 2])[:, :, None, None]
    near = band.windows(tf.transpose(tf.reshape(b, [-1, h, w, f]), [3, 0, 1, 2]), radius)
    if mode == "cross":
        a, near = a[:, :, None], near[:, None]  # (F, n1, 1, ...) and (F, 1, n2, ...)
    cov = tf.reduce_sum(a * near, axis=0) if f > 1 else (a * near)[0]
    return cov[:, None] if mode == "zipped" else cov


def check_input_shape(per_example_shape) -> Shape:
    dims = [int(d) if d is not None else None for d in per_example_shape]
    if any(d is None for d in dims):
        raise ValueError(f"Inputs need a fully known per-example shape. Received: shape={dims}")
    if len(dims) == 1:
        return Shape((), dims[0])
    if len(dims) == 3:
        return Shape(tuple(dims[:2]), dims[2])
    raise ValueError(
        "Inputs must be flat vectors (n, d) or NHWC images (n, H, W, C). "
        f"Received: per-example shape {tuple(dims)}"
    )


def as_float_tensor(name: str, x) -> tf.Tensor:
    if not isinstance(x, (tf.Tensor, tf.Variable)):
        arr = np.asarray(x)
        if arr.dtype not in (np.float32, np.float64):
            raise ValueError(
                f"{name} must be float32 or float64. Received: {name}.dtype={arr.dtype}"
            )
        x = tf.convert_to_tensor(arr)
    elif x.dtype not in (tf.float32, tf.float64):
        raise ValueError(
            f"{name} must be float32 or float64. Received: {name}.dtype={x.dtype.name}"
        )
    if x.shape.rank is None or x.shape.rank < 2:
        raise ValueError(
            f"{name} must be a batch of examples of rank >= 2. Received: {name}.shape={x.shape}"
        )
    return tf.convert_to_tensor(x)
