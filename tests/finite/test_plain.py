"""model.keras: the trained (centred) network as built-in Keras layers, loadable anywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tfkip import architectures
from tfkip import kernels as k
from tfkip.finite import build_model, plain_keras_model
from tfkip.transfer import TrainConfig, fit_network

# Loads a .keras file and predicts, in a process that never imports tfkip.
_LOAD = """
import sys, numpy as np, keras
model = keras.models.load_model(sys.argv[1])
assert not any(m == "tfkip" or m.startswith("tfkip.") for m in sys.modules), "tfkip imported"
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
print(model.name, len(model.trainable_weights), len(model.non_trainable_weights))
"""


def _load_elsewhere(path, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    out = tmp_path / "pred.npy"
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path), str(tmp_path / "x.npy"), str(out)],
        **dict(capture_output=True, text=True, env=env, timeout=180, cwd=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out), proc.stdout.split()


def test_exported_centred_model_predicts_as_the_trained_wrapper_in_plain_keras(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((10, 8, 8, 1)).astype("float32")
    labels = (np.eye(10)[np.arange(10)] - 0.1).astype("float32")
    config = TrainConfig(architecture="convnet", depth=1, width=4, steps=5, verbose=0)
    fitted = fit_network(images, labels, config)
    assert fitted.initial is not None and fitted.config.center
    x = rng.standard_normal((7, 8, 8, 1)).astype("float32")
    expected = fitted.wrapper.predict(x, verbose=0)
    assert np.abs(expected).max() > 1e-3  # trained away from the centred start (0)
    path = tmp_path / "model.keras"
    fitted.export().save(path)
    got, (name, trainable, frozen) = _load_elsewhere(path, x, tmp_path)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert name == "finite_centered" and int(trainable) == int(frozen) == 6  # 3 affine layers


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_plain_model_equals_the_tfkip_model_layer_by_layer(parameterization):
    """SAME-padded average pooling, strides and both parameterizations fold exactly."""
    net = k.serial(
        k.Conv(6, (3, 3), (2, 1), "SAME", 1.3, 0.2, parameterization),
        k.Relu(),
        k.AvgPool((3, 3), (1, 1), "SAME"),
        k.Conv(4, (2, 2), None, "VALID", 1.1, None, parameterization),
        k.Relu(),
        k.Flatten(),
        k.Dense(3, 1.5, 0.1, parameterization),
    )
    model = build_model(net, (7, 5, 2), seed=1)
    plain = plain_keras_model(model)
    names = {type(layer).__name__ for layer in plain.layers}
    assert names <= {"InputLayer", "Conv2D", "ReLU", "ZeroPadding2D", "AveragePooling2D"} | {
        "Flatten",
        "Dense",
    }
    x = np.random.default_rng(1).standard_normal((3, 7, 5, 2)).astype("float32")
    np.testing.assert_allclose(plain(x), model(x), rtol=1e-5, atol=1e-6)
    initial = build_model(net, (7, 5, 2), seed=1)
    for v in model.trainable_variables:
        v.assign(v * 1.1)
    centred = plain_keras_model(model, initial)
    np.testing.assert_allclose(centred(x), model(x) - initial(x), rtol=1e-5, atol=1e-6)
    assert not centred.get_layer("initial").trainable


def test_plain_export_refuses_a_nested_model():
    net = build_model(architectures.get("fc", 1, num_classes=2), (3,), 4, seed=0)
    import keras

    inputs = keras.Input((3,))
    wrapped = keras.Model(inputs, net(inputs))
    with pytest.raises(ValueError, match="Received: nested model"):
        plain_keras_model(wrapped)
