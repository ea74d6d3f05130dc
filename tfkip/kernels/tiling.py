"""Computing a large kernel matrix in tiles, with memory bounded by one tile.

``tiled(compute, x1, x2, gets, batch_size)`` pads ``x1`` (``x2``) with zero rows to a
multiple of the tile size ``b1`` (``b2``), loops over the ``T1 * T2`` tile pairs, column
tile by column tile, in two nested ``tf.while_loop``s (`tf.map_fn` with one iteration in
flight; `_column_tiles` says why columns outside), and reassembles the ``(n1, n2)``
result. Each tile is wrapped in `tf.recompute_grad`, so the backward pass
keeps only the tile inputs and recomputes the tile's intermediates: peak memory is that of
one ``b1 x b2`` tile (for pooled networks, ``b1 b2 (HW)^2`` entries per covariance) in
both directions, independent of ``n1 n2``. Zero padding rows are harmless (finite values
and gradients: a zero variance gives a zero correlation, see `nonlinear`) and sliced away.

When ``x2`` is None, image networks are tiled over the ``n (n + 1) / 2`` unordered pairs
(`tiled_symmetric`, chunks of ``b1 b2`` pairs), or under a BAND plan over the square
tiles on and above the block diagonal (`tiled_upper_blocks`); flat networks use all square
tiles. Tiles on the block diagonal get the mask of identical pairs, so that the
self-kernel diagonal stays exact either way.

`plan_tiles` chooses the tile size itself when the caller gives none (the default of
``kernel_fn``): it bounds the bytes of one tile's covariances, forward and backward, by a
memory budget (`DEFAULT_MEMORY_BUDGET`, or ``kernel_fn(..., memory_budget=...)``), and
leaves kernels that fit untiled. Flat and per-position (DIAG) networks almost always fit;
pooled (FULL layout) networks hold ``(H W)^2`` entries per input pair and get tiled.
"""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

from tfkip.kernels import band
from tfkip.kernels.inputs import check_input_shape
from tfkip.kernels.kernel import Layout
from tfkip.kernels.pairs import gather_pairs, symmetric_pairs
from tfkip.kernels.pooling import Flatten

DEFAULT_MEMORY_BUDGET = 2**28
"""Bytes that one tile's covariance tensors may take (forward and backward), 256 MiB: on
the preset ConvNet the 32x32 step takes the same time as with larger tiles at far less
peak memory (benchmarks/kip_step.py ``--kernel-memory-mib``; docs/kernels.md)."""

LIVE_COPIES = 20
"""Full-size tensors per input pair alive at the peak of a backward pass through per-position
(DIAG) or flat covariances (nngp and ntk of the widest layer and of its neighbours, their
cotangents, padded copies for the window sums and a nonlinearity's intermediates): the
factor from one pair's largest covariance to its working memory. Measured from XLA's buffer
assignment (``preallocated-temp``) of whole KIP steps."""

FULL_LIVE_COPIES = 11
"""The same factor for position-by-position (FULL) covariances, the ones pooled networks
hold: their ReLU keeps only its inputs for the reverse pass (`nonlinear.relu_map`); measured
from XLA's buffer assignment of the preset ConvNet's steps and forward passes. The process
also holds TensorFlow itself and XLA's compilation, which no budget bounds."""


FORWARD_FULL_LIVE_COPIES = 6
"""`FULL_LIVE_COPIES` for a forward pass that no gradient follows (evaluation, Label Solve,
``forward_only=True``): a pass holds its input and its output (padded for a window sum)
and nothing is kept for a reverse pass; measured from XLA's buffer assignment of the
preset ConvNet's forward, with a margin."""


BAND_LIVE_COPIES = 36
"""`FULL_LIVE_COPIES` for BAND covariances (`tfkip.kernels.band`). Their reverse pass holds
more copies of its (smaller) tensors, among them each pair's neighbourhood variances and
their cotangents. 33 per pair measured from XLA's buffer assignment of the ConvNet's KIP
step at 28x28 in zipped pairs (the difference between tiles of 16 and 32 pairs), with a
margin; cross tiles share the neighbourhood variances of a column and hold fewer, not
measured. Under a BAND plan `BAND_TILE_BYTES` usually caps a tile before the budget does."""

FORWARD_BAND_LIVE_COPIES = 7
"""`FORWARD_FULL_LIVE_COPIES` for BAND covariances: 6 per pair measured as above for the
forward pass alone, with a margin."""


BAND_TILE_BYTES = 2**23
"""Bytes of K and Theta at the largest layer that one tile holds at most under a BAND
plan (`band_tile_pairs`), however large the memory budget: 8 MiB, 5 pairs at 28x28 in
float32 (4 on an even number of threads), 4 at 32x32. A tile passes over its covariances
once per layer and pass; tiles this small keep them in the caches between passes, larger
ones stream them from memory (docs/performance.md has the measured sweep of tile sizes)."""


def pair_entries(network, per_example_shape) -> int:
    """Largest number of covariance entries one input pair needs at any layer."""
    return max(entries for entries, _ in _layer_entries(network, per_example_shape))


def pair_bytes(network, per_example_shape, itemsize: int, forward_only: bool = False) -> int:
    """Working memory of one input pair: the largest covariance times its live copies
    (`FULL_LIVE_COPIES` / `BAND_LIVE_COPIES` for a FULL / BAND layout, their ``FORWARD_``
    counterparts with ``forward_only``, `LIVE_COPIES` otherwise), in bytes."""
    copies = {
        Layout.FULL: FORWARD_FULL_LIVE_COPIES if forward_only else FULL_LIVE_COPIES,
        Layout.BAND: FORWARD_BAND_LIVE_COPIES if forward_only else BAND_LIVE_COPIES,
    }
    return itemsize * max(
        entries * copies.get(layout, LIVE_COPIES)
        for entries, layout in _layer_entries(network, per_example_shape)
    )


def _layer_entries(network, per_example_shape) -> list[tuple[int, Layout]]:
    """``(entries per pair, layout)`` at the input of every layer."""
    shape = check_input_shape(per_example_shape)
    if isinstance(network.layers[0], Flatten):
        return [(1, Layout.FLAT)]  # the input kernel is computed flat (`Network._input_kernel`)
    out = [(1, Layout.FLAT)]
    for layer, (layout, radius) in zip(network.layers, network.layout_plan(per_example_shape)):
        positions = math.prod(shape.spatial) if shape.spatial else 1
        if layout == Layout.FULL:
            out.append((positions * positions, layout))
        elif layout == Layout.BAND:
            out.append((band.entries(shape.spatial, radius), layout))
        elif layout == Layout.DIAG:
            out.append((positions, layout))
        shape = layer.output_shape(shape)
    return out


def check_memory_budget(memory_budget):
    """``memory_budget`` (None or a positive int of bytes), or a ValueError naming it."""
    if memory_budget is None:
        return None
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(
            "memory_budget must be a positive number of bytes. "
            f"Received: memory_budget={memory_budget!r}"
        )
    return memory_budget


def plan_tiles(
    network, x1, x2, memory_budget: int | None = None, forward_only: bool = False
) -> tuple[int, int] | None:
    """Tile sizes ``(b1, b2)`` keeping one tile under the memory budget; None if untiled.

    One pair costs `pair_bytes` (of a forward pass alone with ``forward_only``: larger
    tiles, fewer loop iterations; a gradient through such tiles may pass the budget). If
    all pairs (``n1 n2``, or the ``n (n + 1) / 2`` unordered ones that ``K(x, x)`` of an
    image network computes) fit in ``memory_budget`` (default `DEFAULT_MEMORY_BUDGET`) the
    kernel is computed in one piece. Otherwise a tile holds ``P = budget // pair_bytes(...)``
    pairs (at least 1): whole columns of ``x2`` first (``b2 = min(n2, P)``,
    ``b1 = P // b2``), each shrunk to the smallest size that needs as many tiles
    (`_balanced`: no padding rows computed for nothing); square tiles of ``floor(sqrt(P))``
    when ``x2`` is None (the diagonal tiles must pair identical rows).

    Under a BAND plan a tile holds at most `band_tile_pairs` pairs (so the kernel is tiled
    whenever it needs more), and all rows of ``x1`` come first (``b1 = min(n1, P)``,
    ``b2 = P // b1``; a balanced ``b1`` is rounded up to a multiple of `cpu_threads` when
    that still fits in ``P``): a BAND nonlinearity reads every ``x2`` input's neighbourhood
    variances (``(2 r + 1)^2`` shifted copies of its variance map, and in the reverse pass
    their adjoint), shared by a tile's ``b1`` rows, while ``x1``'s side is a broadcast.
    """
    budget = check_memory_budget(memory_budget)
    budget = DEFAULT_MEMORY_BUDGET if budget is None else budget
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    if n1 is None or n2 is None or n1 == 0 or n2 == 0:
        return None
    one_pair = pair_bytes(network, x1.shape[1:], x1.dtype.size, forward_only)
    pairs_needed = n1 * (n1 + 1) // 2 if network.uses_unordered_pairs(x1, x2) else n1 * n2
    pairs = max(1, budget // one_pair)
    band_plan = uses_band(network, x1)
    if band_plan:
        pairs = min(pairs, band_tile_pairs(network, x1.shape[1:], x1.dtype.size))
    if pairs_needed <= pairs:
        return None
    if x2 is None:
        b = max(1, min(n1, math.isqrt(pairs)))
        return b, b
    if band_plan:
        b1 = _balanced(n1, min(n1, pairs))  # all rows first: see the docstring
        threads = cpu_threads()
        whole = -(-b1 // threads) * threads  # rows split evenly across the threads
        if b1 < n1 and whole <= pairs:
            b1 = whole
        return b1, _balanced(n2, max(1, min(n2, pairs // b1)))
    b2 = _balanced(n2, min(n2, pairs))
    return _balanced(n1, max(1, min(n1, pairs // b2))), b2


def band_tile_pairs(network, per_example_shape, itemsize: int) -> int:
    """Most pairs in one tile under a BAND plan: `BAND_TILE_BYTES` of K and Theta at the
    largest layer, rounded down to a multiple of `cpu_threads` when at least one multiple
    fits (at least one pair). XLA on CPU splits each pass of a tile across the threads
    along the tile's outer axis, its rows (`plan_tiles`): 5 rows on 2 threads take as long
    as 6."""
    pairs = max(1, BAND_TILE_BYTES // (2 * itemsize * pair_entries(network, per_example_shape)))
    threads = cpu_threads()
    return pairs - pairs % threads if pairs >= threads else pairs


def cpu_threads() -> int:
    """Threads that XLA on CPU splits one loop across: TensorFlow's intra-op pool (the
    machine's CPUs unless configured)."""
    return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1


def plan_pair_tiles(
    network, x, pairs: int, memory_budget: int | None = None, forward_only: bool = False
) -> int | None:
    """Pairs per tile for ``pairs`` zipped input pairs of ``x`` (`Network.kip_kernel_fn`)
    under the memory budget, as `plan_tiles` counts them; None if all fit in one piece."""
    budget = check_memory_budget(memory_budget)
    budget = DEFAULT_MEMORY_BUDGET if budget is None else budget
    one_pair = pair_bytes(network, x.shape[1:], x.dtype.size, forward_only)
    if pairs * one_pair <= budget:
        return None
    return _balanced(pairs, max(1, budget // one_pair))


def _balanced(n: int, size: int) -> int:
    """The smallest tile size that covers ``n`` rows in as few tiles as ``size`` does: tiles
    of 8 over 10 rows pad them to 16, tiles of 5 compute no padding."""
    return -(-n // -(-n // size))


def check_batch_size(batch_size) -> tuple[int, int]:
    if isinstance(batch_size, int):
        sizes = (batch_size, batch_size)
    elif isinstance(batch_size, (tuple, list)):
        sizes = tuple(batch_size)
    else:
        sizes = ()
    if len(sizes) != 2 or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes
    ):
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


def _row_tiles(x: tf.Tensor, size: int) -> tuple[tf.Tensor, int]:
    tiles = -(-x.shape[0] // size)
    return _pad_rows(x, tiles, size), tiles


def _untile(value: tf.Tensor, n: int) -> tf.Tensor:
    """``(T, b, ...) -> (n, ...)``."""
    shape = value.shape.as_list()
    return tf.reshape(value, [shape[0] * shape[1]] + shape[2:])[:n]


def tiled_self_variances(network, x: tf.Tensor, size: int) -> list[tf.Tensor]:
    """`Network.self_variances` of ``x`` in row tiles of ``size`` (bounded memory)."""
    if x.shape[0] <= size:
        return network.self_variances(x)
    xt, tiles = _row_tiles(x, size)
    probe = network.self_variances(xt[0])  # shapes only; pruned from the graph
    spec = tuple(tf.TensorSpec(v.shape, v.dtype) for v in probe)
    fn = tf.recompute_grad(lambda a: tuple(network.self_variances(a)))
    out = tf.map_fn(fn, xt, fn_output_signature=spec, parallel_iterations=1)
    return [_untile(v, x.shape[0]) for v in out]


def tiled(
    network, x1: tf.Tensor, x2: tf.Tensor | None, gets: tuple[str, ...], batch_size, variances1=None
):
    """Tiled ``network.compute(x1, x2, gets) -> {get: (n1, n2)}``; ``variances1``:
    precomputed `Network.self_variances` of ``x1`` (for ``x2`` not None), else computed."""
    b1, b2 = check_batch_size(batch_size)
    same_inputs = x2 is None
    x2_ = x1 if same_inputs else x2
    n1, n2 = x1.shape[0], x2_.shape[0]
    if n1 is None or n2 is None:
        raise ValueError("Tiled kernels need a static number of inputs (x.shape[0]).")
    if n1 == 0 or n2 == 0:
        return network.compute(x1, x2, gets, variances1=variances1)
    b1, b2 = min(b1, n1), min(b2, n2)
    if same_inputs:
        b1 = b2 = min(b1, b2)  # square tiles: diagonal tiles pair identical rows
    if b1 >= n1 and b2 >= n2:
        return network.compute(x1, x2, gets, variances1=variances1)
    if same_inputs and network.layouts[0] != Layout.FLAT:
        if uses_band(network, x1):
            return tiled_upper_blocks(network, x1, gets, b1)
        return tiled_symmetric(network, x1, gets, b1 * b2, b1)
    var1 = tiled_self_variances(network, x1, b1) if variances1 is None else variances1
    var2 = var1 if same_inputs else tiled_self_variances(network, x2_, b2)
    inputs = (_row_tiles(x1, b1)[0], _row_tiles(x2_, b2)[0])
    tiles = _column_tiles(network, inputs, (var1, var2), gets, same_inputs)
    return {g: _block_matrix(value)[:n1, :n2] for g, value in zip(gets, tiles)}


def tiled_upper_blocks(network, x: tf.Tensor, gets, size: int):
    """``network.compute(x, None, gets)`` from the cross tiles ``(I, J)``, ``I <= J``, of
    square blocks of ``size`` rows: about ``n^2 / 2 + n size / 2`` pairs.

    The lower blocks are the transposed upper ones: entry ``(r, c)`` is read from the
    assembled upper blocks at ``(min(r, c), max(r, c))``, so the result is exactly
    symmetric, and the diagonal blocks carry the mask of identical pairs (exact diagonal).
    Used under BAND plans, where a cross tile builds each column input's neighbourhood
    variances once for all its rows (`plan_tiles`), unlike zipped pairs (`tiled_symmetric`).
    """
    n = x.shape[0]
    variances = tiled_self_variances(network, x, size)
    xt, t = _row_tiles(x, size)
    blocks = np.triu_indices(t)
    tiles = _block_tiles(network, xt, variances, gets, blocks)
    where = np.stack(blocks, axis=1).astype(np.int32)
    out = {}
    for g, value in zip(gets, tiles):
        value = _block_matrix(tf.scatter_nd(where, value, [t, t, size, size]))
        upper = tf.linalg.band_part(value, 0, -1)  # r <= c; the lower blocks are 0
        strictly_upper = upper - tf.linalg.band_part(value, 0, 0)
        out[g] = (upper + tf.transpose(strictly_upper))[:n, :n]  # sums with exact zeros
    return out


def _block_matrix(blocks: tf.Tensor) -> tf.Tensor:
    """``(T1, T2, b1, b2)`` tiles -> the ``(T1 b1, T2 b2)`` matrix they tile."""
    t1, t2, b1, b2 = blocks.shape
    return tf.reshape(tf.transpose(blocks, [0, 2, 1, 3]), [t1 * b1, t2 * b2])


def _tile_fn(network, gets, variance_count: int, eye):
    """The kernels of one tile, ``tile(a, b, on_diagonal, *variances1, *variances2)`` ->
    one ``(b1, b2)`` tensor per get, recomputed in the backward pass (`tf.recompute_grad`);
    ``eye``: the ``(b1, b1)`` mask of identical pairs for tiles of one input set, set on
    tiles with ``on_diagonal > 0`` (block-diagonal tiles), or None."""

    @tf.recompute_grad
    def tile(a, b, on_diagonal, *variances):
        same = None if eye is None else tf.logical_and(eye, on_diagonal > 0)
        out = network.compute(
            a,
            b,
            gets,
            same=same,
            variances1=list(variances[:variance_count]),
            variances2=list(variances[variance_count:]),
        )
        return tuple(out[g] for g in gets)

    return tile


def _column_tiles(network, inputs, variances, gets, same_inputs: bool):
    """``(T1, T2, b1, b2)`` per get: every tile ``(I, J)`` of the row tiles ``inputs =
    (x1t, x2t)`` (``(T1, b1, ...)``, ``(T2, b2, ...)``), column tile by column tile: an
    outer `tf.map_fn` over ``J`` around an inner one over ``I``. ``variances``: the self
    variances of the untiled inputs; ``same_inputs``: the inputs are one set, whose
    diagonal tiles (``I == J``) get the mask of identical pairs.

    Why columns outside: whatever a tile computes from its column inputs alone is the
    same for all ``T1`` tiles of a column, and XLA's loop-invariant code motion computes
    it once per column, before the inner loop. Under BAND that is the bulk of a tile's
    small passes: every nonlinearity reads the column inputs' variances in each position's
    neighbourhood (`band.windows`: ``(2 r + 1)^2`` shifted copies of each variance map,
    and of the input images for the first layer). The backward pass keeps only the tile
    inputs, as before.
    """
    (x1t, x2t), (var1, var2) = inputs, variances
    (t1, b1), (t2, b2) = x1t.shape[:2], x2t.shape[:2]
    var1t = [_row_tiles(v, b1)[0] for v in var1]
    var2t = [_row_tiles(v, b2)[0] for v in var2]
    eye = tf.cast(tf.eye(b1), tf.bool) if same_inputs else None
    tile = _tile_fn(network, gets, len(var1), eye)

    def column(j):
        b, column_variances = tf.gather(x2t, j), [tf.gather(v, j) for v in var2t]

        def row(i):
            on_diagonal = tf.cast(tf.equal(i, j), x1t.dtype)
            row_variances = [tf.gather(v, i) for v in var1t]
            return tile(tf.gather(x1t, i), b, on_diagonal, *row_variances, *column_variances)

        spec = tuple(tf.TensorSpec([b1, b2], x1t.dtype) for _ in gets)
        return tf.map_fn(row, tf.range(t1), fn_output_signature=spec, parallel_iterations=1)

    spec = tuple(tf.TensorSpec([t1, b1, b2], x1t.dtype) for _ in gets)
    out = tf.map_fn(column, tf.range(t2), fn_output_signature=spec, parallel_iterations=1)
    return tuple(tf.transpose(value, [1, 0, 2, 3]) for value in out)


def _block_tiles(network, x_tiles, variances, gets, blocks):
    """``(T, b, b)`` per get: the tiles ``(blocks[0][k], blocks[1][k])`` of the row tiles
    ``x_tiles`` (``(T, b, ...)``) of one input set with itself, one `tf.map_fn` step each;
    ``variances``: the self variances of the untiled inputs. Tiles on the block diagonal
    get the mask of identical pairs."""
    size = x_tiles.shape[1]
    var_t = [_row_tiles(v, size)[0] for v in variances]
    rows, cols = (tf.constant(np.asarray(i, np.int32)) for i in blocks)
    tile = _tile_fn(network, gets, len(variances), tf.cast(tf.eye(size), tf.bool))

    def body(t):
        i, j = rows[t], cols[t]
        on_diagonal = tf.cast(tf.equal(i, j), x_tiles.dtype)
        row_variances, column_variances = (
            [tf.gather(v, i) for v in var_t],
            [tf.gather(v, j) for v in var_t],
        )
        a, b = tf.gather(x_tiles, i), tf.gather(x_tiles, j)
        return tile(a, b, on_diagonal, *row_variances, *column_variances)

    spec = tuple(tf.TensorSpec([size, size], x_tiles.dtype) for _ in gets)
    count = len(blocks[0])
    return tf.map_fn(body, tf.range(count), fn_output_signature=spec, parallel_iterations=1)


def uses_band(network, x: tf.Tensor) -> bool:
    """Whether ``network`` holds covariances of inputs shaped like ``x`` in BAND layout."""
    return any(layout == Layout.BAND for layout, _ in network.layout_plan(x.shape[1:]))


def tiled_symmetric(network, x: tf.Tensor, gets, pairs_per_tile: int, rows_per_tile: int):
    """``network.symmetric(x, gets)`` in tiles of ``pairs_per_tile`` unordered pairs: the
    ``n (n + 1) / 2`` pairs ``i <= j`` (`pairs.symmetric_pairs`) by `tiled_pairs`,
    gathered into the symmetric ``(n, n)`` result."""
    rows, cols, index = symmetric_pairs(x.shape[0])
    values = tiled_pairs(network, x, rows, cols, gets, pairs_per_tile, rows_per_tile)
    return {g: tf.gather(value, index) for g, value in values.items()}


def tiled_pairs(
    network, x: tf.Tensor, rows, cols, gets, pairs_per_tile: int, rows_per_tile: int, variances=None
):
    """``network._pairs(x, rows, cols, gets)`` (``{get: (P,)}``) in tiles of pairs.

    The ``P`` pairs ``(x[rows[p]], x[cols[p]])`` are padded with copies of the first pair
    to whole tiles of ``pairs_per_tile`` (`_balanced`), computed tile by tile (recomputed
    in the backward pass) and cut back to ``P``; the self variances of ``x`` are
    ``variances`` if given, else computed in row tiles of ``rows_per_tile``.
    """
    pairs_per_tile = _balanced(len(rows), pairs_per_tile)
    tiles = -(-len(rows) // pairs_per_tile)
    pad = tiles * pairs_per_tile - len(rows)
    rows_t = np.concatenate([rows, np.zeros(pad, np.int32)]).reshape(tiles, pairs_per_tile)
    cols_t = np.concatenate([cols, np.zeros(pad, np.int32)]).reshape(tiles, pairs_per_tile)
    if variances is None:
        variances = tiled_self_variances(network, x, rows_per_tile)
    k = len(variances)

    @tf.recompute_grad
    def tile(a, b, same, *v):  # same: 1.0 for identical pairs (a float: a tile input)
        out = network.compute_pairs(a, b, gets, same > 0, list(v[:k]), list(v[k:]))
        return tuple(out[g] for g in gets)

    def body(t):
        a, b, same, va, vb = gather_pairs(x, variances, tf.gather(rows_t, t), tf.gather(cols_t, t))
        return tile(a, b, tf.cast(same, x.dtype), *va, *vb)

    spec = tuple(tf.TensorSpec([pairs_per_tile], x.dtype) for _ in gets)
    values = tf.map_fn(body, tf.range(tiles), fn_output_signature=spec, parallel_iterations=1)
    return {g: tf.reshape(value, [-1])[: len(rows)] for g, value in zip(gets, values)}
