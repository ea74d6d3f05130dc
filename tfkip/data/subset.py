"""A deterministic class-balanced subset of a labelled split (quick evaluations).

`balanced_first` takes the first images of every class in turn: with ``K`` classes,
``n`` images hold ``n // K`` or ``n // K + 1`` of each class (classes that run out give
their share to the others), and the subset of ``n`` is a prefix-closed choice: it
contains the subset of any smaller ``n``. No randomness, so two runs of the same ``n``
evaluate the same images; the indices come back in the split's order.
"""

from __future__ import annotations

import numpy as np


def balanced_first(labels, n: int) -> np.ndarray:
    """Indices of ``n`` images of ``labels`` (``(N,)`` int class ids), class-balanced.

    Round ``r`` takes the ``r``-th image (in split order) of every class that has one,
    classes by increasing id; the first ``n`` images so taken are returned, sorted.
    ``n >= N`` returns every index.

    >>> balanced_first(np.array([0, 0, 0, 1, 1, 2]), 4).tolist()
    [0, 1, 3, 5]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "labels must be a 1-D array of integer class ids. "
            f"Received: labels.shape={labels.shape}, dtype={labels.dtype}"
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer. Received: n={n!r}")
    if n >= labels.shape[0]:
        return np.arange(labels.shape[0])
    # rank of every image within its class (0 for the first of its class, ...)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty_like(order)
    rank[order] = np.arange(labels.shape[0]) - starts
    # taken by rank first, then class id: a stable lexicographic order
    chosen = np.lexsort((labels, rank))[:n]
    return np.sort(chosen)
