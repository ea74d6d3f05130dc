"""Gradients of ``kernel_fn`` w.r.t. both inputs: finite everywhere, equal to central finite
differences in float64 (every layer type and every preset), also on the self-kernel diagonal
(x2 None, where arccos has an infinite derivative), for all-zero images, for x2 == x1 passed
explicitly, and in tiles.

Finite differences are directional, ``(f(x + h v) - f(x - h v)) / 2h`` against ``<grad, v>``
for random directions and single coordinates ``v``. All perturbed inputs of one side are
stacked into one batch, so one ``kernel_fn`` call evaluates them all (kernel rows of different
inputs are independent; for x2 None the diagonal blocks are the perturbed self kernels).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures

from .helpers import (
    FLATTEN,
    GAP,
    RELU,
    build,
    conv,
    dense,
    erf,
    pool,
    randn,
    scalar_loss,
)

H = 1e-4
RTOL = 1e-5  # of |<g, v>| + |g|; the truncation error at h = 1e-4 is ~1e-8 here

FLAT = ((3, 5), (2, 5))


def _img(h, w, c):
    return ((3, h, w, c), (2, h, w, c))


# name -> (b_std -> network, (x1 shape, x2 shape)); together they cover every layer type.
CASES = {
    "dense": (lambda b: build([dense(W_std=1.3, b_std=b), dense(b_std=b)]), FLAT),
    "dense_relu": (
        lambda b: build([dense(b_std=b), RELU, dense(b_std=b), RELU, dense(b_std=b)]),
        FLAT,
    ),
    "dense_erf": (
        lambda b: build([dense(b_std=b), erf(2.0, 0.5, 0.3), dense(b_std=b), erf(), dense()]),
        FLAT,
    ),
    "flatten_fc": (lambda b: build([FLATTEN, dense(b_std=b), RELU, dense(b_std=b)]), _img(3, 4, 2)),
    "conv_same": (
        lambda b: build(
            [conv(b_std=b), RELU, conv((2, 2), b_std=b), RELU, FLATTEN, dense(b_std=b)]
        ),
        _img(5, 4, 2),
    ),
    "conv_valid_strided": (
        lambda b: build(
            [
                conv((3, 3), (2, 2), "VALID", b_std=b),
                RELU,
                conv((2, 3), (1, 2), "SAME", b_std=b),
                RELU,
                FLATTEN,
                dense(b_std=b),
            ]
        ),
        _img(7, 6, 2),
    ),
    "avgpool": (
        lambda b: build([conv(b_std=b), RELU, pool(), FLATTEN, dense(b_std=b)]),
        _img(4, 4, 2),
    ),
    "avgpool_same_then_conv": (
        lambda b: build(
            [
                conv(b_std=b),
                RELU,
                pool((3, 3), (1, 1), "SAME"),
                conv(b_std=b),
                RELU,
                FLATTEN,
                dense(b_std=b),
            ]
        ),
        _img(4, 3, 1),
    ),
    "strided_pooled": (
        lambda b: build(
            [
                conv((3, 3), (2, 2), "SAME", b_std=b),
                RELU,
                conv((2, 2), (1, 1), "VALID", b_std=b),
                RELU,
                pool((3, 3), (2, 2), "SAME"),
                RELU,
                GAP,
                dense(b_std=b),
            ]
        ),
        _img(7, 6, 1),
    ),
    "gap": (lambda b: build([conv(b_std=b), RELU, GAP, dense(b_std=b)]), _img(4, 4, 2)),
    "erf_pool": (
        lambda b: build([conv(b_std=b), erf(2.0, 0.5, 0.3), pool(), RELU, FLATTEN, dense(b_std=b)]),
        _img(4, 4, 2),
    ),
    "standard": (
        lambda b: build(
            [
                conv(b_std=b, parameterization="standard"),
                RELU,
                pool(),
                conv(b_std=b, parameterization="standard"),
                RELU,
                GAP,
                dense(b_std=b, parameterization="standard"),
            ]
        ),
        _img(4, 4, 1),
    ),
    "dense_on_images": (
        lambda b: build([conv(b_std=b), RELU, dense(b_std=b), RELU, FLATTEN, dense(b_std=b)]),
        _img(4, 4, 2),
    ),
    "preset_fc": (lambda b: architectures.get("fc", 2, b_std=b), _img(3, 3, 2)),
    "preset_conv": (lambda b: architectures.get("conv", 2, b_std=b), _img(4, 3, 2)),
    "preset_convnet": (lambda b: architectures.get("convnet", 2, b_std=b), _img(4, 4, 2)),
    "preset_convnet3": (lambda b: architectures.get("convnet3", 2, b_std=b), _img(4, 4, 1)),
    "preset_myrtle5": (lambda b: architectures.get("myrtle", 5, b_std=b), _img(4, 4, 1)),
}
POOLED = ("avgpool", "gap", "standard", "preset_convnet", "preset_myrtle5")


def _net_and_inputs(name, b_std=0.1, seed=0):
    make, (s1, s2) = CASES[name]
    return make(b_std), randn(seed, *s1), randn(seed + 1, *s2)


def _nngp_loss(kernels):
    return tf.reduce_sum(tf.sin(kernels[0]))


def _grads(net, x1, x2, loss_fn=scalar_loss, **kw):
    """(loss, dL/dx1, dL/dx2 or None) in float64; asserts they are finite."""
    a = tf.constant(x1)
    b = None if x2 is None else tf.constant(x2)
    with tf.GradientTape() as tape:
        tape.watch(a)
        if b is not None:
            tape.watch(b)
        loss = loss_fn(net.kernel_fn(a, b, **kw))
    g1, g2 = tape.gradient(loss, [a, b]) if b is not None else (tape.gradient(loss, a), None)
    for g in (g1, g2):
        if g is not None:
            assert np.all(np.isfinite(g.numpy())), "non-finite gradient"
    return float(loss), g1.numpy(), None if g2 is None else g2.numpy()


def _np_loss(nngp, ntk):
    return np.sum(np.sin(nngp)) + np.sum(np.sin(0.5 * ntk))


def _np_nngp_loss(nngp, ntk):
    return np.sum(np.sin(nngp))


def _directions(x, seed, n_random=2, n_coords=2):
    """Random unit-variance directions and single-coordinate directions shaped like x."""
    rng = np.random.default_rng(seed)
    dirs = [rng.standard_normal(x.shape) for _ in range(n_random)]
    for idx in rng.choice(x.size, size=n_coords, replace=False):
        e = np.zeros(x.size)
        e[idx] = 1.0
        dirs.append(e.reshape(x.shape))
    return dirs


def _fd_side(net, x_moving, x_fixed, dirs, moving_first, self_kernel=False, np_loss=_np_loss):
    """Central differences of the loss along each of ``dirs``, one kernel_fn call in all."""
    n = len(x_moving)
    stacked = np.concatenate([x_moving + s * H * v for v in dirs for s in (1.0, -1.0)])
    if self_kernel:
        k = net.kernel_fn(stacked, None)
        nngp, ntk = k.nngp.numpy(), k.ntk.numpy()
    elif moving_first:
        k = net.kernel_fn(stacked, x_fixed)
        nngp, ntk = k.nngp.numpy(), k.ntk.numpy()
    else:
        k = net.kernel_fn(x_fixed, stacked)
        nngp, ntk = k.nngp.numpy().T, k.ntk.numpy().T
    out = []
    for i in range(len(dirs)):
        vals = []
        for j in (2 * i, 2 * i + 1):
            rows = slice(j * n, (j + 1) * n)
            cols = rows if self_kernel else slice(None)
            vals.append(np_loss(nngp[rows, cols], ntk[rows, cols]))
        out.append((vals[0] - vals[1]) / (2 * H))
    return out


def _check_fd(grad, dirs, fds, what):
    scale = np.linalg.norm(grad)
    for k, (v, fd) in enumerate(zip(dirs, fds)):
        an = float(np.sum(grad * v))
        tol = RTOL * (abs(an) + scale) + 1e-12
        assert abs(fd - an) <= tol, (
            f"{what}, direction {k}: finite difference {fd:.10g} vs gradient {an:.10g}"
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_cross_kernel_gradients_match_finite_differences(name):
    net, x1, x2 = _net_and_inputs(name)
    _, g1, g2 = _grads(net, x1, x2)
    assert np.abs(g1).max() > 0 and np.abs(g2).max() > 0
    d1, d2 = _directions(x1, 10), _directions(x2, 11)
    _check_fd(g1, d1, _fd_side(net, x1, x2, d1, moving_first=True), f"{name} d/dx1")
    _check_fd(g2, d2, _fd_side(net, x2, x1, d2, moving_first=False), f"{name} d/dx2")


@pytest.mark.parametrize("name", sorted(CASES))
def test_self_kernel_gradients_match_finite_differences(name):
    """kernel_fn(x, None): the diagonal pairs identical inputs (angle exactly 0)."""
    net, x1, _ = _net_and_inputs(name)
    _, g, _ = _grads(net, x1, None)
    d = _directions(x1, 12)
    _check_fd(g, d, _fd_side(net, x1, None, d, True, self_kernel=True), f"{name} self")


@pytest.mark.parametrize("name", ["dense_relu", "conv_same", "gap", "preset_myrtle5"])
def test_self_kernel_diagonal_gradient_is_the_smooth_one(name):
    """On the diagonal K(x, x) is smooth; its gradient alone must also match FD."""
    net, x1, _ = _net_and_inputs(name)
    a = tf.constant(x1)
    with tf.GradientTape() as tape:
        tape.watch(a)
        k = net.kernel_fn(a, None)
        loss = tf.reduce_sum(tf.sin(tf.linalg.diag_part(k.nngp))) + tf.reduce_sum(
            tf.sin(0.5 * tf.linalg.diag_part(k.ntk))
        )
    g = tape.gradient(loss, a).numpy()
    assert np.all(np.isfinite(g))
    for v in _directions(x1, 13):
        vals = []
        for s in (1.0, -1.0):
            kk = net.kernel_fn(x1 + s * H * v, None)
            vals.append(
                np.sum(np.sin(np.diag(kk.nngp.numpy())))
                + np.sum(np.sin(0.5 * np.diag(kk.ntk.numpy())))
            )
        fd = (vals[0] - vals[1]) / (2 * H)
        an = float(np.sum(g * v))
        assert abs(fd - an) <= RTOL * (abs(an) + np.linalg.norm(g)), (fd, an)


@pytest.mark.parametrize("name", sorted(CASES))
def test_x2_equal_to_x1_passed_explicitly(name):
    """x2 = a copy of x1 (no identical-pairs mask): finite gradients, consistent with x2 None.

    Moving x1 alone, the ReLU NTK has a kink at x1 == x2 (it is linear in the angle), so only
    the NNGP (smooth there: s - theta c = O(s^3)) is compared with one-sided differences.
    """
    net, x1, _ = _net_and_inputs(name)
    x2 = x1.copy()
    _, g1, g2 = _grads(net, x1, x2)
    _, g_self, _ = _grads(net, x1, None)
    # Moving both inputs together is smooth: d/dx K(x, x) = (d/dx1 + d/dx2) K(x1, x2).
    assert np.abs(g1 + g2 - g_self).max() <= 1e-6 * np.abs(g_self).max()
    _, g1, _ = _grads(net, x1, x2, loss_fn=_nngp_loss)
    d1 = _directions(x1, 14)
    fds = _fd_side(net, x1, x2, d1, moving_first=True, np_loss=_np_nngp_loss)
    _check_fd(g1, d1, fds, f"{name} x2=x1 NNGP d/dx1")


def _zero_inputs(name, which):
    _, (s1, s2) = CASES[name]
    x1, x2 = randn(3, *s1), randn(4, *s2)
    if which == "all":
        return np.zeros(s1), np.zeros(s2)
    x1[0] = 0.0  # one all-zero image on each side, the others random
    x2[-1] = 0.0
    return x1, x2


@pytest.mark.parametrize("b_std", [None, 0.1])
@pytest.mark.parametrize("which", ["all", "some"])
@pytest.mark.parametrize("name", ["dense_relu", "conv_valid_strided", "erf_pool", "preset_convnet"])
def test_zero_images_have_finite_gradients(name, which, b_std):
    net = CASES[name][0](b_std)
    x1, x2 = _zero_inputs(name, which)
    for second in (x2, None, x1.copy()):
        loss, _, _ = _grads(net, x1, second)  # asserts finiteness of both gradients
        assert np.isfinite(loss)
    if which == "all" and b_std is None:
        # Every kernel is 0 in a neighbourhood along rays, quadratic in the inputs' scale:
        # the gradient at 0 is 0.
        _, g1, g2 = _grads(net, x1, x2)
        assert np.abs(g1).max() == 0 and np.abs(g2).max() == 0


@pytest.mark.parametrize("name", ["dense_relu", "conv_same", "erf_pool", "preset_convnet"])
def test_zero_images_with_bias_match_finite_differences(name):
    """With b_std = 0.1, zero images have a smooth kernel: FD agrees with the gradient."""
    net = CASES[name][0](0.1)
    x1, x2 = _zero_inputs(name, "some")
    _, g1, g2 = _grads(net, x1, x2)
    d1, d2 = _directions(x1, 15), _directions(x2, 16)
    _check_fd(g1, d1, _fd_side(net, x1, x2, d1, moving_first=True), f"{name} zeros d/dx1")
    _check_fd(g2, d2, _fd_side(net, x2, x1, d2, moving_first=False), f"{name} zeros d/dx2")
    x1, _ = _zero_inputs(name, "all")
    _, g, _ = _grads(net, x1, None)
    d = _directions(x1, 17)
    _check_fd(g, d, _fd_side(net, x1, None, d, True, self_kernel=True), f"{name} zeros self")


@pytest.mark.parametrize(
    "name, x2_none",
    [("dense_relu", False), ("dense_relu", True), ("conv_same", True), ("avgpool", False)],
)
def test_tiled_gradients_equal_untiled(name, x2_none):
    make, (s1, s2) = CASES[name]
    net = make(0.1)
    x1 = randn(5, 5, *s1[1:])
    x2 = None if x2_none else randn(6, 3, *s2[1:])
    loss, g1, g2 = _grads(net, x1, x2)
    loss_t, g1_t, g2_t = _grads(net, x1, x2, batch_size=2)
    assert abs(loss_t - loss) <= 1e-12 * abs(loss)
    np.testing.assert_allclose(g1_t, g1, rtol=0, atol=1e-12 * np.abs(g1).max())
    if not x2_none:
        np.testing.assert_allclose(g2_t, g2, rtol=0, atol=1e-12 * np.abs(g2).max())


@pytest.mark.parametrize("x2_none, batch_size", [(False, None), (True, None), (True, 2)])
@pytest.mark.parametrize("name", ["avgpool", "preset_convnet"])
def test_gradients_under_jit_equal_eager(name, x2_none, batch_size):
    """Compiled gradients (the KIP step's path), also of K(x, x) from its unordered
    pairs, untiled and tiled over pair chunks. The preset ConvNet's second Conv is a
    FULL window sum, whose padded input passes an XLA optimisation barrier."""
    net, x1, x2 = _net_and_inputs(name)

    @tf.function(jit_compile=True)
    def grads(a, b):
        with tf.GradientTape() as tape:
            tape.watch(a)
            if b is not None:
                tape.watch(b)
            loss = scalar_loss(net.kernel_fn(a, b, batch_size=batch_size))
        return tape.gradient(loss, a if b is None else [a, b])

    if x2_none:
        g1 = grads(tf.constant(x1), None)
        _, e1, _ = _grads(net, x1, None)
    else:
        g1, g2 = grads(tf.constant(x1), tf.constant(x2))
        _, e1, e2 = _grads(net, x1, x2)
        np.testing.assert_allclose(g2.numpy(), e2, rtol=0, atol=1e-12 * np.abs(e2).max())
    np.testing.assert_allclose(g1.numpy(), e1, rtol=0, atol=1e-12 * np.abs(e1).max())


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_gradients_are_finite_and_close_to_float64(name):
    net, x1, x2 = _net_and_inputs(name)
    for second in (x2, None):
        _, g64, _ = _grads(net, x1, second)
        a = tf.constant(x1, tf.float32)
        b = None if second is None else tf.constant(second, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = scalar_loss(net.kernel_fn(a, b))
        g32 = tape.gradient(loss, a).numpy()
        assert g32.dtype == np.float32 and np.all(np.isfinite(g32))
        err = np.abs(g32 - g64).max() / np.abs(g64).max()
        assert err <= 1e-4, f"x2={'None' if second is None else 'x2'}: {err:.2e}"
