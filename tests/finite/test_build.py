"""Kernel spec -> Keras model: layer mapping, presets, hooks, saving."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tfkip import architectures
from tfkip import kernels as k
from tfkip.finite import (
    Erf,
    NTKConv,
    NTKDense,
    ZeroPaddedAveragePooling2D,
    build_model,
    to_keras_layer,
)

KW = dict(W_std=1.5, b_std=0.1)


@pytest.mark.parametrize(
    "layer, cls, attrs",
    [
        (k.Dense(7, parameterization="standard", **KW), NTKDense, {"units": 7, "W_std": 1.5}),
        (
            k.Conv(3, (3, 2), (2, 1), "SAME", **KW),
            NTKConv,
            {"filters": 3, "kernel_size": (3, 2), "strides": (2, 1), "padding": "SAME"},
        ),
        (k.Relu(), keras.layers.ReLU, {}),
        (k.Erf(2.0, 0.5, 0.1), Erf, {"a": 2.0, "b": 0.5, "c": 0.1}),
        (k.AvgPool((2, 2)), keras.layers.AveragePooling2D, {"pool_size": (2, 2)}),
        (k.AvgPool((3, 3), (1, 1), "SAME"), ZeroPaddedAveragePooling2D, {"pool_size": (3, 3)}),
        (k.GlobalAvgPool(), keras.layers.GlobalAveragePooling2D, {}),
        (k.Flatten(), keras.layers.Flatten, {}),
    ],
)
def test_to_keras_layer_maps_every_kernel_layer(layer, cls, attrs):
    keras_layer = to_keras_layer(layer)
    assert type(keras_layer) is cls
    for name, value in attrs.items():
        assert getattr(keras_layer, name) == value


def test_width_overrides_hidden_layers_but_not_the_readout():
    net = architectures.get("convnet", 2, num_classes=7, readout="gap")
    model = build_model(net, (8, 8, 3), width=16, seed=0)
    affine = [layer for layer in model.layers if isinstance(layer, (NTKDense, NTKConv))]
    assert [getattr(a, "filters", None) or a.units for a in affine] == [16, 16, 16, 7]
    assert model.output_shape == (None, 7)
    assert to_keras_layer(k.Dense(10), width=3).units == 3


def test_unknown_layer_and_bad_width_are_refused():
    class Odd(k.Relu):
        pass

    class Other(k.Layer):
        def output_shape(self, shape):
            return shape

        def apply(self, kernel):
            return kernel

        def get_config(self):
            return {}

    assert isinstance(to_keras_layer(Odd()), keras.layers.ReLU)
    with pytest.raises(ValueError, match="No finite Keras counterpart.*Other"):
        to_keras_layer(Other())
    with pytest.raises(ValueError, match="width=0"):
        to_keras_layer(k.Dense(3), width=0)


@pytest.mark.parametrize(
    "name, depth, shape",
    [
        ("fc", 2, (8, 8, 1)),
        ("conv", 2, (8, 8, 3)),
        ("convnet", 2, (8, 8, 1)),
        ("convnet3", 3, (16, 16, 3)),
        ("myrtle", 5, (8, 8, 3)),
    ],
)
def test_every_preset_builds_and_runs(name, depth, shape):
    net = architectures.get(name, depth, num_classes=4)
    model = build_model(net, shape, width=8, seed=1)
    out = model(np.zeros((2, *shape), "float32"))
    assert out.shape == (2, 4)
    assert model.count_params() > 0


def test_seed_reproduces_the_initial_network():
    net = architectures.get("conv", 1, num_classes=3)
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype("float32")
    a, b = build_model(net, (6, 6, 2), 8, seed=4), build_model(net, (6, 6, 2), 8, seed=4)
    c = build_model(net, (6, 6, 2), 8, seed=5)
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.allclose(a(x), c(x))


def test_input_shape_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="larger than the images"):
        build_model(architectures.get("convnet", 3), (4, 4, 1), width=4)
    with pytest.raises(ValueError, match="spatial"):
        build_model(k.serial(k.Conv(2, (3, 3)), k.Dense(2)), (5, 5, 1))
    with pytest.raises(ValueError, match="Network"):
        build_model([k.Dense(2)], (3,))


def test_save_and_load_round_trip_predicts_identically(tmp_path):
    net = k.serial(
        k.Conv(6, (3, 3), padding="SAME", parameterization="ntk", **KW),
        k.Erf(1.5, 0.7, 0.1),
        k.AvgPool((3, 3), (2, 2), "SAME"),
        k.Conv(6, (2, 2), parameterization="standard", W_std=1.2, b_std=None),
        k.Relu(),
        k.AvgPool((2, 2)),
        k.Flatten(),
        k.Dense(5, parameterization="standard", **KW),
    )
    model = build_model(net, (9, 9, 2), width=6, seed=0, name="roundtrip")
    x = np.random.default_rng(1).standard_normal((3, 9, 9, 2)).astype("float32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(a) for a in loaded.layers] == [type(a) for a in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # Equal up to JSON's tuple -> list.
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(model.get_config()))
