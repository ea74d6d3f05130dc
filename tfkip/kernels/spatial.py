"""Window sums over spatial axes of covariance tensors (conv and pooling building blocks).

A stride-``s`` window of size ``f`` with padding ``(lo, hi)`` maps an axis of length L to
``out = (L + lo + hi - f) // s + 1`` positions; output position P sums input positions
``s P + d - lo`` for ``d = 0 .. f-1``, out-of-range terms being 0 (zero padding).

Convolution moves both positions of a covariance by the *same* offset
(``A(K)(p, q) = sum_d K(p + d, q + d)``), so its window sum runs over a *pair* of axes with
shared offsets; pooling averages each position's window independently (one axis per
group). Both are `window_sum`: a sum of strided slices of a padded tensor, which XLA fuses
into one pass, O(f) work per output entry instead of the O(f^2)-per-entry general
convolution over the covariance, with an analytic adjoint of the same form.
"""

from __future__ import annotations

import itertools
import math

import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla as tfxla


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


def _padded_slices_sum(x: tf.Tensor, groups, barrier: bool = False) -> tf.Tensor:
    """The forward of `window_sum`, differentiable by autodiff unless ``barrier``.

    With ``barrier`` the padded tensor goes through an XLA optimisation barrier (which
    has no gradient): without it XLA folds the centre tap's slice of the padded tensor
    back into the unpadded one and computes the producer (the previous nonlinearity, or
    its adjoint) twice, into both; with it, once (20-25% of a pooled ConvNet's step).
    """
    rank = x.shape.rank
    paddings = [[0, 0]] * rank
    for axes, _, _, (lo, hi), _ in groups:
        for a in axes:
            paddings[a % rank] = [lo, hi]
    if any(p != [0, 0] for p in paddings):
        x = tf.pad(x, paddings)
        if barrier:
            x = tfxla.optimization_barrier(x)[0]
    total = None
    for offsets in itertools.product(*(range(g[1]) for g in groups)):
        index = [slice(None)] * rank
        for (axes, _, stride, _, out_len), d in zip(groups, offsets):
            for a in axes:
                index[a % rank] = slice(d, d + stride * (out_len - 1) + 1, stride)
        term = x[tuple(index)]
        total = term if total is None else total + term
    return total


def _separable_sum(x: tf.Tensor, groups) -> tf.Tensor:
    """`window_sum` as one pass per axis group, outermost group first.

    The taps of different groups are independent (a window is a product of per-group
    offsets), so summing group by group gives the same sum with ``sum f`` instead of
    ``prod f`` slices (3 + 3 instead of 9 for a 3x3 convolution). The order matters on
    CPU: padding the innermost (contiguous) axes inside the fusion that computes the
    producer (a nonlinearity) makes XLA emit its bounds checks per element, which keeps
    that loop scalar. Outermost first, the expensive producer is padded along outer axes
    only, and the inner axes are padded in the cheap loop of the first group's sum; each
    pass pads through an optimisation barrier, so it reads a tensor computed once
    (see `_padded_slices_sum`).
    """
    rank = x.shape.rank
    for group in sorted(groups, key=lambda g: min(a % rank for a in g[0])):
        x = _padded_slices_sum(x, [group], barrier=True)
    return x


def _block_adjoint(dy: tf.Tensor, groups, in_lengths) -> tf.Tensor:
    """The adjoint of `window_sum` for non-overlapping windows (window == stride, no padding).

    Every input entry lies in at most one window, so its cotangent is that window's
    (an upsampling: each axis ``n -> (n, s) -> n s``, broadcast, then zeros for the
    ``L - n s`` trailing entries no window reaches). A broadcast, which XLA fuses into
    the consumer for free, instead of a windowed pass.
    """
    rank = dy.shape.rank
    for ((axis,), _, stride, _, _), length in sorted(
        zip(groups, in_lengths), key=lambda g: g[0][0][0] % rank
    ):
        a = axis % rank
        expanded = tf.expand_dims(dy, a + 1)
        shape = tf.concat([tf.shape(dy)[: a + 1], [stride], tf.shape(dy)[a + 1 :]], 0)
        dy = merge_blocks(tf.broadcast_to(expanded, shape), a, length)
    return dy


def merge_blocks(x: tf.Tensor, axis: int, length: int) -> tf.Tensor:
    """``(.., n, s, ..) -> (.., length, ..)``: axes ``axis`` and ``axis + 1`` merged into
    positions ``s P + a``, then zeros for the ``length - n s`` trailing positions that no
    block reaches."""
    rank = x.shape.rank
    n, s = x.shape[axis], x.shape[axis + 1]
    merged = tf.concat([tf.shape(x)[:axis], [n * s], tf.shape(x)[axis + 2 :]], 0)
    x = tf.reshape(x, merged)
    if length > n * s:
        paddings = [[0, 0]] * (rank - 1)
        paddings[axis] = [0, length - n * s]
        x = tf.pad(x, paddings)
    return x


def _dilate(x: tf.Tensor, axis: int, stride: int) -> tf.Tensor:
    """Inserts ``stride - 1`` zeros between the entries of ``axis``: length s (L - 1) + 1."""
    if stride == 1:
        return x
    rank = x.shape.rank
    axis %= rank
    length = x.shape[axis]
    zeros = tf.zeros_like(x)
    stacked = tf.stack([x] + [zeros] * (stride - 1), axis=axis + 1)
    shape = tf.concat([tf.shape(x)[:axis], [length * stride], tf.shape(x)[axis + 1 :]], axis=0)
    dilated = tf.reshape(stacked, shape)
    index = [slice(None)] * rank
    index[axis] = slice(0, stride * (length - 1) + 1)
    return dilated[tuple(index)]


def adjoint_groups(groups, in_lengths) -> tuple[list, list]:
    """The window geometry of `window_sum`'s adjoint, and the crops it needs.

    For one axis group of window f, stride s, padding (lo, hi), input length L and
    output length n, ``y[P] = sum_d x[sP + d - lo]`` has the adjoint
    ``xbar[i] = sum_d ybar_s[i + lo - d]`` where ``ybar_s`` is ``ybar`` dilated by s
    (length m = s (n - 1) + 1, zeros between entries). That is again a stride-1 window
    sum of f taps, over ``ybar_s`` zero-padded by ``(f - 1 - lo, L - m + lo)``, with the
    taps mirrored (d -> f - 1 - d). A negative high padding means trailing entries of
    ``ybar_s`` that reach no input: they are cropped first.

    Returns ``(groups of the adjoint window sum, per-group crop length of ybar_s)``.
    """
    adjoint, crops = [], []
    for (axes, window, stride, (lo, _), out_len), length in zip(groups, in_lengths):
        dilated = stride * (out_len - 1) + 1
        low, high = window - 1 - lo, length - dilated + lo
        crops.append(dilated + min(high, 0))
        adjoint.append((axes, window, 1, (low, max(high, 0)), length))
    return adjoint, crops


def window_sum(x: tf.Tensor, groups) -> tf.Tensor:
    """Shared-offset window sums over several axis groups at once, in one fused pass.

    ``groups`` is a sequence of ``(axes, window, stride, (lo, hi), out_len)``. Along each
    group the axes move together (one axis for pooling, a pair for a convolution's
    covariance); with ``x`` zero-padded by (lo, hi) on those axes,

        y[.., P, .., Q, ..] = sum over one offset d per group of x[.., sP + d, .., sQ + d, ..]

    i.e. the sum, over every combination of offsets, of one strided slice of the padded
    ``x``: one pass over memory (for a 3x3 convolution, 9 slices of one padded tensor).
    One-axis groups with overlapping windows (per-position DIAG convolutions) are one XLA
    reduce-window instead: a fusion boundary, so the producer (the previous layer's
    nonlinearity) is computed once into memory rather than once per tap, or twice (once
    padded, once for the centre tap that XLA simplifies to the unpadded tensor).

    The gradient is analytic (`adjoint_groups`): the adjoint of a window sum is a window
    sum of the (stride-dilated) cotangent with mirrored taps, one pass instead of one
    full-size pad per slice (what autodiff of the slices emits). It is computed as

    * a broadcast (`_block_adjoint`) for non-overlapping windows (2x2/2 pooling): each
      input entry lies in one window and gets its cotangent;
    * one XLA reduce-window (`_reduce_window_adjoint`) for one-axis groups (per-position
      DIAG convolutions, overlapping pooling): the stride dilation is its base dilation,
      and, being a fusion boundary, it reads a cotangent computed once into memory
      instead of recomputing the nonlinearity's adjoint for every tap;
    * this same function over the dilated cotangent for paired groups (FULL convolutions).
    """
    groups = tuple(groups)
    rank = x.shape.rank
    in_lengths = [x.shape[g[0][0]] for g in groups]

    one_axis = all(len(g[0]) == 1 for g in groups)
    blocks = one_axis and all(g[1] == g[2] and g[3] == (0, 0) for g in groups)

    @tf.custom_gradient
    def fn(x):
        def grad(dy):
            if blocks:
                return _block_adjoint(dy, groups, in_lengths)
            if one_axis:
                return _reduce_window_adjoint(dy, groups, in_lengths)
            adjoint, crops = adjoint_groups(groups, in_lengths)
            for (axes, _, stride, _, _), crop in zip(groups, crops):
                for a in axes:
                    dy = _dilate(dy, a, stride)
                    index = [slice(None)] * rank
                    index[a % rank] = slice(0, crop)
                    dy = dy[tuple(index)]
            return window_sum(dy, adjoint)

        if one_axis and not blocks:
            return _reduce_window_forward(x, groups), grad
        if blocks:
            return _padded_slices_sum(x, groups, barrier=True), grad
        return _separable_sum(x, groups), grad

    return fn(x)


def _reduce_window_forward(x, groups):
    """`window_sum` of one-axis groups as one XLA reduce-window (padding and strides its own)."""
    return _reduce_window_sum(
        x,
        {
            axis: (f, stride, 1, (lo, hi), out_len)
            for (axis,), f, stride, (lo, hi), out_len in groups
        },
    )


def _reduce_window_sum(x, axes: dict) -> tf.Tensor:
    """An all-ones XLA reduce-window (a sum) over the given axes, with its static shape.

    ``axes`` maps an axis to ``(window, stride, base_dilation, (pad_lo, pad_hi), out_len)``;
    the other axes are untouched. XLA's shape inference loses static dimensions of this
    op, so the known output shape is set back (a dynamic batch axis stays dynamic).

    An all-ones window is separable, so a sum over several axes is a chain of one-axis
    reduce-windows, innermost axis first: XLA on CPU emits a reduce-window as scalar loops
    over the whole window, so a 3x3 window costs about three times two 3-tap passes. Each
    pass stays a fusion boundary that reads its producer once.
    """
    rank = x.shape.rank
    if len(axes) > 1:
        for axis in sorted(axes, key=lambda a: a % rank, reverse=True):
            x = _reduce_window_sum(x, {axis: axes[axis]})
        return x
    window, strides, base, padding = [1] * rank, [1] * rank, [1] * rank, [(0, 0)] * rank
    shape = x.shape.as_list()
    for axis, (f, stride, dilation, pads, out_len) in axes.items():
        a = axis % rank
        window[a], strides[a], base[a], padding[a], shape[a] = f, stride, dilation, pads, out_len
    y = tfxla.reduce_window(
        x,
        tf.constant(0, x.dtype),
        _adder(x.dtype),
        window,
        window_strides=strides,
        base_dilations=base,
        padding=padding,
    )
    y.set_shape(shape)
    return y


def _add(a, b):
    return a + b


_ADDERS = {}


def _adder(dtype):
    """The scalar ``a + b`` computation that XLA's reduce-window takes, one per dtype."""
    if dtype not in _ADDERS:
        spec = tf.TensorSpec([], dtype)
        _ADDERS[dtype] = tf.function(_add, input_signature=[spec, spec], autograph=False)
    return _ADDERS[dtype].get_concrete_function()


def _reduce_window_adjoint(dy, groups, in_lengths):
    """The adjoint of `window_sum` for one-axis groups, as one XLA reduce-window.

    Per axis (window f, stride s, low padding lo, input length L, output length n):
    ``xbar[i] = sum_d ybar_s[i + lo - d]``, ``ybar_s`` being ``ybar`` dilated by s (the
    reduce-window's base dilation) and zero-padded by ``(f - 1 - lo, L + lo - s (n - 1) - 1)``
    (trailing cotangent entries that reach no input cropped first); with all-ones
    windows the mirrored taps are the same taps.
    """
    rank = dy.shape.rank
    axes = {}
    for ((axis,), f, stride, (lo, _), out_len), length in zip(groups, in_lengths):
        a = axis % rank
        dilated = stride * (out_len - 1) + 1
        low, high = f - 1 - lo, length - dilated + lo
        if high < 0:  # trailing cotangent entries that reach no input
            index = [slice(None)] * rank
            index[a] = slice(0, -(-(dilated + high) // stride))
            dy = dy[tuple(index)]
            dilated = stride * (dy.shape[a] - 1) + 1
            high = length + f - 1 - low - dilated
        axes[a] = (f, 1, stride, (low, high), length)
    return _reduce_window_sum(dy, axes)


def sum_trailing(x: tf.Tensor, axes: int, scale: float = 1.0) -> tf.Tensor:
    """``scale`` times the sum over the last ``axes`` axes, as a matrix-vector product.

    XLA on CPU splits long reductions into a reduce-window and a reduce, which cannot
    take the producer with them and so materialise it; a product with a vector of
    ``scale`` reads the producer once at matmul speed (its gradient is a broadcast).
    """
    size = math.prod(x.shape[-axes:])
    lead = tf.shape(x)[:-axes]
    weights = tf.fill([size, 1], tf.constant(scale, x.dtype))
    return tf.reshape(tf.matmul(tf.reshape(x, [-1, size]), weights), lead)


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
