"""Computing a large kernel matrix in tiles, with memory bounded by one tile.

``tiled(compute, x1, x2, gets, batch_size)`` pads ``x1`` (``x2``) with zero rows to a
multiple of the tile size ``b1`` (``b2``), loops over the ``T1 * T2`` tile pairs in a
``tf.while_loop`` (`tf.map_fn` with one iteration in flight), and reassembles the
``(n1, n2)`` result. Each tile is wrapped in `tf.recompute_grad`, so the backward pass
keeps only the tile inputs and recomputes the tile's intermediates: peak memory is that of
one ``b1 x b2`` tile (for pooled networks, ``b1 b2 (HW)^2`` entries per covariance) in
both directions, independent of ``n1 n2``. Zero padding rows are harmless (finite values
and gradients, see `numerics`) and sliced away.

When ``x2`` is None the tiles on the block diagonal pair identical inputs; the mask of
identical pairs is passed to each tile so that the self-kernel diagonal stays exact.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def _check_batch_size(batch_size) -> tuple[int, int]:
    sizes = (batch_size, batch_size) if isinstance(batch_size, int) else tuple(batch_size)
    if len(sizes) != 2 or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(
            "batch_size must be a positive int or a pair of them. "
            f"Received: batch_size={batch_size!r}"
        )
    return sizes


def _pad_rows(x: tf.Tensor, tiles: int, size: int) -> tf.Tensor:
    n = x.shape[0]
    if n is None:
        raise ValueError("Tiled kernels need a static number of inputs (x.shape[0]).")
    pad = tiles * size - n
    if pad:
        x = tf.pad(x, [[0, pad]] + [[0, 0]] * (x.shape.rank - 1))
    return tf.reshape(x, [tiles, size] + x.shape[1:].as_list())


def tiled(
    compute: Callable, x1: tf.Tensor, x2: tf.Tensor | None, gets: tuple[str, ...], batch_size
) -> dict[str, tf.Tensor]:
    """Tiled version of ``compute(x1, x2, gets, same=None) -> {get: (n1, n2)}``."""
    b1, b2 = _check_batch_size(batch_size)
    n1 = x1.shape[0]
    same_inputs = x2 is None
    if same_inputs:
        b1 = b2 = min(b1, b2)  # square tiles so that diagonal tiles pair identical rows
        x2 = x1
    n2 = x2.shape[0]
    b1, b2 = min(b1, n1), min(b2, n2)
    if same_inputs:
        b1 = b2 = min(b1, b2)
    t1, t2 = -(-n1 // b1), -(-n2 // b2)
    if t1 == 1 and t2 == 1:
        return compute(x1, None if same_inputs else x2, gets)
    x1t, x2t = _pad_rows(x1, t1, b1), _pad_rows(x2, t2, b2)
    eye = tf.cast(tf.eye(b1), tf.bool) if same_inputs else None

    @tf.recompute_grad
    def tile(a, b, on_diagonal):
        same = None
        if same_inputs:
            same = tf.logical_and(eye, on_diagonal > 0)
        out = compute(a, b, gets, same=same)
        return tuple(out[g] for g in gets)

    def body(t):
        i, j = t // t2, t % t2
        on_diagonal = tf.cast(tf.equal(i, j), x1.dtype)
        return tile(tf.gather(x1t, i), tf.gather(x2t, j), on_diagonal)

    spec = tuple(tf.TensorSpec([b1, b2], x1.dtype) for _ in gets)
    tiles = tf.map_fn(body, tf.range(t1 * t2), fn_output_signature=spec, parallel_iterations=1)
    out = {}
    for g, value in zip(gets, tiles):
        value = tf.reshape(value, [t1, t2, b1, b2])
        value = tf.reshape(tf.transpose(value, [0, 2, 1, 3]), [t1 * b1, t2 * b2])
        out[g] = value[:n1, :n2]
    return out
