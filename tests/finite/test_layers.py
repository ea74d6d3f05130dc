"""tfkip.finite layers: validation, parameterizations, pooling semantics, get_config."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tfkip import kernels as k
from tfkip.finite import Erf, NTKConv, NTKDense, ZeroPaddedAveragePooling2D

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: NTKDense(-1), "units=-1"),
        (lambda: NTKDense(4, W_std=-1.0), "W_std=-1.0"),
        (lambda: NTKDense(4, b_std=float("nan")), "b_std=nan"),
        (lambda: NTKDense(4, parameterization="mup"), "parameterization='mup'"),
        (lambda: NTKDense(4, seed=-3), "seed=-3"),
        (lambda: NTKConv(0, (3, 3)), "filters=0"),
        (lambda: NTKConv(4, (3, 0)), "kernel_size=(3, 0)"),
        (lambda: NTKConv(4, 3, padding="FULL"), "padding='FULL'"),
        (lambda: ZeroPaddedAveragePooling2D(2, strides=(1, -1)), "strides=(1, -1)"),
        (lambda: Erf(b=-1.0), "b=-1.0"),
        (lambda: Erf(a="x"), "a='x'"),
    ],
)
def test_bad_arguments_name_the_value(make, message):
    with pytest.raises(
        ValueError, match=f"Received: .*{message.replace('(', '.').replace(')', '.')}"
    ):
        make()


@pytest.mark.parametrize(
    "layer",
    [
        NTKDense(5, W_std=1.5, b_std=0.2, parameterization="standard", seed=3, name="d"),
        NTKDense(5, W_std=2.0, b_std=None),
        NTKConv(4, (3, 2), strides=(2, 1), padding="same", W_std=1.2, b_std=0.0, seed=1),
        ZeroPaddedAveragePooling2D((3, 3), (2, 2), "SAME"),
        Erf(a=2.0, b=0.5, c=-0.1),
    ],
)
def test_get_config_round_trips(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # The registered name resolves through Keras' serialization too.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is type(layer) and again.get_config() == config


def test_ntk_and_standard_compute_the_same_function_for_matched_weights():
    """'ntk' weights W, b equal 'standard' weights W_std/sqrt(fan_in) W, b_std b."""
    x = RNG.standard_normal((3, 6, 6, 2)).astype("float32")
    for cls, args, fan_in in ((NTKConv, (4, (3, 3), None, "SAME"), 18), (NTKDense, (4,), 2)):
        ntk = cls(*args, W_std=1.7, b_std=0.3, parameterization="ntk", seed=0)
        std = cls(*args, W_std=1.7, b_std=0.3, parameterization="standard", seed=0)
        ntk.build(x.shape)
        std.build(x.shape)
        std.kernel.assign(ntk.kernel * 1.7 / math.sqrt(fan_in))
        std.bias.assign(ntk.bias * 0.3)
        np.testing.assert_allclose(ntk(x), std(x), rtol=1e-5, atol=1e-5)


def test_initial_weight_statistics():
    ntk = NTKDense(400, W_std=2.0, b_std=0.5, parameterization="ntk", seed=0)
    std = NTKDense(400, W_std=2.0, b_std=0.5, parameterization="standard", seed=0)
    for layer in (ntk, std):
        layer.build((None, 100))
    assert abs(np.std(ntk.kernel) - 1.0) < 0.02 and abs(np.std(ntk.bias) - 1.0) < 0.1
    assert abs(np.std(std.kernel) - 0.2) < 0.004 and abs(np.std(std.bias) - 0.5) < 0.05
    assert std.init_stddevs() == (0.2, 0.5) and ntk.init_stddevs() == (1.0, 1.0)
    no_bias = NTKDense(3, b_std=None)
    no_bias.build((None, 2))
    assert no_bias.bias is None and len(no_bias.trainable_variables) == 1


def test_seeds_make_weights_reproducible_and_kernel_bias_independent():
    a, b, c = NTKDense(8, b_std=1.0, seed=5), NTKDense(8, b_std=1.0, seed=5), NTKDense(8, seed=6)
    for layer in (a, b, c):
        layer.build((None, 8))
    np.testing.assert_array_equal(a.kernel, b.kernel)
    assert not np.allclose(a.kernel, c.kernel)
    assert not np.allclose(np.asarray(a.kernel)[0], np.asarray(a.bias))


def test_zero_padded_pooling_divides_by_the_full_window():
    x = np.ones((1, 3, 3, 1), "float32")
    out = ZeroPaddedAveragePooling2D(2, 1, "SAME")(x)[0, :, :, 0].numpy()
    # TF 'SAME' pads (0 before, 1 after); windows reaching the padding see zeros.
    np.testing.assert_allclose(out, [[1.0, 1.0, 0.5], [1.0, 1.0, 0.5], [0.5, 0.5, 0.25]])
    keras_out = keras.layers.AveragePooling2D(2, 1, "same")(x)[0, :, :, 0].numpy()
    np.testing.assert_allclose(keras_out, np.ones((3, 3)))  # why we need our own layer
    y = RNG.standard_normal((2, 7, 6, 3)).astype("float32")
    np.testing.assert_allclose(
        ZeroPaddedAveragePooling2D((2, 3), (2, 2), "VALID")(y),
        keras.layers.AveragePooling2D((2, 3), (2, 2), "valid")(y),
        rtol=1e-6,
    )


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_pooling_matches_the_kernel_exactly(padding):
    """For a linear readout the NNGP is exact: K(x, x') = <pool x, pool x'> / d."""
    x = RNG.standard_normal((3, 7, 7, 2))
    net = k.serial(
        k.AvgPool((3, 3), (2, 2), padding), k.Flatten(), k.Dense(1, W_std=1.0, b_std=None)
    )
    pooled = ZeroPaddedAveragePooling2D((3, 3), (2, 2), padding, dtype="float64")(x).numpy()
    flat = pooled.reshape(3, -1)
    expected = flat @ flat.T / flat.shape[1]
    np.testing.assert_allclose(net.kernel_fn(x, None, "nngp"), expected, rtol=1e-10)


def test_erf_and_conv_shapes():
    x = RNG.standard_normal((2, 5, 5, 3)).astype("float32")
    expected = 2.0 * np.vectorize(math.erf)(0.5 * x.astype(np.float64)) + 0.1
    np.testing.assert_allclose(Erf(2.0, 0.5, 0.1)(x), expected, rtol=1e-5, atol=1e-6)
    out = NTKConv(4, (3, 3), strides=(2, 2), padding="VALID")(x)
    assert out.shape == (2, 2, 2, 4)
    layer = NTKConv(4, (3, 3), strides=2, padding="SAME")
    assert layer.compute_output_shape((None, 5, 5, 3)) == (None, 3, 3, 4)
    with pytest.raises(ValueError, match="does not fit"):
        NTKConv(4, (7, 7)).compute_output_shape((None, 5, 5, 3))
