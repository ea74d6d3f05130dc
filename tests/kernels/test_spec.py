"""`tfkip.kernels.spec` and `Network.get_config`: the JSON layer list round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfkip import architectures
from tfkip.kernels import AvgPool, Conv, Dense, Erf, GlobalAvgPool, Relu, serial
from tfkip.kernels.spec import network_from_config

from .helpers import FIXTURE_NAMES, fixture_network, load_fixture, randn, rel_err


@pytest.mark.parametrize("name", ["fc_d2_erf__flat784", "convnet_pool_d3__img8x8x3"])
def test_fixture_arch_round_trips(name):
    net = fixture_network(name)
    arch = load_fixture(name)["arch"]
    assert json.loads(json.dumps(net.get_config())) == arch


def test_every_fixture_arch_rebuilds():
    for name in FIXTURE_NAMES:
        net = fixture_network(name)
        assert [type(layer).__name__ for layer in net.layers] == [
            layer["type"] for layer in load_fixture(name)["arch"]
        ]


@pytest.mark.parametrize(
    "net",
    [
        architectures.get("myrtle", 7, parameterization="standard", b_std=None),
        serial(
            Conv(3, (2, 3), strides=(2, 1), padding="same", W_std=1.5),
            Erf(2.0, 0.5, 0.3),
            AvgPool((2, 2), (1, 1), "SAME"),
            GlobalAvgPool(),
            Dense(4),
        ),
    ],
    ids=["myrtle7", "mixed"],
)
def test_get_config_round_trips(net):
    config = json.loads(json.dumps(net.get_config()))
    again = network_from_config(config)
    assert again.layers == net.layers and again.get_config() == config
    x1, x2 = randn(0, 2, 4, 4, 2), randn(1, 2, 4, 4, 2)
    a, b = net.kernel_fn(x1, x2), again.kernel_fn(x1, x2)
    assert rel_err(a.ntk, b.ntk.numpy()) == 0 and rel_err(a.nngp, b.nngp.numpy()) == 0


def test_nested_serial_flattens():
    a = serial(Conv(4, (3, 3), padding="SAME", b_std=0.1), Relu())
    b = serial(GlobalAvgPool(), Dense(1, 2.0, 0.2))
    nested, flat = serial(a, b), serial(*a.layers, *b.layers)
    assert nested.layers == flat.layers and nested.layouts == flat.layouts
    x = randn(2, 3, 4, 4, 1)
    np.testing.assert_array_equal(
        nested.kernel_fn(x, None, get="ntk").numpy(), flat.kernel_fn(x, None, get="ntk").numpy()
    )
