"""`RandomFeatureNNGP`: the random-feature NNGP converges to the exact one (the
neural-tangents fixtures) within its Monte-Carlo error, its sampling error shrinks like
``1 / sqrt(M w)`` and its finite-width bias like ``1 / w``; twins are keyed by
``(seed, step)``; gradients match central finite differences in float64.

Each draw (one ``step``) is an independent estimate, so the mean over ``S`` draws has the
standard error ``std / sqrt(S)`` computed from the draws themselves; every statistical
check compares an error to that standard error, with fixed seeds (deterministic).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip import kernels as k
from tfkip.kernels.random_features import RandomFeatureNNGP

from .helpers import fixture_network, load_fixture, randn

# FC, Conv-Flatten and the pooled ConvNet (8x8x3 images, float64).
NETS = ("fc_d2__img8x8x1", "conv_flat_d2__img8x8x3", "convnet_pool_d3__img8x8x3")
# A |z| this large has probability < 1e-4 per entry under the normal approximation.
Z_MAX = 4.5


def _draws(rf: RandomFeatureNNGP, x1, x2, steps: int) -> np.ndarray:
    """``(steps, n1, n2)`` independent kernel estimates (one per step's twins)."""
    return np.stack([rf.kernel(x1, x2, step=s).numpy() for s in range(steps)])


@pytest.mark.parametrize("name", NETS)
def test_converges_to_exact_nngp_within_monte_carlo_error(name):
    z = load_fixture(name)
    m, w = (8, 1024) if name.startswith("fc") else (4, 128)
    rf = RandomFeatureNNGP(fixture_network(name), n_models=m, width=w, seed=3)
    draws = _draws(rf, z["x1"], z["x2"], steps=8)
    mean = draws.mean(0)
    stderr = draws.std(0, ddof=1) / np.sqrt(len(draws))
    score = np.abs(mean - z["nngp"]) / stderr
    assert score.max() < Z_MAX, (name, score.max())
    # ... and the estimate is informative: its error is small against the kernel's scale
    # (the exact kernel differs from a constant by much more than the error).
    spread = z["nngp"].max() - z["nngp"].min()
    assert np.abs(mean - z["nngp"]).max() < 0.2 * spread, name


@pytest.mark.parametrize("name", ["fc_d2__img8x8x1", "convnet_pool_d3__img8x8x3"])
def test_sampling_error_shrinks_like_one_over_sqrt_models_times_width(name):
    z, net = load_fixture(name), fixture_network(name)
    x1, x2 = z["x1"], z["x2"]
    var = {}
    for m, w in ((1, 32), (4, 32), (1, 128)):
        draws = _draws(RandomFeatureNNGP(net, m, w, seed=5), x1, x2, steps=24)
        var[m, w] = np.median(draws.var(0, ddof=1))
    # 4x the models or 4x the width: about 4x less variance. With 24 draws a variance
    # estimate is within a factor ~1.8 of the truth (chi-square, 23 dof, 99%): the ratio
    # of two is within [4 / 3.3, 4 * 3.3].
    for key in ((4, 32), (1, 128)):
        ratio = var[1, 32] / var[key]
        assert 4 / 3.3 < ratio < 4 * 3.3, (name, key, ratio)


def test_finite_width_bias_shrinks_like_one_over_width():
    name = "fc_d2__img8x8x1"
    z, net = load_fixture(name), fixture_network(name)
    bias, stderr = {}, {}
    for w, m in ((4, 1024), (16, 1024)):
        draws = _draws(RandomFeatureNNGP(net, m, w, seed=7), z["x1"], z["x2"], steps=8)
        err = (draws - z["nngp"]) / np.abs(z["nngp"]).max()
        per_draw = err.mean(axis=(1, 2))  # the mean relative error of each draw
        bias[w] = per_draw.mean()
        stderr[w] = per_draw.std(ddof=1) / np.sqrt(len(per_draw))
    # Width 4 is visibly biased (the finite ReLU network's kernel is not the limit's) ...
    assert abs(bias[4]) > Z_MAX * stderr[4], (bias, stderr)
    # ... and 4x the width divides the bias by about 4 (within its standard errors,
    # propagated: O(1/w), not O(1/sqrt(w)) which would leave bias[4] / 2).
    predicted = bias[4] / 4
    sigma = np.hypot(stderr[16], stderr[4] / 4)
    assert abs(bias[16] - predicted) < Z_MAX * sigma + 0.5 * abs(predicted), (bias, stderr)
    assert abs(bias[16]) < abs(bias[4]) / 2.5, (bias, stderr)


def test_same_seed_and_step_give_identical_features_eager_and_compiled():
    net = fixture_network("convnet_pool_d3__img8x8x3")
    x = randn(0, 3, 8, 8, 3)
    rf = RandomFeatureNNGP(net, n_models=2, width=16, seed=11)
    eager = rf.features(x, step=4).numpy()
    again = RandomFeatureNNGP(net, n_models=2, width=16, seed=11).features(x, step=4).numpy()
    compiled = tf.function(lambda s: rf.features(x, s), jit_compile=True)
    np.testing.assert_array_equal(eager, again)
    np.testing.assert_allclose(compiled(tf.constant(4, tf.int64)).numpy(), eager, rtol=1e-12)
    assert eager.shape == (3, 2 * 16 * 1 * 1)
    other_step = rf.features(x, step=5).numpy()
    other_seed = RandomFeatureNNGP(net, n_models=2, width=16, seed=12).features(x, 4).numpy()
    assert np.abs(other_step - eager).max() > 0.1 * np.abs(eager).max()
    assert np.abs(other_seed - eager).max() > 0.1 * np.abs(eager).max()
    # The twins of one draw are distinct models.
    d = eager.shape[1] // 2
    assert np.abs(eager[:, :d] - eager[:, d:]).max() > 0.1 * np.abs(eager).max()


@pytest.mark.parametrize("jit_compile", [False, True])
def test_bfloat16_twins_estimate_the_same_kernel_to_their_rounding(jit_compile):
    """compute_dtype='bfloat16': the same twins (weights drawn in float32, then rounded),
    features back in the inputs' dtype; the kernel moves by about 2^-8 per layer relative,
    well inside this estimate's own sampling error, and gradients still flow."""
    net = fixture_network("convnet_pool_d3__img8x8x3")
    x = tf.constant(randn(1, 4, 8, 8, 3), tf.float32)
    exact = RandomFeatureNNGP(net, n_models=4, width=64, seed=3)
    fast = RandomFeatureNNGP(net, n_models=4, width=64, seed=3, compute_dtype="bfloat16")
    estimate = exact.kernel(x, step=2).numpy()
    with tf.GradientTape() as tape:
        tape.watch(x)
        rounded = tf.function(lambda x: fast.kernel(x, step=2), jit_compile=jit_compile)(x)
        total = tf.reduce_sum(rounded)
    assert rounded.dtype == tf.float32
    scale = np.abs(estimate).max()
    error = np.abs(rounded.numpy() - estimate).max() / scale
    assert 1e-4 < error < 0.03, error  # rounded (not float32), and only by rounding
    other_draw = np.abs(exact.kernel(x, step=3).numpy() - estimate).max() / scale
    assert error < other_draw / 3  # the sampling error of one draw is much larger
    grad = tape.gradient(total, x)
    assert grad.dtype == tf.float32 and np.all(np.isfinite(grad.numpy()))


def test_kernel_is_readout_affine_in_features_and_symmetric():
    net = k.serial(k.Dense(8, 1.3, 0.2), k.Relu(), k.Dense(1, 1.7, 0.3))
    x1, x2 = randn(1, 4, 5), randn(2, 3, 5)
    rf = RandomFeatureNNGP(net, n_models=3, width=32, seed=0)
    phi1, phi2 = rf.features(x1, 2).numpy(), rf.features(x2, 2).numpy()
    np.testing.assert_allclose(rf.kernel(x1, x2, 2).numpy(), 1.7**2 * phi1 @ phi2.T + 0.3**2)
    own = rf.kernel(x1, None, 2).numpy()
    np.testing.assert_array_equal(own, own.T)
    assert phi1.shape == (4, 3 * 32)


def test_kip_kernels_match_kernel_and_never_differentiate_targets():
    net = architectures.get("conv", 1)
    xs, xt = tf.constant(randn(3, 4, 6, 6, 1)), tf.constant(randn(4, 5, 6, 6, 1))
    rf = RandomFeatureNNGP(net, n_models=2, width=8, seed=1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([xs, xt])
        k_ss, k_ts = rf.kip_kernels(xs, xt, step=3)
        total = tf.reduce_sum(k_ss) + tf.reduce_sum(k_ts)
    np.testing.assert_allclose(k_ss.numpy(), rf.kernel(xs, None, 3).numpy(), rtol=1e-12)
    np.testing.assert_allclose(k_ts.numpy(), rf.kernel(xt, xs, 3).numpy(), rtol=1e-12)
    assert tape.gradient(total, xt) is None
    assert tape.gradient(total, xs) is not None


@pytest.mark.parametrize(
    "net",
    [
        k.serial(k.Flatten(), k.Dense(8, 1.4, 0.1), k.Erf(), k.Dense(1, 1.4, 0.1)),
        k.serial(
            k.Conv(4, (3, 3), padding="SAME", W_std=1.4, b_std=0.1),
            k.Relu(),
            k.AvgPool((2, 2), strides=(2, 2), padding="SAME"),
            k.Conv(4, (2, 2), strides=(2, 2), padding="VALID", W_std=1.4, b_std=None),
            k.Relu(),
            k.GlobalAvgPool(),
            k.Dense(1, 1.4, 0.1),
        ),
    ],
    ids=["fc_erf", "conv_pool_gap"],
)
def test_gradient_matches_central_differences(net):
    xs, xt = randn(5, 3, 6, 6, 2), randn(6, 2, 6, 6, 2)
    rf = RandomFeatureNNGP(net, n_models=2, width=6, seed=2)
    weights = randn(7, 2, 3)

    def loss(x):
        k_ss, k_ts = rf.kip_kernels(x, xt, step=1)
        return tf.reduce_sum(k_ts * weights) + tf.reduce_sum(k_ss**2)

    x = tf.constant(xs)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    grad = tape.gradient(value, x).numpy()
    direction = randn(8, *xs.shape)
    eps = 1e-6
    numeric = (loss(xs + eps * direction) - loss(xs - eps * direction)).numpy() / (2 * eps)
    analytic = float(np.sum(grad * direction))
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


def test_avg_pool_same_divides_by_the_window_like_the_exact_kernel():
    net = k.serial(
        k.Conv(1, (1, 1), W_std=1.0), k.AvgPool((3, 3), padding="SAME"), k.Flatten(), k.Dense(1)
    )
    x = randn(9, 2, 5, 5, 1)
    rf = RandomFeatureNNGP(net, n_models=64, width=16, seed=0)
    draws = _draws(rf, x, None, steps=4)
    exact = net.kernel_fn(x, None, get="nngp").numpy()
    stderr = draws.std(0, ddof=1) / 2 + 1e-12
    assert (np.abs(draws.mean(0) - exact) / stderr).max() < Z_MAX


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_models=0), "n_models must be a positive integer"),
        (dict(width=2.5), "width must be a positive integer"),
        (dict(seed="a"), "seed must be an integer"),
        (dict(compute_dtype="float16"), "compute_dtype must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = dict(network=architectures.get("fc", 1), n_models=2, width=4, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RandomFeatureNNGP(**args)


def test_unsupported_layer_and_bad_inputs():
    class Custom(k.Layer):
        def output_shape(self, shape):
            return shape

        def apply(self, kernel):
            return kernel

        def get_config(self):
            return {}

    with pytest.raises(ValueError, match="Random features support the layers"):
        RandomFeatureNNGP(k.serial(k.Dense(2), Custom(), k.Dense(1)), 1, 2)
    with pytest.raises(ValueError, match="network must be a tfkip.kernels Network"):
        RandomFeatureNNGP("fc", 1, 2)
    rf = RandomFeatureNNGP(architectures.get("fc", 1), 1, 2)
    with pytest.raises(ValueError, match="float32 or float64"):
        rf.features(np.ones((2, 3), np.int32))
