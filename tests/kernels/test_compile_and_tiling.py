"""XLA compilation, retracing, tiling (``batch_size=...``) and the layout plan of `serial`."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip.kernels import (
    AvgPool,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    Layer,
    Layout,
    Relu,
    serial,
)
from tfkip.kernels.network import BAND_FRACTION

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
    rel_err,
)

GETS = ("nngp", "ntk")
FULL, DIAG, FLAT, BAND = Layout.FULL, Layout.DIAG, Layout.FLAT, Layout.BAND

# name -> (network, per-example input shape)
NETS = {
    "fc_flat": (build([dense(), RELU, dense(b_std=None), erf(), dense()]), (6,)),
    "fc_flatten_images": (build([FLATTEN, dense(), RELU, dense()]), (4, 3, 2)),
    # more than 32 input features: the input kernel's feature sum is a matmul with ones
    "fc_flatten_wide": (build([FLATTEN, dense(), RELU, dense()]), (6, 6, 1)),
    "conv_flatten": (
        build([conv(), RELU, conv((2, 2), (2, 1), "VALID"), RELU, FLATTEN, dense()]),
        (5, 4, 2),
    ),
    "pooled_flatten": (build([conv(), RELU, pool(), conv(), RELU, FLATTEN, dense()]), (4, 4, 2)),
    "pooled_gap": (build([conv(), RELU, pool((2, 2), (1, 1), "SAME"), GAP, dense()]), (4, 3, 1)),
}


def _inputs(name, n1, n2, dtype=np.float64):
    shape = NETS[name][1]
    return randn(7, n1, *shape).astype(dtype), randn(8, n2, *shape).astype(dtype)


def _assert_kernels_close(got, want, rtol, what=""):
    for g in GETS:
        err = rel_err(getattr(got, g), getattr(want, g).numpy())
        assert err <= rtol, f"{what} {g}: relative error {err:.2e} > {rtol:.0e}"


# ------------------------------------------------------------------------ compilation
@pytest.mark.parametrize("name", ["fc_flat", "conv_flatten"])  # pooled: see the next tests
def test_jit_compiled_equals_eager(name):
    net = NETS[name][0]
    x1, x2 = _inputs(name, 3, 2)
    fn = tf.function(lambda a, b: (net.kernel_fn(a, b), net.kernel_fn(a, None)), jit_compile=True)
    cross, own = fn(tf.constant(x1), tf.constant(x2))
    _assert_kernels_close(cross, net.kernel_fn(x1, x2), 1e-12, f"{name} cross")
    _assert_kernels_close(own, net.kernel_fn(x1, None), 1e-12, f"{name} self")


def test_jit_compiled_float32_equals_eager():
    net = NETS["pooled_flatten"][0]
    x1, x2 = _inputs("pooled_flatten", 3, 2, np.float32)
    fn = tf.function(lambda a, b: net.kernel_fn(a, b), jit_compile=True)
    out = fn(tf.constant(x1), tf.constant(x2))
    assert out.nngp.dtype == tf.float32 and out.ntk.dtype == tf.float32
    _assert_kernels_close(out, net.kernel_fn(x1, x2), 1e-5, "float32")


@pytest.mark.parametrize(
    "name, x2_none", [("fc_flat", False), ("conv_flatten", True)], ids=["x2", "x2_none"]
)
def test_second_call_with_same_shapes_does_not_retrace(name, x2_none):
    net = NETS[name][0]
    traces = []

    @tf.function(jit_compile=True)
    def fn(a, b):
        traces.append(1)  # Python side effect: runs once per trace
        return net.kernel_fn(a, None if x2_none else b, get="ntk")

    for seed in (0, 1, 2):
        x1, x2 = _inputs(name, 3, 2)
        out = fn(tf.constant(x1 + seed), tf.constant(x2 - seed))
    assert len(traces) == 1 and fn.experimental_get_tracing_count() == 1
    want = net.kernel_fn(x1 + 2, None if x2_none else x2 - 2, get="ntk")
    assert rel_err(out, want.numpy()) <= 1e-12  # the last call used its own inputs
    x1, x2 = _inputs(name, 4, 2)  # a new shape must retrace (the counter works)
    fn(tf.constant(x1), tf.constant(x2))
    assert len(traces) == 2 and fn.experimental_get_tracing_count() == 2


def test_tiled_kernel_compiles_without_retracing():
    net = NETS["pooled_gap"][0]

    @tf.function(jit_compile=True)
    def fn(a, b):
        return net.kernel_fn(a, b, get="ntk", batch_size=2), net.kernel_fn(
            a, None, get="nngp", batch_size=(2, 3)
        )

    for seed in (1, 2):
        x1, x2 = _inputs("pooled_gap", 5, 3)
        cross, own = fn(tf.constant(x1 * seed), tf.constant(x2))
    assert fn.experimental_get_tracing_count() == 1
    assert isinstance(cross, tf.Tensor) and cross.shape == (5, 3) and own.shape == (5, 5)
    assert rel_err(cross, net.kernel_fn(x1 * 2, x2, get="ntk").numpy()) <= 1e-12
    assert rel_err(own, net.kernel_fn(x1 * 2, None, get="nngp").numpy()) <= 1e-12


@pytest.mark.parametrize("name", ["pooled_gap", "fc_flatten_wide"])
def test_jit_with_a_dynamic_batch_dimension(name):
    """Compiled equals eager, and one trace serves every batch size when the signature
    leaves n unknown."""
    net, shape = NETS[name]
    spec = tf.TensorSpec([None, *shape], tf.float64)
    fn = tf.function(
        lambda a, b: (net.kernel_fn(a, b), net.kernel_fn(a, None)),
        input_signature=[spec, spec],
        jit_compile=True,
    )
    for n1, n2 in ((3, 2), (1, 4)):
        x1, x2 = _inputs(name, n1, n2)
        cross, own = fn(x1, x2)
        _assert_kernels_close(cross, net.kernel_fn(x1, x2), 1e-12, f"{name} ({n1}, {n2})")
        _assert_kernels_close(own, net.kernel_fn(x1, None), 1e-12, f"{name} ({n1}, {n1})")
    assert fn.experimental_get_tracing_count() == 1


# ------------------------------------------------------------------------------ tiling
@pytest.mark.parametrize("batch_size", [3, (2, 5)], ids=["b3", "b2x5"])
@pytest.mark.parametrize("x2_none", [False, True], ids=["x2", "x2_none"])
@pytest.mark.parametrize(
    "name", ["fc_flat", "fc_flatten_images", "conv_flatten", "pooled_flatten", "pooled_gap"]
)
def test_tiled_equals_untiled(name, x2_none, batch_size):
    """n1 = 7 and n2 = 5 are not multiples of the tiles; x2 None on images is tiled over its
    28 unordered pairs (tiles of b1 * b2 pairs), on flat inputs in square diagonal tiles."""
    net = NETS[name][0]
    x1, x2 = _inputs(name, 7, 5)
    if x2_none:
        x2 = None
    tiled = net.kernel_fn(x1, x2, get=GETS, batch_size=batch_size)
    untiled = net.kernel_fn(x1, x2, get=GETS)
    n2 = 7 if x2_none else 5
    for g in GETS:
        assert getattr(tiled, g).shape == (7, n2)
    _assert_kernels_close(tiled, untiled, 1e-12, f"{name} batch_size={batch_size}")
    if x2_none:  # the self-kernel diagonal stays exact (angle 0) in diagonal tiles
        for g in GETS:
            np.testing.assert_allclose(
                np.diag(getattr(tiled, g).numpy()),
                np.diag(getattr(untiled, g).numpy()),
                rtol=1e-13,
            )


@pytest.mark.parametrize("batch_size", [1, 3, 100, (100, 1)])
def test_tiled_edge_tile_sizes(batch_size):
    net = NETS["conv_flatten"][0]
    x1, x2 = _inputs("conv_flatten", 3, 2)
    for second in (x2, None):
        _assert_kernels_close(
            net.kernel_fn(x1, second, batch_size=batch_size),
            net.kernel_fn(x1, second),
            1e-12,
            f"batch_size={batch_size}",
        )


def test_tiled_empty_batch_is_like_untiled():
    """An empty x1 gives an empty (0, n2) kernel untiled; tiled it must too (or refuse
    clearly with a ValueError), not fail with an arithmetic error."""
    net = NETS["conv_flatten"][0]
    x1, x2 = _inputs("conv_flatten", 0, 3)
    assert net.kernel_fn(x1, x2, get="ntk").shape == (0, 3)
    try:
        tiled = net.kernel_fn(x1, x2, get="ntk", batch_size=2)
    except ValueError:
        return
    assert tiled.shape == (0, 3)


def test_tiled_single_get():
    net = NETS["pooled_gap"][0]
    x1, x2 = _inputs("pooled_gap", 5, 4)
    single = net.kernel_fn(x1, x2, get="ntk", batch_size=(2, 3))
    assert isinstance(single, tf.Tensor)
    assert rel_err(single, net.kernel_fn(x1, x2, get="ntk").numpy()) <= 1e-12


def test_tiled_float32():
    net = NETS["pooled_flatten"][0]
    x1, x2 = _inputs("pooled_flatten", 5, 3, np.float32)
    tiled = net.kernel_fn(x1, x2, batch_size=2)
    assert tiled.ntk.dtype == tf.float32
    _assert_kernels_close(tiled, net.kernel_fn(x1, x2), 1e-6, "float32")


# --------------------------------------------------------------------------- layout plan
class Probe(Layer):
    """Identity layer recording the layout and nngp shape it sees (cross kernels only)."""

    def __init__(self):
        self.seen = []

    def output_shape(self, shape):
        return shape

    def apply(self, kernel):
        if kernel.batch_ndim == 2:
            self.seen.append((kernel.layout, tuple(kernel.nngp.shape)))
        return kernel

    def get_config(self):
        return {}


def test_conv_flatten_plan_is_diagonal():
    net = serial(
        Conv(8, (3, 3), padding="SAME"), Relu(), Conv(8, (3, 3)), Relu(), Flatten(), Dense(1)
    )
    assert net.layouts == (DIAG, DIAG, DIAG, DIAG, DIAG, FLAT)
    assert architectures.get("conv", 3).layouts == (DIAG,) * 7 + (FLAT,)


def test_pooled_plans_are_full():
    net = serial(Conv(8, (3, 3)), Relu(), AvgPool((2, 2)), GlobalAvgPool(), Dense(1))
    assert net.layouts == (FULL, FULL, FULL, FULL, FLAT)
    net = serial(
        Conv(8, (3, 3)), Relu(), AvgPool((2, 2)), Conv(8, (3, 3)), Relu(), Flatten(), Dense(1)
    )
    assert net.layouts == (FULL, FULL, FULL, DIAG, DIAG, DIAG, FLAT)


def test_fc_plan_is_flat():
    assert serial(Dense(8), Relu(), Dense(8), Relu(), Dense(1)).layouts == (FLAT,) * 5
    layouts = architectures.get("fc", 3).layouts
    assert layouts[1:] == (FLAT,) * 7  # everything after the Flatten


def _pool_indices(net):
    return [i for i, layer in enumerate(net.layers) if isinstance(layer, (AvgPool, GlobalAvgPool))]


@pytest.mark.parametrize(
    "name, depth, readout",
    [("convnet", 3, None), ("convnet3", 2, None), ("convnet", 2, "gap"), ("myrtle", 5, None)]
    + [("myrtle", 7, None), ("myrtle", 10, None)],
)
def test_pooled_presets_use_full_only_up_to_their_last_pool(name, depth, readout):
    net = architectures.get(name, depth, **({"readout": readout} if readout else {}))
    last_pool = _pool_indices(net)[-1]
    for i, (layer, layout) in enumerate(zip(net.layers, net.layouts)):
        if i <= last_pool:
            assert layout == FULL, (i, layer)
        elif isinstance(layer, Flatten):
            assert layout == DIAG, (i, layer)
        else:
            assert layout in (DIAG, FLAT), (i, layer, layout)
    assert net.layouts[-1] == FLAT
    if name == "convnet" and readout is None:  # 2 + depth * 3 layers, then Flatten, Dense
        assert net.layouts == (FULL,) * (2 + 3 * depth) + (DIAG, FLAT)


@pytest.mark.parametrize("band_fraction", [BAND_FRACTION, 0.0])
def test_layouts_at_run_time_follow_the_plan(band_fraction):
    """Probes between layers see position pairs only before a pool, DIAG (n1, n2, H, W) on
    the way to a Flatten. The pairs are BAND (n1, n2, 3, 3, H, W): the 2x2/2 pool before a
    Flatten reads offsets -1..1 (9 of the 24 positions, under `BAND_FRACTION`), or FULL
    (n1, n2, H, W, H, W) when ``band_fraction`` is 0."""
    probes = [Probe() for _ in range(4)]
    net = serial(
        Conv(4, (3, 3), padding="SAME", b_std=0.1),
        probes[0],
        Relu(),
        AvgPool((2, 2), (2, 2)),
        probes[1],
        Conv(4, (3, 3), padding="SAME"),
        probes[2],
        Relu(),
        Flatten(),
        probes[3],
        Dense(1),
    )
    net.band_fraction = band_fraction
    x1, x2 = randn(0, 3, 6, 4, 2), randn(1, 2, 6, 4, 2)
    net.kernel_fn(x1, x2)
    if band_fraction:
        assert net.bands[:4] == ((1, 1),) * 4
        assert probes[0].seen == [(BAND, (3, 2, 3, 3, 6, 4))]
    else:
        assert probes[0].seen == [(FULL, (3, 2, 6, 4, 6, 4))]
    # The next Conv feeds a Flatten: only the diagonal is kept from the pool's output on.
    assert probes[1].seen == [(DIAG, (3, 2, 3, 2))]
    assert probes[2].seen == [(DIAG, (3, 2, 3, 2))]
    assert probes[3].seen == [(FLAT, (3, 2))]
    probe = Probe()
    flat_net = serial(Conv(4, (3, 3), padding="SAME"), Relu(), probe, Flatten(), Dense(1))
    flat_net.kernel_fn(x1, x2)
    flat_net.kernel_fn(x1, None)
    # x2 None: the 3 * 4 / 2 = 6 unordered pairs of x1, zipped into a (6, 1) batch.
    assert probe.seen == [(DIAG, (3, 2, 6, 4)), (DIAG, (6, 1, 6, 4))]


def test_plan_is_decided_once_and_followed_at_every_image_size():
    """The layouts are fixed at construction (an immutable tuple: FULL up to the pool,
    DIAG after it), and the recursion uses exactly them whatever the image size."""
    probe = Probe()
    net = serial(Conv(4, (3, 3), padding="SAME"), Relu(), AvgPool((2, 2)), probe, Flatten())
    assert net.layouts == (FULL, FULL, FULL, DIAG, DIAG)
    with pytest.raises(TypeError):
        net.layouts[0] = DIAG  # a tuple: nothing can change the plan afterwards
    for size in (4, 6):
        x1, x2 = randn(1, 2, size, size, 1), randn(2, 3, size, size, 1)
        net.kernel_fn(x1, x2, get="nngp")
    pooled = [(3, 3), (5, 5)]  # a 2x2 window, stride 1, VALID
    assert probe.seen == [(DIAG, (2, 3, *hw)) for hw in pooled]
    assert net.layouts == (FULL, FULL, FULL, DIAG, DIAG)


def test_erf_in_plan_passes_requirements_on():
    net = build([conv(), erf(), pool(), FLATTEN, dense()])
    assert net.layouts == (FULL, FULL, FULL, DIAG, FLAT)
