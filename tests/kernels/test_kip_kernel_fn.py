"""`Network.kip_kernel_fn`: ``(K_ss, K_ts)`` from one zipped batch of input pairs.

It must equal the two `kernel_fn` calls it replaces (values, exact symmetric diagonal,
gradients w.r.t. the support images against central finite differences), untiled and in
tiles of pairs (planned from a memory budget or given), and fall back to the two calls
for networks without position-by-position covariances.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip.kernels import tiling

SHAPES = {"fc": (6,), "conv": (5, 5, 2), "convnet": (8, 8, 2), "myrtle": (8, 8, 3)}
DEPTHS = {"fc": 1, "conv": 2, "convnet": 2, "myrtle": 5}


def _inputs(name, n_s=4, n_t=3, seed=0, duplicate=False):
    rng = np.random.default_rng(seed)
    x_s = rng.standard_normal((n_s, *SHAPES[name]))
    x_t = rng.standard_normal((n_t, *SHAPES[name]))
    if duplicate:
        x_t[1] = x_s[2]  # a target equal to a support image: a cross pair, not a self pair
    return tf.constant(x_s), tf.constant(x_t)


@pytest.mark.parametrize("batch_size", [None, 2, (2, 3)], ids=["whole", "b2", "b2x3"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_equals_the_two_kernel_fn_calls(name, batch_size):
    net = architectures.get(name, DEPTHS[name])
    x_s, x_t = _inputs(name)
    gets = ("nngp", "ntk")
    k_ss, k_ts = net.kip_kernel_fn(x_s, x_t, gets, batch_size=batch_size)
    separate_ss, separate_ts = net.kernel_fn(x_s, None, gets), net.kernel_fn(x_t, x_s, gets)
    for get in gets:
        want_ss = getattr(separate_ss, get).numpy()
        want_ts = getattr(separate_ts, get).numpy()
        got_ss, got_ts = getattr(k_ss, get).numpy(), getattr(k_ts, get).numpy()
        assert got_ss.shape == (4, 4) and got_ts.shape == (3, 4)
        np.testing.assert_allclose(got_ss, want_ss, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(got_ts, want_ts, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(got_ss, got_ss.T)


@pytest.mark.parametrize("batch_size", [None, 2], ids=["whole", "b2"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_precomputed_target_variances_give_the_same_kernels_and_gradient(name, batch_size):
    """``target_variances`` (the targets' `self_variances`, e.g. gathered from a pool
    cache) replaces the targets' self pass: same kernels and support gradient, on the
    two-call path (fc, conv) and the zipped pairs (convnet, myrtle), whole and tiled."""
    net = architectures.get(name, DEPTHS[name])
    x_s, x_t = _inputs(name)
    pool = tf.concat([x_t, _inputs(name, seed=1)[1]], 0)  # computed on a larger pool
    cached = [v[:3] for v in net.self_variances(pool)]
    results = []
    for variances in (None, cached):
        with tf.GradientTape() as tape:
            tape.watch(x_s)
            k_ss, k_ts = net.kip_kernel_fn(
                x_s, x_t, batch_size=batch_size, target_variances=variances
            )
            loss = tf.reduce_sum(tf.sin(k_ts)) + tf.reduce_sum(k_ss**2)
        results.append([k_ss.numpy(), k_ts.numpy(), tape.gradient(loss, x_s).numpy()])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_bad_target_variances_are_named():
    net = architectures.get("convnet", DEPTHS["convnet"])
    x_s, x_t = _inputs("convnet")
    variances = net.self_variances(x_t)
    assert [v.shape.as_list() for v in variances] == [[3, 8, 8], [3, 8, 8], [3, 4, 4]]
    with pytest.raises(
        ValueError, match=r"must be a list of 3 tensors .* Received: 1 of shapes \[\[3, 8, 8\]\]"
    ):
        net.kip_kernel_fn(x_s, x_t, target_variances=variances[:1])
    with pytest.raises(ValueError, match=r"Received: a tensor of shape \[3, 8, 8\]"):
        net.kip_kernel_fn(x_s, x_t, target_variances=variances[0])
    with pytest.raises(
        ValueError, match=r"target_variances\[2\] must have shape \[3, 4, 4\].*\[3, 4, 2\]"
    ):
        net.kip_kernel_fn(x_s, x_t, target_variances=[*variances[:2], variances[2][..., :2]])


@pytest.mark.parametrize("name", ["conv", "convnet"])
def test_a_target_equal_to_a_support_image_is_a_cross_pair(name):
    """Only support pairs (i, i) get the exact self-kernel treatment, as in `kernel_fn`:
    the duplicate's K_ts entry is the cross kernel's (correlation 1 to rounding; at that
    angle the ReLU kernel is exact to about sqrt(eps))."""
    net = architectures.get(name, DEPTHS[name])
    x_s, x_t = _inputs(name, duplicate=True)
    _, k_ts = net.kip_kernel_fn(x_s, x_t, "nngp")
    want = net.kernel_fn(x_t, x_s, "nngp").numpy()
    np.testing.assert_allclose(k_ts.numpy(), want, rtol=1e-7)
    self_entry = net.kernel_fn(x_s, None, "nngp").numpy()[2, 2]
    np.testing.assert_allclose(k_ts.numpy()[1, 2], self_entry, rtol=1e-7)


def test_single_get_returns_tensors():
    net = architectures.get("convnet", 2)
    x_s, x_t = _inputs("convnet")
    k_ss, k_ts = net.kip_kernel_fn(x_s, x_t, "nngp")
    assert isinstance(k_ss, tf.Tensor) and k_ss.shape == (4, 4) and k_ts.shape == (3, 4)


def test_planned_tiles_of_pairs_give_the_whole_result():
    net = architectures.get("convnet", 2)
    x_s, x_t = _inputs("convnet", seed=1)
    pair_bytes = tiling.pair_bytes(net, x_s.shape[1:], 8)
    pairs = 4 * 5 // 2 + 3 * 4  # 10 support pairs, 12 target pairs
    assert tiling.plan_pair_tiles(net, x_s, pairs) is None  # the default budget holds them all
    # 5 pairs fit: 22 pairs need 5 tiles either way, balanced to 5 of 5 (3 padding pairs)
    assert tiling.plan_pair_tiles(net, x_s, pairs, 5 * pair_bytes) == 5
    assert tiling.plan_pair_tiles(net, x_s, pairs, 1) == 1
    whole = net.kip_kernel_fn(x_s, x_t, "ntk")
    tiled = net.kip_kernel_fn(x_s, x_t, "ntk", memory_budget=5 * pair_bytes)
    for got, want in zip(tiled, whole):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("name", ["conv", "convnet"])
def test_support_gradient_matches_finite_differences(name, batch_size):
    """d/dx_s of a loss of both kernels, against central differences and against the
    gradient through the two separate `kernel_fn` calls."""
    net = architectures.get(name, DEPTHS[name])
    x_s, x_t = _inputs(name, n_s=3, n_t=2, seed=2)
    weights = tf.constant(np.random.default_rng(3).standard_normal((5, 3)))

    def loss(x, joint=True):
        if joint:
            k_ss, k_ts = net.kip_kernel_fn(x, x_t, "ntk", batch_size=batch_size)
        else:
            k_ss, k_ts = net.kernel_fn(x, None, "ntk"), net.kernel_fn(x_t, x, "ntk")
        return tf.reduce_sum(tf.concat([k_ss, k_ts], 0) * weights)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_s)
        joint, separate = loss(x_s), loss(x_s, joint=False)
    grad = tape.gradient(joint, x_s).numpy()
    np.testing.assert_allclose(grad, tape.gradient(separate, x_s).numpy(), rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(4)
    h = 1e-5
    for _ in range(3):
        v = rng.standard_normal(x_s.shape)
        fd = (loss(x_s + h * v).numpy() - loss(x_s - h * v).numpy()) / (2 * h)
        directional = np.sum(grad * v)
        assert abs(fd - directional) <= 1e-6 * (abs(directional) + np.abs(grad).sum())


def test_compiles_with_xla_and_float32():
    net = architectures.get("convnet", 1)
    x_s, x_t = (tf.cast(x, tf.float32) for x in _inputs("convnet"))
    fn = tf.function(lambda a, b: net.kip_kernel_fn(a, b, "ntk"), jit_compile=True)
    k_ss, k_ts = fn(x_s, x_t)
    want_ts = net.kernel_fn(x_t, x_s, "ntk").numpy()
    assert k_ss.dtype == tf.float32
    np.testing.assert_allclose(k_ts.numpy(), want_ts, rtol=2e-5, atol=1e-6)


def test_mismatched_inputs_are_named():
    net = architectures.get("convnet", 2)
    x_s, _ = _inputs("convnet")
    with pytest.raises(ValueError, match="same per-example shape"):
        net.kip_kernel_fn(x_s, tf.zeros((2, 8, 8, 3), tf.float64))
    with pytest.raises(ValueError, match="get must be"):
        net.kip_kernel_fn(x_s, x_s, "cov")


def test_no_kernel_sized_constant_mask_in_the_compiled_program():
    """The identical-pairs mask of a FULL layout stays two small broadcast masks (pairs,
    positions): folded into one, it would be a constant of the kernel's whole size."""
    net = architectures.get("convnet", 2)
    x_s, x_t = _inputs("convnet")
    fn = tf.function(lambda a, b: net.kip_kernel_fn(a, b, "ntk"), jit_compile=True)
    hlo = fn.experimental_get_compiler_ir(x_s, x_t)(stage="hlo")
    pairs = 4 * 5 // 2 + 3 * 4
    assert re.search(rf"pred\[{pairs},1,8,8,8,8\][^\n]* constant\(", hlo) is None
    assert re.search(rf"pred\[{pairs},1,8,8,8,8\]", hlo) is not None  # the mask is there
