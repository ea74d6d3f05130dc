"""Deterministic, resumable class-balanced sampling.

* :func:`class_balanced_indices` draws the initial support set in NumPy (KIP.ipynb's
  ``class_balanced_sample``, but with an explicit ``Generator(PCG64(seed))``).
* :class:`TargetSampler` draws the target batch of each KIP step in-graph and statelessly:
  the batch of step ``t`` is a pure function of ``(seed, t)``, so a resumed or
  multi-process run sees the same batches without saving any RNG state.
* :func:`target_dataset` wraps the sampler in an infinite ``tf.data.Dataset``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfkip.data.preprocess import centered_one_hot

__all__ = [
    "TargetSampler",
    "class_balanced_indices",
    "support_size_to_per_class",
    "target_dataset",
]

_MAX_SEED = 2**63 - 1
_LAST_STEP = 2**62


def class_balanced_indices(
    labels: np.ndarray, per_class: int, seed: int, num_classes: int | None = None
) -> np.ndarray:
    """Draws ``per_class`` indices of every class without replacement.

    Args:
        labels: int class ids, shape ``(N,)``.
        per_class: images per class, ``>= 1``.
        seed: seed of ``np.random.Generator(np.random.PCG64(seed))``.
        num_classes: ``K``; default ``max(labels) + 1``.

    Returns:
        int64 indices of shape ``(K * per_class,)``, class-major: the ``per_class``
        indices of class 0 (in draw order), then class 1, and so on.

    >>> class_balanced_indices(np.array([0, 1, 0, 1]), per_class=1, seed=0).shape
    (2,)
    """
    labels = _check_int_labels(labels)
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per_class must be an integer >= 1. Received: per_class={per_class}.")
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    _check_range(labels, num_classes)
    rng = np.random.Generator(np.random.PCG64(_check_seed(seed)))
    chosen = []
    for c in range(num_classes):
        (idx,) = np.nonzero(labels == c)
        if idx.size < per_class:
            raise ValueError(
                f"Class {c} has only {idx.size} images but per_class={per_class} were requested."
            )
        chosen.append(rng.choice(idx, size=int(per_class), replace=False))
    return np.concatenate(chosen).astype(np.int64)


def support_size_to_per_class(support_size: int, num_classes: int) -> int:
    """``support_size / num_classes``, which must be a positive whole number."""
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(
            f"num_classes must be a positive integer. Received: num_classes={num_classes}."
        )
    if (
        int(support_size) != support_size
        or support_size < num_classes
        or support_size % num_classes
    ):
        raise ValueError(
            f"support_size must be a positive multiple of num_classes={num_classes} so every "
            f"class gets the same number of images. Received: support_size={support_size}."
        )
    return int(support_size) // int(num_classes)


class TargetSampler:
    """Stateless class-balanced target-batch indices, usable inside XLA.

    For step ``t``, every class ``c`` gets ``k = batch_size / K`` distinct indices drawn
    uniformly without replacement: each of its ``n_c`` images receives a random int32 key
    from ``tf.random.stateless_uniform(seed=(seed, t), alg="philox")`` (padding slots get
    the minimum key) and the ``k`` largest keys win (``tf.math.top_k``).

    The result is class-major: positions ``[c*k, (c+1)*k)`` hold class ``c``'s indices,
    in random order within the class. It depends only on ``(labels, seed, t)``: the same
    step gives the same batch in any process, so resuming needs no RNG state.

    Args:
        labels: int class ids of the target pool, shape ``(N,)``.
        num_classes: ``K``.
        batch_size: target batch size, a multiple of ``K``.
        seed: int in ``[0, 2**63)``.

    >>> sampler = TargetSampler(np.array([0, 1, 0, 1, 1]), 2, batch_size=2, seed=0)
    >>> sampler.indices(tf.constant(3, tf.int64)).shape
    TensorShape([2])
    """

    def __init__(self, labels: np.ndarray, num_classes: int, batch_size: int, seed: int) -> None:
        labels = _check_int_labels(labels)
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive integer. Received: num_classes={num_classes}."
            )
        _check_range(labels, int(num_classes))
        if int(batch_size) != batch_size or batch_size < num_classes or batch_size % num_classes:
            raise ValueError(
                f"batch_size must be a positive multiple of num_classes={num_classes} for "
                f"class-balanced batches. Received: batch_size={batch_size}."
            )
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.per_class = self.batch_size // self.num_classes
        self.seed = _check_seed(seed)
        counts = np.bincount(labels, minlength=self.num_classes)
        for c, count in enumerate(counts):
            if count < self.per_class:
                raise ValueError(
                    f"Class {c} has only {count} images but batch_size={batch_size} needs "
                    f"{self.per_class} per class."
                )
        max_count = int(counts.max())
        table = np.zeros((self.num_classes, max_count), dtype=np.int64)
        for c in range(self.num_classes):
            (idx,) = np.nonzero(labels == c)
            table[c, : idx.size] = idx
        self.counts = counts.astype(np.int64)
        self._table = tf.constant(table)
        self._valid = tf.constant(np.arange(max_count)[np.newaxis, :] < counts[:, np.newaxis])

    def indices(self, step: tf.Tensor | int) -> tf.Tensor:
        """int64 indices into the pool for target batch ``step``, shape ``(batch_size,)``."""
        step = tf.cast(step, tf.int64)
        rng_seed = tf.stack([tf.constant(self.seed, tf.int64), step])
        keys = tf.random.stateless_uniform(
            self._valid.shape, seed=rng_seed, minval=None, maxval=None, dtype=tf.int32, alg="philox"
        )
        keys = tf.where(self._valid, keys, tf.int32.min)
        _, slots = tf.math.top_k(keys, k=self.per_class, sorted=True)
        idx = tf.gather(self._table, slots, batch_dims=1)
        return tf.reshape(idx, [self.batch_size])


def target_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    num_classes: int | None = None,
) -> tf.data.Dataset:
    """Infinite dataset of class-balanced target batches, resumable at any step.

    Element ``k`` is ``(x[i], y_onehot[i])`` with ``i = TargetSampler.indices(start_step + k)``,
    so ``target_dataset(..., start_step=s)`` continues exactly where a run stopped at ``s``.

    Args:
        x: preprocessed float images ``(N, H, W, C)``.
        y: int class ids ``(N,)`` (turned into centred one-hot of ``x``'s dtype) or label
            rows ``(N, K)`` (e.g. centred one-hot; classes by argmax; used as given).
        batch_size: a multiple of ``K``.
        seed: sampler seed.
        start_step: step of the first element.
        num_classes: ``K`` for int ``y``; default ``max(y) + 1``.

    Returns:
        ``tf.data.Dataset`` of ``(x_batch (B, H, W, C), y_batch (B, K))`` with fully
        static shapes. The arrays are captured as in-memory tensors.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            "x must be preprocessed float images (N, H, W, C). "
            f"Received: shape={x.shape}, dtype={x.dtype}."
        )
    if y.ndim == 2:
        if num_classes is not None and num_classes != y.shape[1]:
            raise ValueError(
                f"num_classes={num_classes} disagrees with the label width. "
                f"Received: y.shape={y.shape}."
            )
        num_classes = int(y.shape[1])
        labels = np.argmax(y, axis=1).astype(np.int64)
        y_rows = y.astype(x.dtype)
    else:
        labels = _check_int_labels(y)
        num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
        y_rows = centered_one_hot(labels, num_classes, dtype=x.dtype)
    if x.shape[0] != labels.shape[0]:
        raise ValueError(
            f"x and y must have the same length. Received: x.shape={x.shape}, y.shape={y.shape}."
        )
    if int(start_step) != start_step or not 0 <= start_step < _LAST_STEP:
        raise ValueError(
            f"start_step must be an integer in [0, 2**62). Received: start_step={start_step}."
        )
    sampler = TargetSampler(labels, num_classes, batch_size, seed)
    x_t = tf.constant(x)
    y_t = tf.constant(y_rows)

    def batch(step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        idx = sampler.indices(step)
        return tf.gather(x_t, idx), tf.gather(y_t, idx)

    ds = tf.data.Dataset.range(int(start_step), _LAST_STEP)
    ds = ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_int_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise ValueError(
            f"labels must be a non-empty integer array of shape (N,). Received: "
            f"shape={labels.shape}, dtype={labels.dtype}."
        )
    return labels.astype(np.int64)


def _check_range(labels: np.ndarray, num_classes: int) -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"labels must lie in [0, {num_classes}). Received out-of-range labels: "
            f"{np.unique(labels[bad])[:10].tolist()}."
        )


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**63). Received: seed={seed}.")
    return int(seed)
