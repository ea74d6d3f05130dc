"""Bad input gets a clear ``ValueError`` that names the bad value."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip.kernels import AvgPool, Conv, Dense, Erf, Flatten, GlobalAvgPool, Relu, serial
from tfkip.kernels.spec import network_from_config

X = np.zeros((2, 4, 4, 1))


def _conv_net():
    return serial(Conv(4, (3, 3), padding="SAME"), Relu(), Flatten(), Dense(1))


def _raises(pattern: str, literal: bool = True):
    return pytest.raises(ValueError, match=re.escape(pattern) if literal else pattern)


# ------------------------------------------------------------------------------ inputs
def test_mismatched_ranks():
    with _raises("x2.shape=(2, 16)"):
        _conv_net().kernel_fn(X, np.zeros((2, 16)))


def test_mismatched_channel_counts():
    with _raises("x2.shape=(3, 4, 4, 3)"):
        _conv_net().kernel_fn(X, np.zeros((3, 4, 4, 3)))


def test_mismatched_image_sizes():
    with _raises("x2.shape=(3, 5, 4, 1)"):
        _conv_net().kernel_fn(X, np.zeros((3, 5, 4, 1)))


@pytest.mark.parametrize(
    "net",
    [
        _conv_net(),
        serial(GlobalAvgPool(), Dense(1)),
        serial(AvgPool((2, 2)), Flatten(), Dense(1)),
    ],
    ids=["conv", "gap", "avgpool"],
)
def test_image_network_given_flat_vectors(net):
    with _raises(r"NHWC image inputs.*spatial shape \(\)", literal=False):
        net.kernel_fn(np.zeros((2, 16)))


def test_pooling_window_larger_than_the_image():
    net = serial(Conv(4, (3, 3), padding="SAME"), Relu(), AvgPool((5, 5)), Flatten(), Dense(1))
    with _raises("window_shape=(5, 5)"):
        net.kernel_fn(X)


def test_pooling_window_larger_than_the_image_deep_in_a_preset():
    net = architectures.get("convnet", 4)  # 8x8 -> 4x4 -> 2x2 -> 1x1, the 4th pool does not fit
    with _raises("spatial shape (1, 1)"):
        net.kernel_fn(np.zeros((2, 8, 8, 3)))


def test_valid_filter_larger_than_the_image():
    net = serial(Conv(4, (5, 5), padding="VALID"), Relu(), Flatten(), Dense(1))
    with _raises("filter_shape=(5, 5)"):
        net.kernel_fn(X)


def test_network_with_spatial_output():
    with _raises("spatial"):
        serial(Conv(1, (3, 3))).kernel_fn(X)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16])
def test_non_float_inputs(dtype):
    name = np.dtype(dtype).name
    with _raises(f"x1.dtype={name}"):
        _conv_net().kernel_fn(X.astype(dtype))
    with _raises(f"x2.dtype={name}"):
        _conv_net().kernel_fn(X, X.astype(dtype))


def test_integer_tensor_inputs():
    with _raises("x1.dtype=int32"):
        _conv_net().kernel_fn(tf.zeros((2, 4, 4, 1), tf.int32), None)


def test_mismatched_dtypes():
    with _raises("x1.dtype=float32, x2.dtype=float64"):
        _conv_net().kernel_fn(X.astype(np.float32), X)


@pytest.mark.parametrize("shape", [(4,), (2, 4, 4, 1, 1)])
def test_inputs_of_the_wrong_rank(shape):
    with _raises(str(shape[1:]) if len(shape) > 2 else "x1.shape=(4,)"):
        _conv_net().kernel_fn(np.zeros(shape))


@pytest.mark.parametrize("get", ["foo", ("nngp", "foo"), ()])
def test_unknown_get(get):
    with _raises(f"get={get!r}"):
        _conv_net().kernel_fn(X, get=get)


@pytest.mark.parametrize("batch_size", [0, -2, (2, 0), (1, 2, 3), 1.5])
def test_bad_batch_size(batch_size):
    with _raises(f"batch_size={batch_size!r}"):
        _conv_net().kernel_fn(X, batch_size=batch_size)


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: Dense(10, W_std=-1.0), "W_std=-1.0"),
        (lambda: Conv(4, (3, 3), W_std=-0.5), "W_std=-0.5"),
        (lambda: Dense(10, W_std=float("nan")), "W_std=nan"),
        (lambda: Dense(10, b_std=-0.1), "b_std=-0.1"),
        (lambda: Conv(4, (3, 3), b_std=-2), "b_std=-2"),
        (lambda: architectures.get("fc", W_std=-1.0), "W_std=-1.0"),
    ],
)
def test_negative_std(make, pattern):
    with _raises(pattern):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Dense(10, parameterization="foo"),
        lambda: Conv(4, (3, 3), parameterization="foo"),
        lambda: architectures.get("conv", parameterization="foo"),
    ],
)
def test_unknown_parameterization(make):
    with _raises("parameterization='foo'"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv(4, (3, 3), padding="FULL"),
        lambda: AvgPool((2, 2), padding="FULL"),
    ],
)
def test_unknown_padding(make):
    with _raises("padding='FULL'"):
        make()


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: Dense(0), "out_dim=0"),
        (lambda: Conv(0, (3, 3)), "out_chan=0"),
        (lambda: Conv(4, (3,)), "filter_shape=(3,)"),
        (lambda: Conv(4, (3, 0)), "filter_shape=(3, 0)"),
        (lambda: Conv(4, (3, 3), strides=(0, 1)), "strides=(0, 1)"),
        (lambda: AvgPool((2, -2)), "window_shape=(2, -2)"),
        (lambda: Erf(a="1"), "a='1'"),
    ],
)
def test_bad_layer_arguments(make, pattern):
    with _raises(pattern):
        make()


# ------------------------------------------------------------------------------ presets
def test_unknown_preset():
    with _raises("name='resnet'"):
        architectures.get("resnet")


@pytest.mark.parametrize("depth", [6, 3, 11])
def test_myrtle_depth(depth):
    with _raises(f"depth={depth}"):
        architectures.get("myrtle", depth)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"name": "fc", "depth": -1}, "depth=-1"),
        ({"name": "conv", "depth": 0}, "depth=0"),
        ({"name": "fc", "activation": "tanh"}, "activation='tanh'"),
        ({"name": "convnet", "readout": "max"}, "readout='max'"),
    ],
)
def test_bad_preset_arguments(kwargs, pattern):
    with _raises(pattern):
        architectures.get(**kwargs)


# ------------------------------------------------------------------------------ serial
@pytest.mark.parametrize(
    "bad, pattern", [("relu", "'relu'"), (3, "3"), (Relu, "Relu"), (None, "None")]
)
def test_non_layers_in_serial(bad, pattern):
    with _raises(pattern):
        serial(Dense(1), bad)


def test_empty_serial():
    with _raises("serial()"):
        serial()


def test_unknown_layer_type_in_config():
    with _raises("type='Foo'"):
        network_from_config([{"type": "Foo"}])
