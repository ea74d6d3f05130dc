"""Tests for tfkip.data.sampling: support draws, stateless target batches, tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from tfkip.data import (
    TargetSampler,
    centered_one_hot,
    class_balanced_indices,
    support_size_to_per_class,
    target_dataset,
)

# Unbalanced pool: class 0 has 7 images, class 1 has 12, class 2 has 5, interleaved.
LABELS = np.array([0, 1, 2] * 5 + [0, 1] * 2 + [1] * 5)


def test_class_balanced_indices_is_deterministic_and_class_major():
    a = class_balanced_indices(LABELS, per_class=3, seed=7)
    b = class_balanced_indices(LABELS, per_class=3, seed=7)
    c = class_balanced_indices(LABELS, per_class=3, seed=8)
    assert a.dtype == np.int64 and a.shape == (9,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(LABELS[a], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert len(set(a.tolist())) == 9
    # Whole classes can be drawn (without replacement means: all of them).
    full = class_balanced_indices(LABELS, per_class=5, seed=0)
    np.testing.assert_array_equal(np.sort(full[10:]), np.nonzero(LABELS == 2)[0])


def test_class_balanced_indices_errors():
    with pytest.raises(ValueError, match="per_class=0"):
        class_balanced_indices(LABELS, per_class=0, seed=0)
    with pytest.raises(ValueError, match="Class 2 has only 5 images but per_class=6"):
        class_balanced_indices(LABELS, per_class=6, seed=0)
    with pytest.raises(ValueError, match="Class 3 has only 0 images"):
        class_balanced_indices(LABELS, per_class=1, seed=0, num_classes=4)
    with pytest.raises(ValueError, match="seed=-1"):
        class_balanced_indices(LABELS, per_class=1, seed=-1)


def test_support_size_to_per_class():
    assert support_size_to_per_class(100, 10) == 10
    assert support_size_to_per_class(10, 10) == 1
    for bad in (0, 5, 105):
        with pytest.raises(ValueError, match=f"support_size={bad}"):
            support_size_to_per_class(bad, 10)


def _check_batch(idx, per_class):
    assert idx.shape == (3 * per_class,)
    assert len(set(idx.tolist())) == idx.size  # no duplicates
    np.testing.assert_array_equal(LABELS[idx], np.repeat([0, 1, 2], per_class))  # class-major


def test_target_sampler_is_a_function_of_seed_and_step():
    a = TargetSampler(LABELS, 3, batch_size=12, seed=5)
    b = TargetSampler(LABELS, 3, batch_size=12, seed=5)
    other = TargetSampler(LABELS, 3, batch_size=12, seed=6)
    step = tf.constant(41, tf.int64)
    ia = a.indices(step).numpy()
    assert ia.dtype == np.int64
    _check_batch(ia, 4)
    np.testing.assert_array_equal(ia, b.indices(step).numpy())
    np.testing.assert_array_equal(ia, a.indices(41).numpy())
    assert not np.array_equal(ia, a.indices(tf.constant(42, tf.int64)).numpy())
    assert not np.array_equal(ia, other.indices(step).numpy())


def test_target_sampler_covers_each_class_without_padding_leaks():
    sampler = TargetSampler(LABELS, 3, batch_size=9, seed=0)
    seen = set()
    for step in range(40):
        idx = sampler.indices(step).numpy()
        _check_batch(idx, 3)
        seen.update(idx.tolist())
    assert seen == set(range(LABELS.size))


def test_target_sampler_under_xla_matches_eager():
    sampler = TargetSampler(LABELS, 3, batch_size=15, seed=3)  # class 2 taken whole
    jitted = tf.function(sampler.indices, jit_compile=True)
    for step in (0, 1, 2**40 + 3):
        step = tf.constant(step, tf.int64)
        got = jitted(step).numpy()
        _check_batch(got, 5)
        np.testing.assert_array_equal(got, sampler.indices(step).numpy())


def test_target_sampler_errors():
    with pytest.raises(ValueError, match="batch_size=10"):
        TargetSampler(LABELS, 3, batch_size=10, seed=0)
    with pytest.raises(ValueError, match="Class 2 has only 5 images but batch_size=18 needs 6"):
        TargetSampler(LABELS, 3, batch_size=18, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 2\).*\[2\]"):
        TargetSampler(LABELS, 2, batch_size=4, seed=0)


def _pool():
    # Image i is filled with the value i, so a batch reveals which indices it drew.
    x = np.broadcast_to(
        np.arange(LABELS.size, dtype=np.float32)[:, None, None, None], (LABELS.size, 2, 2, 1)
    )
    return np.ascontiguousarray(x)


def test_target_dataset_static_shapes_and_contents():
    x = _pool()
    ds = target_dataset(x, LABELS, batch_size=6, seed=1)
    x_spec, y_spec = ds.element_spec
    assert x_spec.shape == (6, 2, 2, 1) and y_spec.shape == (6, 3)
    assert x_spec.dtype == tf.float32 and y_spec.dtype == tf.float32
    sampler = TargetSampler(LABELS, 3, batch_size=6, seed=1)
    for step, (xb, yb) in enumerate(ds.take(3)):
        idx = xb.numpy()[:, 0, 0, 0].astype(np.int64)
        np.testing.assert_array_equal(idx, sampler.indices(step).numpy())
        np.testing.assert_allclose(yb.numpy(), centered_one_hot(LABELS[idx], 3))


def test_target_dataset_resumes_at_start_step():
    x = _pool()
    full = [b[0].numpy() for b in target_dataset(x, LABELS, 6, seed=2).take(5)]
    resumed = [b[0].numpy() for b in target_dataset(x, LABELS, 6, seed=2, start_step=3).take(2)]
    np.testing.assert_array_equal(resumed[0], full[3])
    np.testing.assert_array_equal(resumed[1], full[4])
    assert not np.array_equal(full[0], full[1])


def test_target_dataset_accepts_label_rows():
    x = _pool().astype(np.float64)
    rows = centered_one_hot(LABELS, 3) * 2.0  # any label rows: used as given
    xb, yb = next(iter(target_dataset(x, rows, 3, seed=0)))
    idx = xb.numpy()[:, 0, 0, 0].astype(np.int64)
    assert yb.dtype == tf.float64
    np.testing.assert_allclose(yb.numpy(), rows[idx])


def test_target_dataset_errors():
    x = _pool()
    with pytest.raises(ValueError, match="dtype=uint8"):
        target_dataset(x.astype(np.uint8), LABELS, 6, seed=0)
    with pytest.raises(ValueError, match=r"y.shape=\(10,\)"):
        target_dataset(x, LABELS[:10], 6, seed=0)
    with pytest.raises(ValueError, match="start_step=-1"):
        target_dataset(x, LABELS, 6, seed=0, start_step=-1)
    with pytest.raises(ValueError, match="batch_size=7"):
        target_dataset(x, LABELS, 7, seed=0)
