"""Finite networks vs the analytic kernels: Monte-Carlo NNGP and empirical NTK.

Tolerances come from the sample count: for S networks with k outputs each, the
Monte-Carlo NNGP entry (x, x') has standard error
``sqrt((K(x,x) K(x',x') + K(x,x')^2) / (S k))`` for Gaussian outputs, inflated by
``sqrt(1 + 2 k L / width)`` for the correlation of one network's outputs through its
L hidden layers (`SE_INFLATION`); the test also checks this model of the error against
the empirical spread over the S networks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfkip import architectures
from tfkip import kernels as k
from tfkip.finite import (
    build_model,
    empirical_ntk,
    gaussian_standard_error,
    max_learning_rate,
    monte_carlo_nngp,
)

KW = dict(W_std=math.sqrt(2.0), b_std=0.1)
Z_MAX = 4.5  # |error| / SE over 15 entries; P(|z| > 4.5) ~ 7e-6 each


def _inflation(out_dim, hidden_layers, width):
    return math.sqrt(1.0 + 2.0 * out_dim * hidden_layers / width)


def _pooled(parameterization="ntk"):
    kw = dict(KW, parameterization=parameterization)
    return k.serial(
        k.Conv(1, (3, 3), padding="SAME", **kw),
        k.Relu(),
        k.AvgPool((2, 2)),
        k.Conv(1, (3, 3), padding="SAME", **kw),
        k.Relu(),
        k.GlobalAvgPool(),
        k.Dense(8, **kw),
    )


CASES = {
    "fc": (lambda: architectures.get("fc", 2, num_classes=8), (8, 8, 1), 2, 512, 200),
    "fc_standard_erf": (
        lambda: architectures.get(
            "fc", 2, num_classes=8, parameterization="standard", activation="erf"
        ),
        (12,),
        2,
        512,
        200,
    ),
    "conv_flatten": (lambda: architectures.get("conv", 2, num_classes=8), (6, 6, 2), 2, 128, 100),
    "pooled": (_pooled, (6, 6, 2), 2, 128, 100),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_monte_carlo_nngp_matches_the_analytic_nngp(case):
    make, shape, hidden, width, samples = CASES[case]
    net = make()
    x = np.random.default_rng(0).standard_normal((5, *shape))
    expected = net.kernel_fn(x, None, "nngp").numpy()
    model = build_model(net, shape, width=width, seed=0)
    mc = monte_carlo_nngp(model, x.astype("float32"), n_samples=samples, seed=1)
    se = gaussian_standard_error(expected, samples, mc.out_dim) * _inflation(
        mc.out_dim, hidden, width
    )
    upper = np.triu_indices(5)
    z = np.abs(mc.mean - expected)[upper] / se[upper]
    assert z.max() < Z_MAX, (z.max(), mc.mean, expected)
    # The error model is right: the observed spread matches the predicted one.
    ratio = np.median(mc.standard_error[upper] / se[upper])
    assert 0.5 < ratio < 1.5, ratio


def _mc_error(net, x, expected, width, samples):
    model = build_model(net, x.shape[1:], width=width, seed=0)
    mc = monte_carlo_nngp(model, x.astype("float32"), n_samples=samples, seed=0)
    return np.linalg.norm(mc.mean - expected) / np.linalg.norm(expected)


def test_monte_carlo_error_falls_with_width_and_samples():
    net = architectures.get("fc", 2, num_classes=64)  # many outputs: width noise dominates
    x = np.random.default_rng(0).standard_normal((5, 16))
    expected = net.kernel_fn(x, None, "nngp").numpy()
    by_width = [_mc_error(net, x, expected, width, 50) for width in (8, 512)]
    by_samples = [_mc_error(net, x, expected, 256, samples) for samples in (10, 400)]
    assert by_width[0] > 2.0 * by_width[1], by_width
    assert by_samples[0] > 2.0 * by_samples[1], by_samples
    assert by_width[1] < 0.1 and by_samples[1] < 0.05


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_empirical_ntk_of_a_wide_fc_net_matches_the_analytic_ntk():
    net = architectures.get("fc", 2, num_classes=4)
    x = np.random.default_rng(0).standard_normal((5, 8, 8, 1))
    expected = net.kernel_fn(x, None, "ntk").numpy()
    model = build_model(net, x.shape[1:], width=1024, seed=0)
    assert _rel(empirical_ntk(model, x.astype("float32")).numpy(), expected) < 0.12


def test_empirical_ntk_of_conv_nets_matches_the_analytic_ntk():
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 2))
    for net in (architectures.get("conv", 2, num_classes=4), _pooled()):
        expected = net.kernel_fn(x, None, "ntk").numpy()
        ntks = [
            empirical_ntk(build_model(net, x.shape[1:], 256, seed=s), x.astype("float32"))
            for s in range(3)
        ]
        assert _rel(np.mean(ntks, axis=0), expected) < 0.1


def test_empirical_ntk_error_falls_with_width():
    net = architectures.get("fc", 2, num_classes=2)
    x = np.random.default_rng(2).standard_normal((4, 10))
    expected = net.kernel_fn(x, None, "ntk").numpy()

    def error(width):
        return np.mean(
            [
                _rel(empirical_ntk(build_model(net, (10,), width, seed=s), x), expected)
                for s in range(3)
            ]
        )

    assert error(16) > 3.0 * error(1024)


def test_standard_parameterization_ntk_matches_at_the_same_width():
    width = 512
    net = architectures.get("fc", 1, width=width, num_classes=2, parameterization="standard")
    x = np.random.default_rng(3).standard_normal((4, 12))
    expected = net.kernel_fn(x, None, "ntk").numpy()
    # The spec's own width; the mean over 3 initialisations (the NTK fluctuates ~ 1/sqrt(n)).
    ntks = [empirical_ntk(build_model(net, (12,), seed=s), x.astype("float32")) for s in range(3)]
    assert _rel(np.mean(ntks, axis=0), expected) < 0.1


def test_empirical_ntk_outputs_and_tiling_are_consistent():
    net = architectures.get("conv", 1, num_classes=3)
    model = build_model(net, (5, 5, 2), width=6, seed=0)
    x1 = np.random.default_rng(4).standard_normal((5, 5, 5, 2)).astype("float32")
    x2 = np.random.default_rng(5).standard_normal((3, 5, 5, 2)).astype("float32")
    full = empirical_ntk(model, x1, output="full", batch_size=2).numpy()
    assert full.shape == (5, 5, 3, 3)
    np.testing.assert_allclose(full, np.transpose(full, (1, 0, 3, 2)), rtol=1e-5, atol=1e-6)
    trace = empirical_ntk(model, x1, output="trace", batch_size=5).numpy()
    np.testing.assert_allclose(trace, np.einsum("ijaa->ij", full) / 3, rtol=1e-4, atol=1e-5)
    reduced = empirical_ntk(model, x1, output="reduced", batch_size=3).numpy()
    np.testing.assert_allclose(reduced, full.sum(axis=(2, 3)) / 3, rtol=1e-4, atol=1e-5)
    cross = empirical_ntk(model, x1, x2, output="full", batch_size=2).numpy()
    both = empirical_ntk(model, np.concatenate([x1, x2]), output="full", batch_size=4).numpy()
    np.testing.assert_allclose(cross, both[:5, 5:], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="output='diag'"):
        empirical_ntk(model, x1, output="diag")


def test_max_learning_rate_of_a_linear_model_is_closed_form():
    """f = W x / sqrt(d): the reduced NTK is X X^T / d, so lr = 2 n C / lambda_max."""
    net = k.serial(k.Dense(3, W_std=1.0, b_std=None))
    x = np.random.default_rng(6).standard_normal((7, 5))
    model = build_model(net, (5,), seed=0)
    lam = np.linalg.eigvalsh(x @ x.T / 5)[-1]
    lr = max_learning_rate(model, x.astype("float32"), batch_size=3)
    assert lr == pytest.approx(2 * 7 * 3 / lam, rel=1e-5)
    assert max_learning_rate(model, x, y_train_size=10, momentum=0.5) == pytest.approx(
        2 * 1.5 * 10 / lam, rel=1e-5
    )
