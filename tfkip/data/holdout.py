"""A class-balanced validation split held out of a train split, deterministic in the seed.

``validation_split(labels, size, seed)`` returns ``(validation, rest)``: ``size / K``
indices of every class ``k`` for validation, and every other index, in the original
order, for KIP's targets (and the support's initial draw). The draw uses its own random
stream, ``np.random.Generator(PCG64(SeedSequence([seed, VALIDATION_STREAM])))``, so it
never coincides with the support initialisation's ``PCG64(seed)``, and ``size = 0``
leaves the split untouched (``rest`` is every index).
"""

from __future__ import annotations

import numpy as np

from tfkip.data.sampling import _check_int_labels, _check_range, _check_seed

__all__ = ["VALIDATION_STREAM", "validation_split"]

VALIDATION_STREAM = 0x7661_6C69_6461_7465  # "validate": the validation draw's stream


def validation_split(
    labels: np.ndarray, size: int, seed: int, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced ``(validation, rest)`` int64 indices into ``labels``.

    Args:
      labels: int class ids ``(N,)``.
      size: validation images in all, a multiple of ``K`` (0: no validation).
      seed: the run's seed.
      num_classes: ``K``; default ``max(labels) + 1``.

    Returns:
      ``validation`` ``(size,)`` class-major (class 0's ``size / K`` indices, in draw
      order, then class 1's, ...) and ``rest`` ``(N - size,)`` ascending; together they
      are a partition of ``range(N)``.

    Raises:
      ValueError: ``size`` is negative, not a multiple of ``K``, or leaves a class with
        no target image.
    """
    labels = _check_int_labels(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    _check_range(labels, num_classes)
    if isinstance(size, bool) or int(size) != size or size < 0 or size % num_classes:
        raise ValueError(
            f"validation_size must be a multiple of the number of classes ({num_classes}) "
            f">= 0, so that every class gives as many images. Received: validation_size={size!r}"
        )
    everything = np.arange(labels.size, dtype=np.int64)
    if size == 0:
        return np.zeros(0, np.int64), everything
    per_class = int(size) // num_classes
    rng = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([_check_seed(seed), VALIDATION_STREAM]))
    )
    chosen = []
    for c in range(num_classes):
        (idx,) = np.nonzero(labels == c)
        if idx.size <= per_class:
            raise ValueError(
                f"Class {c} has {idx.size} train images: holding out {per_class} of them for "
                f"validation would leave {idx.size - per_class} for the targets. Received: "
                f"validation_size={size}"
            )
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    validation = np.concatenate(chosen).astype(np.int64)
    keep = np.ones(labels.size, bool)
    keep[validation] = False
    return validation, everything[keep]
