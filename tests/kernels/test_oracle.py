"""tfkip against the independent NumPy oracle (`oracle.py`) on held-out configurations.

The oracle tracks the full (N, N, H, W, H, W) covariance with explicit taps and pooling
matrices. It is first validated against the neural-tangents fixtures, then compared with
tfkip (float64, rtol 1e-10 of each array's scale) on configurations none of the fixtures
covers: other W_std/b_std (including b_std=None), filter shapes, strides, VALID padding,
non-square images, deeper nets, Erf(a, b, c), pooling with strides 1 and SAME, pooling then
Conv then Flatten, Dense on images, the 'standard' parameterization on conv and pooled nets,
and every preset of `tfkip.architectures` (whose layer lists are written out here from the
issue, independently of the presets' code).
"""

from __future__ import annotations

import pytest

from tfkip import architectures
from tfkip.kernels import AvgPool, Conv, Flatten, GlobalAvgPool, Relu, serial

from . import oracle
from .helpers import (
    FIXTURE_NAMES,
    FLATTEN,
    GAP,
    RELU,
    SQRT2,
    assert_rel,
    assert_self_kernel,
    build,
    conv,
    dense,
    erf,
    load_fixture,
    pool,
    randn,
)

GETS = ("nngp", "ntk")

# The oracle on every fixture but the slow pooled 16x16 ones.
ORACLE_FIXTURES = [
    n
    for n in FIXTURE_NAMES
    if "16x16" not in n or n.startswith(("conv_flat_d2_std", "conv_gap_d1"))
]


@pytest.mark.parametrize("name", ORACLE_FIXTURES)
def test_oracle_reproduces_fixture(name):
    z = load_fixture(name)
    out = oracle.kernels(z["arch"], z["x1"], z["x2"])
    for g in GETS:
        assert_rel(out[g], z[g], 1e-10, f"oracle {name} {g}")
        assert_self_kernel(out[f"{g}_11"], z[f"{g}_11"], 1e-10, 1e-7, f"oracle {name} {g}_11")


def _compare(net, layers, x1, x2, rtol=1e-10):
    expected = oracle.kernels(layers, x1, x2)
    cross = net.kernel_fn(x1, x2, get=GETS)
    own = net.kernel_fn(x1, None, get=GETS)
    for g in GETS:
        assert_rel(getattr(cross, g), expected[g], rtol, f"cross {g}")
        assert_rel(getattr(own, g), expected[f"{g}_11"], rtol, f"self {g}")


def _flat(d=9):
    return randn(1, 4, d), randn(2, 3, d)


def _img(h, w, c):
    return randn(3, 3, h, w, c), randn(4, 2, h, w, c)


STD = {"parameterization": "standard"}

HELD_OUT = {
    # ---- fully connected
    "fc_w13_bnone": (
        [dense(W_std=1.3, b_std=None), RELU, dense(W_std=0.7, b_std=0.5), RELU, dense(b_std=None)],
        _flat(20),
    ),
    "fc_deep6": ([dense(), RELU] * 6 + [dense()], _flat()),
    "fc_erf_a2_b05_c03": (
        [dense(b_std=0.3), erf(2.0, 0.5, 0.3), dense(), erf(2.0, 0.5, 0.3), dense()],
        _flat(),
    ),
    "fc_standard_bnone_b0": (
        [
            dense(out_dim=7, b_std=None, **STD),
            RELU,
            dense(out_dim=5, b_std=0.0, **STD),
            RELU,
            dense(W_std=0.8, **STD),
        ],
        _flat(),
    ),
    "fc_relu_on_inputs": ([RELU, dense(), RELU, dense()], _flat()),
    "fc_flatten_images_erf": (
        [FLATTEN, dense(W_std=0.9, b_std=0.4), erf(), dense()],
        _img(5, 3, 2),
    ),
    # ---- conv with a Flatten readout (per-position covariances)
    "conv_5x5_9x6": ([conv((5, 5), W_std=1.7, b_std=0.2), RELU, FLATTEN, dense()], _img(9, 6, 2)),
    "conv_1x3_then_2x2_7x5": (
        [conv((1, 3)), RELU, conv((2, 2)), RELU, FLATTEN, dense()],
        _img(7, 5, 3),
    ),
    "conv_strided_same_9x6": (
        [
            conv((3, 3), (2, 2), "SAME"),
            RELU,
            conv((2, 2), (2, 1), "SAME", b_std=None),
            RELU,
            FLATTEN,
            dense(),
        ],
        _img(9, 6, 2),
    ),
    "conv_valid_8x7": (
        [
            conv((3, 3), padding="VALID"),
            RELU,
            conv((3, 2), (1, 2), "VALID"),
            RELU,
            FLATTEN,
            dense(),
        ],
        _img(8, 7, 1),
    ),
    "conv_valid_strided_b0": (
        [
            conv((2, 3), (2, 2), "VALID", W_std=1.1, b_std=0.0),
            RELU,
            conv((2, 2), (1, 1), "VALID"),
            RELU,
            FLATTEN,
            dense(),
        ],
        _img(9, 8, 2),
    ),
    "conv_filter_larger_than_image_same": (
        [conv((5, 5)), RELU, FLATTEN, dense()],
        _img(4, 3, 2),
    ),
    "conv_deep5": ([conv(), RELU] * 5 + [FLATTEN, dense()], _img(6, 5, 2)),
    "conv_erf_flatten": (
        [conv(), erf(2.0, 0.5, 0.3), conv((2, 2)), RELU, FLATTEN, dense()],
        _img(6, 6, 2),
    ),
    "conv_linear": (
        [conv(b_std=None), conv((2, 2), padding="VALID"), FLATTEN, dense()],
        _img(5, 5, 2),
    ),
    "relu_on_input_images": ([RELU, conv(), RELU, FLATTEN, dense()], _img(5, 4, 2)),
    "dense_on_images": (
        [conv(), RELU, dense(W_std=1.2, b_std=0.3), RELU, FLATTEN, dense()],
        _img(6, 5, 3),
    ),
    "dense_on_images_standard": (
        [
            conv(out_chan=6, **STD),
            RELU,
            dense(out_dim=5, **STD),
            RELU,
            FLATTEN,
            dense(**STD),
        ],
        _img(5, 4, 3),
    ),
    "conv_standard_flatten": (
        [
            conv((3, 2), (2, 1), "SAME", b_std=None, out_chan=6, **STD),
            RELU,
            conv(out_chan=4, **STD),
            RELU,
            FLATTEN,
            dense(**STD),
        ],
        _img(7, 6, 2),
    ),
    # ---- pooling (full position-by-position covariances)
    "gap_valid_strided_8x7": (
        [conv((3, 3), padding="VALID"), RELU, conv((3, 2), (1, 2), "VALID"), RELU, GAP, dense()],
        _img(8, 7, 1),
    ),
    "pool_s1_same_then_3x3_7x5": (
        [
            conv(),
            RELU,
            pool((2, 2), (1, 1), "SAME"),
            conv(),
            RELU,
            pool((3, 3), (2, 2), "VALID"),
            FLATTEN,
            dense(),
        ],
        _img(7, 5, 2),
    ),
    "pool_same_strided_odd": (
        [conv(), RELU, pool((3, 3), (2, 2), "SAME"), conv((2, 2)), RELU, GAP, dense()],
        _img(7, 5, 1),
    ),
    "pool_then_conv_then_flatten": (
        [conv(b_std=None), RELU, pool(), conv(), RELU, FLATTEN, dense()],
        _img(8, 6, 2),
    ),
    "pool_then_relu_then_flatten": (
        [conv(), RELU, pool(), RELU, FLATTEN, dense()],
        _img(6, 6, 1),
    ),
    "pool_first_2x3": ([pool((2, 3), (1, 2)), conv(), RELU, GAP, dense()], _img(6, 7, 2)),
    "gap_only": ([GAP, dense(W_std=0.6, b_std=None)], _img(4, 5, 3)),
    "erf_pool_gap": (
        [conv(), erf(2.0, 0.5, 0.3), pool((2, 2), (1, 1)), conv(), erf(), GAP, dense()],
        _img(5, 5, 2),
    ),
    "pool_standard_gap": (
        [
            conv(out_chan=5, **STD),
            RELU,
            pool(),
            conv(b_std=None, out_chan=3, **STD),
            RELU,
            GAP,
            dense(**STD),
        ],
        _img(6, 6, 2),
    ),
    "pool_standard_flatten": (
        [
            conv(out_chan=4, **STD),
            RELU,
            pool((2, 2), (1, 1), "VALID"),
            conv(b_std=0.0, out_chan=6, **STD),
            RELU,
            pool(),
            FLATTEN,
            dense(**STD),
        ],
        _img(7, 7, 1),
    ),
    "pool_same_window_larger_than_image": (
        [conv(), RELU, pool((5, 5), (1, 1), "SAME"), conv(), RELU, FLATTEN, dense()],
        _img(3, 4, 1),
    ),
    "conv_1x1_stride2_subsamples": (
        [conv((1, 1), (2, 2), "VALID"), RELU, conv(), RELU, GAP, dense()],
        _img(7, 6, 2),
    ),
    "one_row_images": (
        [
            conv((1, 3)),
            RELU,
            pool((1, 2), (1, 2)),
            conv((1, 2), padding="VALID"),
            RELU,
            GAP,
            dense(),
        ],
        _img(1, 6, 2),
    ),
    "double_flatten": ([conv(), RELU, FLATTEN, FLATTEN, dense()], _img(4, 4, 2)),
    "gap_then_flatten": ([conv(), RELU, GAP, FLATTEN, dense(), RELU, dense()], _img(4, 4, 2)),
    "dense_relu_on_images_then_flatten": (
        [dense(b_std=0.2), RELU, FLATTEN, dense()],
        _img(4, 3, 3),
    ),
    "deep_pooled": (
        [conv(), RELU] * 3 + [pool()] + [conv(), RELU] * 2 + [GAP, dense()],
        _img(6, 6, 1),
    ),
}


@pytest.mark.parametrize("name", sorted(HELD_OUT))
def test_held_out_configuration(name):
    layers, (x1, x2) = HELD_OUT[name]
    _compare(build(layers), layers, x1, x2)


# ------------------------------------------------------------------------------ presets
MYRTLE_BLOCKS = {5: (1, 1, 1), 7: (1, 2, 2), 10: (2, 3, 3)}


def expected_preset(
    name,
    depth,
    width=1024,
    num_classes=10,
    W_std=SQRT2,
    b_std=0.1,
    parameterization="ntk",
    activation="relu",
    readout=None,
):
    """The layer lists of the issue / kip_spec (3x3 SAME convs, 2x2/2 VALID pools)."""
    kw = {"W_std": W_std, "b_std": b_std, "parameterization": parameterization}
    act = RELU if activation == "relu" else erf()

    def block():
        return [conv(out_chan=width, **kw), act]

    head = [dense(out_dim=num_classes, **kw)]
    if name == "fc":
        return [FLATTEN] + [dense(out_dim=width, **kw), act] * depth + head
    if name == "conv":
        return block() * depth + [FLATTEN] + head
    if name in ("convnet", "convnet3"):
        layers = block() if name == "convnet" else []
        for _ in range(depth):
            layers += block() + [pool()]
        return layers + [GAP if readout == "gap" else FLATTEN] + head
    assert name == "myrtle"
    blocks = MYRTLE_BLOCKS[depth]
    layers = block()
    for i, repeats in enumerate(blocks):
        layers += block() * repeats
        if i < len(blocks) - 1:
            layers += [pool()]
    return layers + [GAP] + head


PRESETS = {
    "fc_d0_flat": (("fc", 0), {}, _flat()),
    "fc_d3_images": (("fc", 3), {}, _img(4, 3, 2)),
    "fc_d1_standard": (("fc", 1), {"parameterization": "standard", "width": 16}, _flat()),
    "fc_d2_erf_bnone": (("fc", 2), {"activation": "erf", "b_std": None}, _flat()),
    "conv_d1": (("conv", 1), {}, _img(5, 4, 2)),
    "conv_d3_w1": (("conv", 3), {"W_std": 1.0, "b_std": 0.3}, _img(6, 5, 1)),
    "conv_d2_standard": (("conv", 2), {"parameterization": "standard", "width": 8}, _img(5, 5, 2)),
    "convnet_d1": (("convnet", 1), {}, _img(4, 4, 2)),
    "convnet_d2_6x5": (("convnet", 2), {}, _img(6, 5, 1)),
    "convnet_d3_8x8": (("convnet", 3), {}, _img(8, 8, 3)),
    "convnet_d2_gap": (("convnet", 2), {"readout": "gap"}, _img(4, 5, 1)),
    "convnet_d1_standard": (
        ("convnet", 1),
        {"parameterization": "standard", "width": 8},
        _img(4, 4, 2),
    ),
    "convnet_d1_erf_bnone": (("convnet", 1), {"activation": "erf", "b_std": None}, _img(4, 4, 1)),
    "convnet3_d3_8x8": (("convnet3", 3), {}, _img(8, 8, 1)),
    "convnet3_d2_5x7": (("convnet3", 2), {}, _img(5, 7, 2)),
    "convnet3_d2_gap": (("convnet3", 2), {"readout": "gap"}, _img(4, 4, 1)),
    "myrtle5_8x8": (("myrtle", 5), {}, _img(8, 8, 1)),
    "myrtle7_8x8": (("myrtle", 7), {}, _img(8, 8, 1)),
    "myrtle10_8x8": (("myrtle", 10), {}, _img(8, 8, 1)),
    "myrtle5_4x4_standard": (
        ("myrtle", 5),
        {"parameterization": "standard", "width": 4},
        _img(4, 4, 2),
    ),
}


@pytest.mark.parametrize("case", sorted(PRESETS))
def test_preset(case):
    (name, depth), kwargs, (x1, x2) = PRESETS[case]
    net = architectures.get(name, depth, **kwargs)
    layers = expected_preset(name, depth, **kwargs)
    assert [type(layer).__name__ for layer in net.layers] == [layer["type"] for layer in layers]
    _compare(net, layers, x1, x2)


def test_preset_defaults():
    """W_std = sqrt(2), b_std = 0.1, 'ntk', ReLU and the default depths of the issue."""
    x1, x2 = _img(4, 4, 1)
    for name, depth in (("fc", 1), ("conv", 2), ("convnet", 3), ("convnet3", 3), ("myrtle", 5)):
        net = architectures.get(name)
        assert [type(layer).__name__ for layer in net.layers] == [
            layer["type"] for layer in expected_preset(name, depth)
        ], name
    x1, x2 = _img(8, 8, 1)
    _compare(architectures.get("convnet3"), expected_preset("convnet3", 3), x1, x2)


# ------------------------------------------------------------------- neural-tangents defaults
def test_conv_defaults_are_stride_1_and_valid_as_in_neural_tangents():
    x1, x2 = _img(6, 5, 2)
    layers = [
        {"type": "Conv", "out_chan": 4, "filter_shape": [3, 2], "W_std": 1.0, "b_std": None},
        RELU,
        FLATTEN,
        dense(),
    ]
    net = serial(Conv(4, (3, 2)), Relu(), Flatten(), build([dense()]))
    _compare(net, layers, x1, x2)


def test_avgpool_default_strides_are_1_as_in_neural_tangents():
    """NT: ``AvgPool(window_shape, strides=None)``, "None corresponds to a stride of (1, 1)"."""
    x1, x2 = _img(5, 4, 1)
    layers = [conv(), RELU, {"type": "AvgPool", "window_shape": [2, 2]}, GAP, dense()]
    net = serial(build([conv(), RELU]), AvgPool((2, 2)), GlobalAvgPool(), build([dense()]))
    _compare(net, layers, x1, x2)
    assert AvgPool((2, 2)).strides == (1, 1)
