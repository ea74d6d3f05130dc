"""Batches of input pairs: the unordered pairs of a symmetric kernel, and gathering them.

Pooled networks hold ``(H W)^2`` covariance entries per input pair, so their kernels are
computed over explicit lists of pairs ``(rows[p], cols[p])``: ``K(x, x)`` from its
``n (n + 1) / 2`` unordered pairs, a KIP step's two kernels from one zipped list.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def gather_pairs(x, variances, rows, cols):
    """``(a, b, same, variances_a, variances_b)`` of the pairs ``(x[rows[p]], x[cols[p]])``:
    the inputs of `Network.compute_pairs`, ``same`` marking ``rows == cols``."""
    variances_a = [tf.gather(v, rows) for v in variances]
    variances_b = [tf.gather(v, cols) for v in variances]
    return tf.gather(x, rows), tf.gather(x, cols), tf.equal(rows, cols), variances_a, variances_b


def symmetric_pairs(n: int):
    """``(rows, cols, index)``: the ``n (n + 1) / 2`` pairs ``rows <= cols`` (int32) and the
    ``(n, n)`` position of each entry's pair in that list (``(i, j)`` and ``(j, i)`` share)."""
    rows, cols = np.triu_indices(n)
    index = np.zeros((n, n), np.int32)
    index[rows, cols] = np.arange(len(rows))
    index[cols, rows] = np.arange(len(rows))
    return rows.astype(np.int32), cols.astype(np.int32), index
