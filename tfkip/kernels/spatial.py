"""Window sums over spatial axes of covariance tensors (conv and pooling building blocks).

A stride-``s`` window of size ``f`` with padding ``(lo, hi)`` maps an axis of length L to
``out = (L + lo + hi - f) // s + 1`` positions; output position P sums input positions
``s P + d - lo`` for ``d = 0 .. f-1``, out-of-range terms being 0 (zero padding).

Convolution moves both positions of a covariance by the *same* offset
(``A(K)(p, q) = sum_d K(p + d, q + d)``), so its window sum runs over a *pair* of axes with
shared offsets (`paired_window_sum`); pooling averages each position's window
independently, one axis at a time. Both are written as a sum of ``f`` strided slices of a
padded tensor, which XLA fuses into one pass: O(f) work per output entry instead of the
O(f^2)-per-entry general convolution over the covariance.
"""

from __future__ import annotations

import itertools

import tensorflow as tf


def same_padding(length: int, window: int, stride: int) -> tuple[int, int, int]:
    """(out_len, pad_lo, pad_hi) of TensorFlow/XLA 'SAME' padding."""
    out = -(-length // stride)
    total = max((out - 1) * stride + window - length, 0)
    return out, total // 2, total - total // 2


def window_geometry(length: int, window: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(out_len, pad_lo, pad_hi) for 'SAME' or 'VALID' padding."""
    if padding == "SAME":
        return same_padding(length, window, stride)
    if padding == "VALID":
        return (length - window) // stride + 1, 0, 0
    raise ValueError(f"padding must be 'SAME' or 'VALID'. Received: padding={padding!r}")


def paired_window_sum(
    x: tf.Tensor,
    axes: tuple[int, ...],
    window: int,
    stride: int,
    pad: tuple[int, int],
    out_len: int,
) -> tf.Tensor:
    """Sums ``window`` shifted copies of ``x`` moved by the same offset along all ``axes``.

    Args:
      x: tensor whose ``axes`` (negative indices) all have the same length L.
      axes: the axes that move together (one axis for pooling, two for convolution).
      window, stride, pad, out_len: the window geometry (see module docstring).

    Returns:
      ``x`` with each of ``axes`` of length ``out_len``:
      ``y[.., P, .., Q, ..] = sum_d x[.., sP + d - lo, .., sQ + d - lo, ..]``.
    """
    rank = x.shape.rank
    axes = tuple(a % rank for a in axes)
    lo, hi = pad
    if lo or hi:
        paddings = [[0, 0]] * rank
        for a in axes:
            paddings[a] = [lo, hi]
        x = tf.pad(x, paddings)
    total = None
    for d in range(window):
        index = [slice(None)] * rank
        for a in axes:
            index[a] = slice(d, d + stride * (out_len - 1) + 1, stride)
        term = x[tuple(index)]
        total = term if total is None else total + term
    return total


def window_sum(x: tf.Tensor, groups) -> tf.Tensor:
    """`paired_window_sum` over several axis groups at once, in a single fused pass.

    ``groups`` is a sequence of ``(axes, window, stride, (lo, hi), out_len)``; the result
    sums, over every combination of one offset per group, a strided slice of ``x``
    zero-padded once on all axes. One pass over memory instead of one per group (for a
    3x3 convolution: 9 slices of one padded tensor instead of two passes of 3).
    """
    rank = x.shape.rank
    paddings = [[0, 0]] * rank
    for axes, _, _, (lo, hi), _ in groups:
        for a in axes:
            paddings[a % rank] = [lo, hi]
    if any(p != [0, 0] for p in paddings):
        x = tf.pad(x, paddings)
    total = None
    for offsets in itertools.product(*(range(g[1]) for g in groups)):
        index = [slice(None)] * rank
        for (axes, _, stride, _, out_len), d in zip(groups, offsets):
            for a in axes:
                index[a % rank] = slice(d, d + stride * (out_len - 1) + 1, stride)
        term = x[tuple(index)]
        total = term if total is None else total + term
    return total


def full_to_diag(x: tf.Tensor) -> tf.Tensor:
    """``(..., H, W, H, W) -> (..., H, W)``: the same-position entries K(p, p)."""
    h, w = x.shape[-2], x.shape[-1]
    lead = tf.shape(x)[:-4]
    flat = tf.reshape(x, tf.concat([lead, [h * w, h * w]], 0))
    return tf.reshape(tf.linalg.diag_part(flat), tf.concat([lead, [h, w]], 0))


def positions_eye(spatial: tuple[int, int], dtype=tf.bool) -> tf.Tensor:
    """``(H, W, H, W)`` indicator of p == q."""
    h, w = spatial
    return tf.cast(tf.reshape(tf.eye(h * w), (h, w, h, w)), dtype)
