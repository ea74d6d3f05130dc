"""Shared helpers of the tests/kip tests: fixtures on disk, the bundled data, short runs."""

from __future__ import annotations

import functools
import json
import pathlib

import numpy as np

from tfkip import architectures
from tfkip.data import class_balanced_indices, prepare
from tfkip.kernels.spec import network_from_config
from tfkip.kip import KIPAdam, KIPModel

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "kip"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.npz"))


@functools.cache
def fixture(name: str):
    """``(arrays, network, kernel)`` of ``tests/fixtures/kip/<name>.npz``."""
    with np.load(FIXTURES / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    network = network_from_config(json.loads(str(arrays["arch"])))
    kernel = json.loads(str(arrays["meta"]))["kernel"]
    return arrays, network, kernel


@functools.cache
def mnist(zca: bool = False, dtype=np.float64):
    """The bundled mnist_5k split, preprocessed (shared by every test in the process)."""
    return prepare("mnist_5k", zca=zca, dtype=dtype)


def natural_model(
    data, per_class: int = 1, seed: int = 0, arch=("fc", 1), learning_rate: float = 0.04, **kw
) -> KIPModel:
    """A compiled `KIPModel` on the class-balanced natural support of ``data``."""
    idx = class_balanced_indices(data.labels_train, per_class, seed)
    net = architectures.get(*arch)
    model = KIPModel(net, data.x_train[idx], data.y_train[idx], **kw)
    model.compile(optimizer=KIPAdam(learning_rate))
    model.optimizer.build(model.trainable_variables)
    return model


def max_rel(actual, expected) -> float:
    """``max |actual - expected| / max |expected|``."""
    expected = np.asarray(expected)
    return float(np.max(np.abs(np.asarray(actual) - expected)) / np.max(np.abs(expected)))
