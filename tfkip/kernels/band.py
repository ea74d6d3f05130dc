"""The BAND layout: covariances of position pairs within a window of relative offsets.

A pooled network read out by Flatten never needs ``K(p, q)`` of positions far apart.
Flatten reads ``K(p, p)``. A convolution of stride s moves both positions by the same
offset, ``A(K)(P, Q) = sum_d K(s P + d, s Q + d)``, so an output offset ``D = Q - P`` reads
the input offset ``s D``. A pooling window of size w and stride s sums
``K(s P + a, s Q + b)`` over ``0 <= a, b < w``: input offsets ``s D + b - a``. Walking back
from the readout (`tfkip.kernels.layer.Layer.input_band`), every layer therefore needs
only the offsets ``|q - p| <= r`` per axis, for a radius r: for the paper-2 ConvNet at
28x28, r = 7 at the 28x28 layers, 15 x 15 = 225 offsets per position instead of 784.

BAND stores ``B[..., i, j, h, w] = K((h, w), (h + i - r_h, w + j - r_w))``, of shape
``(..., 2 r_h + 1, 2 r_w + 1, H, W)``, and 0 where the second position lies outside the
image (`mask`). The offsets are the outer axes: a neighbourhood (`windows`) is then a stack
of contiguous shifted copies, and the elementwise passes run along the image rows. In it

* a convolution is a window sum over the two position axes alone, each offset on its own
  (``B_out[D, P] = sum_d B[s D, s P + d - lo]``), then `mask`;
* pooling is ``B_out[D, P] = sum_{a, b} B[s D + b - a, s P + a - lo]`` (`pool`), then `mask`;
* a nonlinearity reads the variances at P and, through `windows`, at P + D; a zero
  variance outside the image keeps those entries 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfkip.kernels import spatial

Radius = tuple[int, int]


def radius_of(x: tf.Tensor) -> Radius:
    """The radius ``(r_h, r_w)`` of a BAND tensor ``(..., 2 r_h + 1, 2 r_w + 1, H, W)``."""
    return (x.shape[-4] - 1) // 2, (x.shape[-3] - 1) // 2


def entries(image_shape, radius: Radius) -> int:
    """Entries of one BAND covariance of images ``(H, W)``: ``H W (2 r_h + 1) (2 r_w + 1)``."""
    (h, w), (rh, rw) = image_shape, radius
    return h * w * (2 * rh + 1) * (2 * rw + 1)


def windows(x: tf.Tensor, radius: Radius) -> tf.Tensor:
    """``(..., H, W) -> (..., 2 r_h + 1, 2 r_w + 1, H, W)``: every position's neighbourhood,
    ``y[..., i, j, h, w] = x[..., h + i - r_h, w + j - r_w]`` (0 outside the image).

    Two stacks of shifted copies of the zero-padded ``x`` (rows, then columns: ``2 r + 1``
    slices each, contiguous blocks); autodiff gives the adjoint (a sum of pads).
    """
    (rh, rw), (h, w) = radius, x.shape[-2:]
    padded = tf.pad(x, [[0, 0]] * (x.shape.rank - 2) + [[rh, rh], [rw, rw]])
    rows = tf.stack([padded[..., i : i + h, :] for i in range(2 * rh + 1)], axis=-3)
    return tf.stack([rows[..., j : j + w] for j in range(2 * rw + 1)], axis=-3)


def position_variances(v1: tf.Tensor, v2: tf.Tensor, radius: Radius):
    """The variances a BAND entry ``B[.., D, P]`` pairs: ``v1`` at P (``(..., H, W) ->
    (..., 1, 1, H, W)``, broadcast over the offsets) and ``v2`` at ``P + D`` (`windows`,
    0 outside the image)."""
    return v1[..., None, None, :, :], windows(v2, radius)


def mask(image_shape, radius: Radius, dtype) -> tf.Tensor:
    """``(2 r_h + 1, 2 r_w + 1, H, W)``: 1 where the offset position is inside the image."""

    def inside(length, r):  # (2 r + 1, length): is position + offset in [0, length)?
        second = np.arange(-r, r + 1)[:, None] + np.arange(length)[None]
        return (second >= 0) & (second < length)

    (h, w), (rh, rw) = image_shape, radius
    both = inside(h, rh)[:, None, :, None] & inside(w, rw)[None, :, None, :]
    return tf.constant(both.astype(dtype.as_numpy_dtype))


def center(x: tf.Tensor) -> tf.Tensor:
    """``(..., Bh, Bw, H, W) -> (..., H, W)``: the zero-offset entries ``K(p, p)``."""
    rh, rw = radius_of(x)
    return x[..., rh, rw, :, :]


def center_indicator(radius: Radius) -> tf.Tensor:
    """``(2 r_h + 1, 2 r_w + 1, 1, 1)`` bool, true at the zero offset (p == q)."""
    rh, rw = radius
    eye = np.zeros((2 * rh + 1, 2 * rw + 1, 1, 1), bool)
    eye[rh, rw] = True
    return tf.constant(eye)


def conv_offsets(x: tf.Tensor, strides) -> tf.Tensor:
    """The offsets a stride-s convolution's output reads: ``s D`` for ``|D| <= r_in // s``."""
    if tuple(strides) == (1, 1):
        return x
    (rh, rw), (sh, sw) = radius_of(x), strides
    oh, ow = rh // sh, rw // sw
    return x[..., rh - sh * oh : rh + sh * oh + 1 : sh, rw - sw * ow : rw + sw * ow + 1 : sw, :, :]


def pool(x: tf.Tensor, windows_, strides, geometry) -> tf.Tensor:
    """``B_out[D, P] = sum_{a, b < w} B[s D + b - a, s P + a - lo]`` per axis (unnormalised).

    ``x`` is ``(..., Bh, Bw, H, W)`` of radius ``r_in``; the output radius is
    ``r_out = (r_in - w + 1) // s`` (the radius `Layer.input_band` planned is exactly
    ``s r_out + w - 1``). ``geometry`` holds ``(out_len, lo, hi)`` per axis. One pass per
    axis (the h pair, then the w pair), each a sum of ``w^2`` strided slices of the
    position-padded tensor; its adjoint is autodiff's, or `_block_pool_adjoint` for
    non-overlapping windows. Entries whose offset position lies outside the image are not
    zeroed here (`mask`).
    """
    rank = x.shape.rank
    for k, (w, s, (out_len, lo, hi)) in enumerate(zip(windows_, strides, geometry)):
        axes = (rank - 4 + k, rank - 2 + k)
        if w == s and (lo, hi) == (0, 0):
            x = _block_pool(x, axes, s, out_len)
        else:
            x = _pool_axis(x, axes, w, s, (out_len, lo, hi))
    return x


def _pool_axis(x, axes, w, s, geometry):
    """One axis pair of `pool`: ``sum_{a, b < w} x[s D + b - a + c, s P + a - lo]``."""
    rank, (offset, position), (out_len, lo, hi) = x.shape.rank, axes, geometry
    r_in = (x.shape[offset] - 1) // 2
    r_out = (r_in - w + 1) // s
    paddings = [[0, 0]] * rank
    paddings[position] = [lo, hi]
    padded = tf.pad(x, paddings) if (lo, hi) != (0, 0) else x
    total = None
    for a in range(w):
        for b in range(w):
            index = [slice(None)] * rank
            index[position] = slice(a, a + s * (out_len - 1) + 1, s)
            start = r_in - s * r_out + b - a
            index[offset] = slice(start, start + 2 * s * r_out + 1, s)
            term = padded[tuple(index)]
            total = term if total is None else total + term
    return total


def _block_pool(x, axes, s, out_len):
    """`_pool_axis` for non-overlapping windows (w = s, no padding), with its adjoint.

    Every input entry ``(i, s P + a)`` lies in at most one window: with
    ``t = i + a - (s - 1)``, the output entry ``(t // s, P)`` when ``0 <= t`` and
    ``t // s <= 2 r_out``. So the adjoint is a gather-free scatter: per phase ``a`` the
    cotangent repeated s times along the offsets and shifted by ``s - 1 - a``, the phases
    interleaved along the positions, zeros for the positions no window reaches. One fused
    pass, where autodiff of the ``s^2`` slices leaves ``s^2`` padded tensors.
    """
    offset, position = axes
    length = x.shape[position]

    @tf.custom_gradient
    def fn(x):
        def grad(dy):
            rank = dy.shape.rank
            # Repeat every offset s times: (.., 2 r_out + 1, ..) -> (.., s (2 r_out + 1), ..).
            rep = tf.repeat(dy, s, axis=offset)
            phases = []
            for a in range(s):
                paddings = [[0, 0]] * rank
                paddings[offset] = [s - 1 - a, a]
                phases.append(tf.pad(rep, paddings))
            return spatial.merge_blocks(tf.stack(phases, axis=position + 1), position, length)

        return _pool_axis(x, axes, s, s, (out_len, 0, 0)), grad

    return fn(x)
