"""A finite network trained from a TFRecord export equals one trained from the npz."""

import json
import os

import numpy as np
import pytest

from tfkip import data
from tfkip.sets import load_run, write_kip_npz, write_tfrecord
from tfkip.transfer import TrainConfig, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    prepared = data.prepare("mnist_5k", dtype=np.float32)
    idx = data.class_balanced_indices(prepared.labels_train, 1, seed=0)
    path = str(tmp_path_factory.mktemp("distill") / "run")
    os.makedirs(path)
    np.savez(
        os.path.join(path, "distilled.npz"),
        images=prepared.x_train[idx],
        labels=prepared.y_train[idx],
    )
    config = {
        "dataset": "mnist_5k",
        "architecture": "fc",
        "depth": 1,
        "zca": False,
        "seed": 0,
        "dtype": "float32",
        "preprocessing": prepared.preprocessor.get_config(),
    }
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    prepared.preprocessor.save(os.path.join(path, "preprocessing.npz"))
    return path


def test_tfrecord_and_npz_exports_train_the_same_network(run_dir, tmp_path):
    images, labels, metadata = load_run(run_dir)
    npz_path = write_kip_npz(str(tmp_path / "npz"), images, labels, metadata)
    record_path = str(tmp_path / "tfrecord" / "distilled.tfrecord")
    os.makedirs(os.path.dirname(record_path))
    write_tfrecord(record_path, images, labels, metadata, num_shards=2)

    results = {}
    for name, source in (("npz", npz_path), ("tfrecord", record_path)):
        config = TrainConfig(
            distilled=source, dataset="mnist_5k", width=32, steps=8, seed=1, verbose=0
        )
        results[name] = train(config)
    for key in ("test_accuracy", "test_loss", "learning_rate"):
        assert results["tfrecord"][key] == results["npz"][key], key

    # The comparison can fail: a slightly different set trains a different network.
    other = write_kip_npz(str(tmp_path / "other"), images * 1.01, labels, metadata)
    config = TrainConfig(distilled=other, dataset="mnist_5k", width=32, steps=8, seed=1, verbose=0)
    assert train(config)["test_loss"] != results["npz"]["test_loss"]
