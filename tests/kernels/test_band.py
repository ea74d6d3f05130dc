"""The BAND layout (`tfkip.kernels.band`): the same kernels and gradients as FULL.

Pooled networks read out by Flatten hold only the position pairs within the radius their
readout needs. Here BAND is forced (``band_fraction = inf``) or forbidden (``0``) on the
same network: the neural-tangents fixtures are reproduced with BAND at their tolerances,
BAND equals FULL in float64 for every conv / pool geometry (strides, VALID / SAME, overlapping
and odd-sized windows, non-square images), cross, self and KIP kernels, and its gradients
equal central finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip.kernels import Layout, band, tiling
from tfkip.kernels.network import BAND_FRACTION, Network
from tfkip.kernels.tiling import pair_entries

from . import test_gradients as grads
from .helpers import (
    FIXTURE_NAMES,
    FLATTEN,
    GAP,
    RELU,
    assert_rel,
    assert_self_kernel,
    build,
    conv,
    dense,
    erf,
    fixture_network,
    has_relu,
    load_fixture,
    pool,
    randn,
    rel_err,
)

GETS = ("nngp", "ntk")


def _banded(net: Network) -> Network:
    net.band_fraction = math.inf
    return net


def _full(net: Network) -> Network:
    net.band_fraction = 0.0
    return net


def _uses_band(net: Network, per_example_shape) -> bool:
    return any(layout == Layout.BAND for layout, _ in net.layout_plan(per_example_shape))


BAND_FIXTURES = [
    name
    for name in FIXTURE_NAMES
    if _uses_band(_banded(fixture_network(name)), load_fixture(name)["x1"].shape[1:])
]


def test_pooled_flatten_fixtures_can_use_band():
    assert len(BAND_FIXTURES) >= 2, BAND_FIXTURES


@pytest.mark.parametrize("name", BAND_FIXTURES)
def test_fixtures_with_band(name):
    z, net = load_fixture(name), _banded(fixture_network(name))
    cross = net.kernel_fn(z["x1"], z["x2"], get=GETS)
    own = net.kernel_fn(z["x1"], None, get=GETS)
    x1, x2 = z["x1"].astype(np.float32), z["x2"].astype(np.float32)
    cross32 = net.kernel_fn(x1, x2, get=GETS)
    own32 = net.kernel_fn(x1, None, get=GETS)
    diag_rtol = 1e-3 if has_relu(z["arch"]) else 1e-4
    for g in GETS:
        assert_rel(getattr(cross, g), z[g], 1e-10, f"{name} {g}")
        assert_self_kernel(getattr(own, g).numpy(), z[f"{g}_11"], 1e-10, 1e-7, f"{name} {g}_11")
        assert_rel(getattr(cross32, g), z[g], 1e-4, f"{name} float32 {g}")
        assert_self_kernel(getattr(own32, g), z[f"{g}_11"], 1e-4, diag_rtol, f"{name} f32 {g}_11")


# name -> (b_std -> layers before the Flatten readout, per-example image shape): the conv
# and pool geometries the band must follow.
GEOMETRIES = {
    "convnet_like": (lambda b: [conv(b_std=b), RELU, conv(b_std=b), RELU, pool()], (9, 7, 2)),
    "strided_conv": (
        lambda b: (
            [conv(strides=(2, 1), b_std=b), RELU]
            + [conv((3, 2), strides=(1, 2), padding="VALID", b_std=b), RELU, pool()]
        ),
        (15, 18, 1),
    ),
    "standard": (  # the NTK's bias term is added inside the image only
        lambda b: [conv(b_std=b, parameterization="standard")] * 2 + [RELU, pool()],
        (7, 8, 1),
    ),
    "overlapping_pool": (lambda b: [conv(b_std=b), RELU, pool((3, 2), (1, 1)), RELU], (8, 6, 2)),
    "same_pool": (
        lambda b: [conv((2, 3), b_std=b), erf(2.0, 0.5, 0.3), pool((3, 3), (2, 2), "SAME")],
        (9, 9, 1),
    ),
    "two_pools": (
        lambda b: (
            [conv(b_std=b), RELU, pool(), conv(b_std=b), RELU]
            + [pool((2, 3), (2, 3)), conv((1, 1), b_std=b), RELU]
        ),
        (12, 13, 1),
    ),
}


def _geometry_net(name: str, b_std=0.1):
    layers, shape = GEOMETRIES[name]
    return build([*layers(b_std), FLATTEN, dense(b_std=b_std)]), shape


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_band_equals_full(name):
    (net, shape), (full, _) = _geometry_net(name), _geometry_net(name)
    _banded(net), _full(full)
    assert _uses_band(net, shape) and not _uses_band(full, shape)
    x1, x2 = randn(0, 3, *shape), randn(1, 4, *shape)
    for args in ((x1, x2), (x1, None)):
        got, want = net.kernel_fn(*args, get=GETS), full.kernel_fn(*args, get=GETS)
        for g in GETS:
            assert rel_err(getattr(got, g), getattr(want, g)) <= 1e-13, (name, g, args[1] is None)
    want = full.kip_kernel_fn(x1, x2, get=GETS)
    for forward_only in (False, True):  # zipped pairs; two calls (cross K_ts) without gradient
        got = net.kip_kernel_fn(x1, x2, get=GETS, forward_only=forward_only)
        for k in range(2):
            for g in GETS:
                err = rel_err(getattr(got[k], g), getattr(want[k], g))
                assert err <= 1e-13, (name, forward_only, k, g)
    got = net.kernel_fn(x1.astype(np.float32), x2.astype(np.float32), get="ntk")
    assert rel_err(got, full.kernel_fn(x1, x2, get="ntk")) <= 1e-5, name


def test_band_equals_full_in_tiles_and_under_jit():
    net = _banded(architectures.get("convnet", 2))
    full = _full(architectures.get("convnet", 2))
    x1, x2 = randn(0, 5, 9, 9, 1), randn(1, 3, 9, 9, 1)
    want = full.kernel_fn(x1, x2, get="ntk")
    tiled = net.kernel_fn(x1, x2, get="ntk", batch_size=(2, 2))
    jitted = tf.function(lambda a, b: net.kernel_fn(a, b, "ntk"), jit_compile=True)(x1, x2)
    assert rel_err(tiled, want) <= 1e-13 and rel_err(jitted, want) <= 1e-12


def test_self_kernel_in_upper_block_tiles():
    """K(x, x) under BAND in tiles: only the blocks I <= J are computed, the rest mirrored."""
    net = _banded(architectures.get("convnet", 2))
    x = randn(2, 5, 9, 9, 1)
    want = net.kernel_fn(x, None, get=GETS)  # untiled: unordered zipped pairs
    for size in (2, 3):
        got = net.kernel_fn(x, None, get=GETS, batch_size=size)
        for g in GETS:
            value = getattr(got, g).numpy()
            assert rel_err(value, getattr(want, g)) <= 1e-13, (size, g)
            np.testing.assert_array_equal(value, value.T)
            np.testing.assert_array_equal(np.diag(value), np.diag(getattr(want, g)))


def test_self_variances_agree():
    (net, shape), (full, _) = _geometry_net("two_pools"), _geometry_net("two_pools")
    _banded(net), _full(full)
    x = randn(3, 4, *shape)
    for got, want in zip(net.self_variances(x), full.self_variances(x)):
        assert got.shape == want.shape and rel_err(got, want) <= 1e-14


def test_self_variances_of_many_inputs_in_cache_sized_chunks(monkeypatch):
    """More inputs than one BAND tile holds: computed in chunks of `band_tile_pairs`
    (here 2; 5 inputs are 3 chunks, the last padded), the same values as one at a time,
    and differentiable."""
    monkeypatch.setattr(tiling, "band_tile_pairs", lambda *args: 2)
    chunked, tiled_self_variances = [], tiling.tiled_self_variances
    monkeypatch.setattr(
        tiling,
        "tiled_self_variances",
        lambda net, x, size: chunked.append(size) or tiled_self_variances(net, x, size),
    )
    net = _banded(architectures.get("convnet", 2))
    x = tf.constant(randn(4, 5, 9, 9, 1))
    got = net.self_variances(x)
    assert chunked == [2]
    one_by_one = [net.self_variances(x[i : i + 1]) for i in range(5)]
    for k, value in enumerate(got):
        assert value.shape[0] == 5
        want = np.concatenate([v[k].numpy() for v in one_by_one])
        assert rel_err(value, want) <= 1e-14
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(net.self_variances(x)[-1])
    grad = tape.gradient(total, x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = sum(tf.reduce_sum(net.self_variances(x[i : i + 1])[-1]) for i in range(5))
    assert rel_err(grad, tape.gradient(total, x)) <= 1e-13


@pytest.mark.parametrize("name", ["convnet_like", "strided_conv", "same_pool"])
def test_band_gradients_equal_full_and_finite_differences(name):
    (net, shape), (full, _) = _geometry_net(name), _geometry_net(name)
    _banded(net), _full(full)
    x1, x2 = randn(5, 2, *shape), randn(6, 2, *shape)
    _, g1, g2 = grads._grads(net, x1, x2)
    _, f1, f2 = grads._grads(full, x1, x2)
    assert rel_err(g1, f1) <= 1e-12 and rel_err(g2, f2) <= 1e-12
    d1, d2 = grads._directions(x1, 10), grads._directions(x2, 11)
    grads._check_fd(g1, d1, grads._fd_side(net, x1, x2, d1, moving_first=True), f"{name} d/dx1")
    grads._check_fd(g2, d2, grads._fd_side(net, x2, x1, d2, moving_first=False), f"{name} d/dx2")
    _, g, _ = grads._grads(net, x1, None)
    _, f, _ = grads._grads(full, x1, None)
    assert rel_err(g, f) <= 1e-12
    d = grads._directions(x1, 12)
    grads._check_fd(g, d, grads._fd_side(net, x1, None, d, True, self_kernel=True), f"{name} self")


def test_kip_gradient_with_band_equals_full():
    """The KIP step's path: `kip_kernel_fn` (under BAND: K_ss in upper-block tiles, K_ts
    a cross kernel; untiled or in tiles of 2), KRR loss."""
    x_s, x_t = randn(7, 3, 10, 10, 1), randn(8, 4, 10, 10, 1)

    def loss_and_grad(net, batch_size):
        x = tf.constant(x_s)
        with tf.GradientTape() as tape:
            tape.watch(x)
            k_ss, k_ts = net.kip_kernel_fn(x, x_t, "ntk", batch_size=batch_size)
            ridge = k_ss + 1e-3 * tf.eye(3, dtype=x.dtype)
            pred = k_ts @ tf.linalg.solve(ridge, tf.ones((3, 1), x.dtype))
            loss = tf.reduce_sum(pred**2)
        return loss.numpy(), tape.gradient(loss, x).numpy()

    want = loss_and_grad(_full(architectures.get("convnet", 2)), None)
    for batch_size in (None, 2):
        got = loss_and_grad(_banded(architectures.get("convnet", 2)), batch_size)
        assert abs(got[0] - want[0]) <= 1e-12 * abs(want[0])
        assert rel_err(got[1], want[1]) <= 1e-11


def test_plan_of_the_paper_convnet():
    """Flatten needs offset 0; each 2x2/2 pool 2 r + 1 before it; convs keep the radius."""
    net = architectures.get("convnet", 3)
    assert net.band_fraction == BAND_FRACTION
    assert net.bands[:11] == ((7, 7),) * 5 + ((3, 3),) * 3 + ((1, 1),) * 3
    plan = net.layout_plan((28, 28, 1))
    assert [layout for layout, _ in plan] == [Layout.BAND] * 11 + [Layout.DIAG, Layout.FLAT]
    assert pair_entries(net, (28, 28, 1)) == 28 * 28 * 15 * 15
    # 16x16: the band would hold 0.88 of FULL's entries; FULL is kept.
    assert [layout for layout, _ in net.layout_plan((16, 16, 3))][:11] == [Layout.FULL] * 11
    assert pair_entries(net, (16, 16, 3)) == 256**2


def test_gap_readout_never_uses_band():
    net = _banded(build([conv(), RELU, pool(), GAP, dense()]))
    assert net.bands[0] is None and not _uses_band(net, (8, 8, 1))


def test_windows_mask_and_center():
    x = tf.reshape(tf.range(1.0, 13.0), (1, 3, 4))
    near = band.windows(x, (1, 2)).numpy()  # (1, 3, 5, 3, 4)
    assert near.shape == (1, 3, 5, 3, 4)
    for i in range(3):
        for j in range(5):
            for h in range(3):
                for w in range(4):
                    q = (h + i - 1, w + j - 2)
                    inside = 0 <= q[0] < 3 and 0 <= q[1] < 4
                    assert near[0, i, j, h, w] == (x[0, q[0], q[1]] if inside else 0.0)
    m = band.mask((3, 4), (1, 2), tf.float64).numpy()
    np.testing.assert_array_equal(m, near[0] != 0)  # x has no zeros: 0 means outside
    assert np.array_equal(band.center(tf.constant(near)).numpy(), x.numpy())


@pytest.mark.parametrize(
    "stride, r_out, lengths", [(2, 3, (14, 15)), (3, 1, (9, 11)), (2, 0, (5, 4))]
)
def test_block_pool_adjoint_equals_autodiff(stride, r_out, lengths):
    """`band.pool`'s hand-written adjoint for non-overlapping windows (w = s, VALID, odd
    lengths leaving trailing positions no window reaches) against autodiff of its slices."""
    r_in = stride * r_out + stride - 1
    rng = np.random.default_rng(stride)
    x = tf.constant(rng.standard_normal((2, 3, 2 * r_in + 1, 2 * r_in + 1, *lengths)))
    geometry = [((n - stride) // stride + 1, 0, 0) for n in lengths]
    window = (stride, stride)
    y = band.pool(x, window, window, geometry)
    dy = tf.constant(rng.standard_normal(y.shape))

    def plain(x):
        rank = x.shape.rank
        for k, g in enumerate(geometry):
            x = band._pool_axis(x, (rank - 4 + k, rank - 2 + k), stride, stride, g)
        return x

    for fn in (lambda t: band.pool(t, window, window, geometry), plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x)
        if fn is plain:
            want = tape.gradient(out, x, output_gradients=dy)
            np.testing.assert_array_equal(out.numpy(), y.numpy())
        else:
            got = tape.gradient(out, x, output_gradients=dy)
    assert rel_err(got, want) <= 1e-15
