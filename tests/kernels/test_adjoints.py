"""The hand-written reverse passes against autodiff of their plain forwards (float64).

`spatial.window_sum` (conv and pooling window sums, any geometry) and ReLU's fused
``(nngp, ntk)`` map have analytic adjoints; here each is compared with TensorFlow's
autodiff of the same forward written without a custom gradient, for random cotangents.
Finite differences of whole networks are in test_gradients.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfkip.kernels import nonlinear, spatial


def _vjp(fn, inputs, cotangents):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = fn(*inputs)
    return tape.gradient(outputs, inputs, output_gradients=cotangents)


GEOMETRIES = [
    # (length, window, stride, padding)
    (6, 3, 1, "SAME"),
    (7, 3, 2, "SAME"),
    (7, 3, 2, "VALID"),
    (8, 2, 2, "VALID"),
    (5, 2, 1, "SAME"),
    (9, 4, 3, "VALID"),
    (4, 5, 1, "SAME"),
    (6, 3, 1, "VALID"),
]


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_window_sum_adjoint_equals_autodiff(geometry, paired):
    length, window, stride, padding = geometry
    out, lo, hi = spatial.window_geometry(length, window, stride, padding)
    # Two axis groups: (-4, -2) and (-3, -1) for a FULL covariance (paired, as Conv), or
    # one axis each (as pooling); the second group uses a different geometry.
    out2, lo2, hi2 = spatial.window_geometry(length - 1, 2, 1, "SAME")
    if paired:
        shape = (2, length, length - 1, length, length - 1)
        groups = [((-4, -2), window, stride, (lo, hi), out), ((-3, -1), 2, 1, (lo2, hi2), out2)]
    else:
        shape = (2, 3, length, length - 1)
        groups = [((-2,), window, stride, (lo, hi), out), ((-1,), 2, 1, (lo2, hi2), out2)]
    rng = np.random.default_rng([length, window, stride, int(paired)])
    x = tf.constant(rng.standard_normal(shape))
    y = spatial.window_sum(x, groups)
    # One-axis groups run as a chain of one-axis reduce-windows: the same sum.
    np.testing.assert_allclose(y.numpy(), spatial._padded_slices_sum(x, groups).numpy(), 1e-13)
    dy = tf.constant(rng.standard_normal(y.shape))
    (analytic,) = _vjp(lambda x: spatial.window_sum(x, groups), [x], dy)
    (autodiff,) = _vjp(lambda x: spatial._padded_slices_sum(x, groups), [x], dy)
    np.testing.assert_allclose(analytic.numpy(), autodiff.numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("lengths", [(8, 9), (7, 6)])
def test_non_overlapping_window_sum_is_a_block_sum(lengths):
    """Window == stride, no padding (2x2/2 pooling): reshape-and-sum, broadcast adjoint."""
    groups = []
    for axis, (length, window) in zip((-2, -1), zip(lengths, (2, 3))):
        out, lo, hi = spatial.window_geometry(length, window, window, "VALID")
        groups.append(((axis,), window, window, (lo, hi), out))
    rng = np.random.default_rng(lengths)
    x = tf.constant(rng.standard_normal((2, 3, *lengths)))
    y = spatial.window_sum(x, groups)
    np.testing.assert_allclose(y.numpy(), spatial._padded_slices_sum(x, groups).numpy(), 1e-14)
    dy = tf.constant(rng.standard_normal(y.shape))
    (analytic,) = _vjp(lambda x: spatial.window_sum(x, groups), [x], dy)
    (autodiff,) = _vjp(lambda x: spatial._padded_slices_sum(x, groups), [x], dy)
    np.testing.assert_allclose(analytic.numpy(), autodiff.numpy(), rtol=1e-13, atol=1e-13)


def _plain_relu(c, ntk, v1, v2):
    """The textbook arc-cosine map (Cho & Saul), differentiated by autodiff."""
    s = tf.sqrt(v1 * v2 - c * c)
    theta = tf.math.atan2(s, c)
    return (s + (np.pi - theta) * c) / (2 * np.pi), ntk * (np.pi - theta) / (2 * np.pi)


def _relu_inputs(with_same, seed=3):
    rng = np.random.default_rng(seed)
    n1, n2, p = 3, 4, 5
    a = rng.standard_normal((n1, p, 6))
    b = a[: n2 % n1 + 1].repeat(2, 0)[:n2] if with_same else rng.standard_normal((n2, p, 6))
    c = tf.constant(np.einsum("ipk,jpk->ijp", a, b))
    v1 = tf.constant(np.einsum("ipk,ipk->ip", a, a)[:, None])
    v2 = tf.constant(np.einsum("ipk,ipk->ip", b, b)[None])
    ntk = tf.constant(rng.uniform(0.5, 2.0, (n1, n2, p)))
    same = None
    if with_same:
        same = tf.constant(np.array([[np.array_equal(x, y) for y in b] for x in a])[:, :, None])
    cot = tf.constant(rng.standard_normal((2, n1, n2, p)))
    return c, ntk, v1, v2, same, cot


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("with_ntk", [True, False])
@pytest.mark.parametrize("with_same", [False, True])
def test_relu_adjoint_equals_autodiff(with_same, with_ntk, recompute):
    c, ntk, v1, v2, same, cot = _relu_inputs(with_same)
    k = 2 if with_ntk else 1
    values = tf.stack([c, ntk])[:k]
    forward = nonlinear.relu_map(values, v1, v2, same)
    plain = tf.stack(_plain_relu(c, ntk, v1, v2))[:k]
    if with_same:  # the identical pairs: exactly v / 2 and Theta / 2
        mask = same.numpy() & np.ones(c.shape, bool)
        np.testing.assert_allclose(forward[0].numpy()[mask], 0.5 * c.numpy()[mask], rtol=1e-15)
    else:
        np.testing.assert_allclose(forward.numpy(), plain.numpy(), rtol=1e-13, atol=1e-13)
    analytic = _vjp(
        lambda *t: nonlinear.relu_map(*t, same, recompute=recompute), [values, v1, v2], cot[:k]
    )
    if with_same:  # autodiff of the plain forward is infinite there: finite is the check
        for got in analytic:
            assert np.all(np.isfinite(got.numpy()))
        return
    autodiff = _vjp(
        lambda values, v1, v2: tf.stack(_plain_relu(values[0], values[-1], v1, v2))[:k],
        [values, v1, v2],
        cot[:k],
    )
    for got, want in zip(analytic, autodiff):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("recompute", [False, True])
def test_relu_adjoint_with_the_ntk_equal_to_the_nngp(recompute):
    """``values = [c]`` with ``ntk_is_nngp`` (after a first affine layer): the forward is
    ``[K, c j0]`` and the adjoint sums both paths into ``c``, as autodiff of the plain map
    with ``Theta = c`` does."""
    c, _, v1, v2, _, cot = _relu_inputs(with_same=False)
    values = c[None]
    forward = nonlinear.relu_map(values, v1, v2, recompute=recompute, ntk_is_nngp=True)
    plain = tf.stack(_plain_relu(c, c, v1, v2))
    np.testing.assert_allclose(forward.numpy(), plain.numpy(), rtol=1e-13, atol=1e-13)
    analytic = _vjp(
        lambda *t: nonlinear.relu_map(*t, recompute=recompute, ntk_is_nngp=True),
        [values, v1, v2],
        cot,
    )
    autodiff = _vjp(
        lambda values, v1, v2: tf.stack(_plain_relu(values[0], values[0], v1, v2)),
        [values, v1, v2],
        cot,
    )
    for got, want in zip(analytic, autodiff):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)
