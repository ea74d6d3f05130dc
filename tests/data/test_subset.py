"""tfkip.data.subset.balanced_first: class balance, determinism, prefix closure."""

from __future__ import annotations

import numpy as np
import pytest

from tfkip.data.subset import balanced_first


def test_counts_per_class_differ_by_at_most_one_and_indices_are_first_of_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    idx = balanced_first(labels, 95)
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.sum() == 95 and counts.max() - counts.min() == 1
    for c in range(10):  # each class contributes its first images, in split order
        of_class = np.flatnonzero(labels == c)
        assert (idx[labels[idx] == c] == of_class[: counts[c]]).all()
    assert (np.diff(idx) > 0).all()


def test_prefix_closed_and_deterministic():
    labels = np.random.default_rng(1).integers(0, 3, 50)
    small, large = balanced_first(labels, 7), balanced_first(labels, 20)
    assert set(small) <= set(large)
    assert (balanced_first(labels, 20) == large).all()


def test_a_class_that_runs_out_gives_its_share_to_the_others():
    labels = np.array([0] * 10 + [1] * 2)
    idx = balanced_first(labels, 6)
    assert np.bincount(labels[idx]).tolist() == [4, 2]
    assert balanced_first(labels, 100).tolist() == list(range(12))


@pytest.mark.parametrize(
    "labels, n, match",
    [(np.zeros((2, 2), int), 1, "labels"), (np.zeros(3), 1, "labels"), (np.zeros(3, int), 0, "n=")],
)
def test_bad_input(labels, n, match):
    with pytest.raises(ValueError, match=match):
        balanced_first(labels, n)
