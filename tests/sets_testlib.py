"""Shared tiny arrays, metadata and fake workdirs for the tfkip.sets tests."""

from __future__ import annotations

import json
import os

import numpy as np

from tfkip.sets import DistilledMetadata

SHAPE = (4, 4, 3)
NUM_CLASSES = 3


def make_arrays(n=6, shape=SHAPE, num_classes=NUM_CLASSES, dtype=np.float32, label_dtype=None):
    """Random images/labels, with awkward bit patterns (-0.0, inf, denormal, NaN payload)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(n, *shape)).astype(dtype)
    flat = images.reshape(-1)
    flat[0], flat[1], flat[2] = -0.0, np.inf, np.finfo(dtype).smallest_subnormal
    uint = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}[np.dtype(dtype)]
    flat[3:4].view(uint)[0] = {np.uint32: 0x7FC00123, np.uint64: 0x7FF8000000000123}[uint]
    labels = rng.normal(size=(n, num_classes)).astype(label_dtype or dtype)
    labels[np.arange(n), np.arange(n) % num_classes] += 5.0  # class i % C
    return images, labels


def bits(x: np.ndarray) -> np.ndarray:
    """The raw bit pattern of a float array, for exact comparisons."""
    return x.view({4: np.uint32, 8: np.uint64, 2: np.uint16}[x.dtype.itemsize])


def assert_bit_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(bits(a), bits(b))


def make_preprocessing(zca: bool, shape=SHAPE) -> dict:
    return {
        "pixel_scale": 255.0,
        "mean": [0.4, 0.5, 0.6][: shape[-1]],
        "std": [0.2, 0.25, 0.3][: shape[-1]],
        "zca": zca,
        "zca_reg": 0.1,
        "image_shape": list(shape),
    }


def make_zca_matrix(shape=SHAPE) -> np.ndarray:
    d = int(np.prod(shape))
    a = np.random.default_rng(1).normal(size=(d, d)) / np.sqrt(d)
    return a @ a.T + np.eye(d)


def make_metadata(images, labels, zca=False, **fields) -> DistilledMetadata:
    base = {
        "dataset": "cifar10",
        "architecture": "ConvNet",
        "kernel": "ntk",
        "step": 1000,
        "learned_labels": True,
        "augment": False,
        "zca": zca,
        "test_accuracy": 0.5,
        "test_mse": 0.04,
        "preprocessing": make_preprocessing(zca, images.shape[1:]),
    }
    base.update(fields)
    return DistilledMetadata.infer(images, labels, **base)


def write_workdir(workdir: str, zca: bool = True, dtype=np.float32) -> tuple:
    """A fake distillation workdir: distilled.npz, config.json, preprocessing.npz, metrics."""
    os.makedirs(workdir, exist_ok=True)
    images, labels = make_arrays(dtype=dtype)
    np.savez(os.path.join(workdir, "distilled.npz"), images=images, labels=labels)
    prep = make_preprocessing(zca)
    config = {
        "dataset": "cifar10",
        "architecture": "ConvNet",
        "depth": 3,
        "kernel": "ntk",
        "support_per_class": 2,
        "learn_labels": True,
        "zca": zca,
        "augment": False,
        "seed": 0,
        "dtype": np.dtype(dtype).name,
        "preprocessing": prep,
    }
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config, f)
    arrays = {
        "mean": np.asarray(prep["mean"]),
        "std": np.asarray(prep["std"]),
        "pixel_scale": np.float64(255.0),
        "zca_reg": np.float64(0.1),
        "image_shape": np.asarray(SHAPE, np.int64),
    }
    if zca:
        arrays["zca_matrix"] = make_zca_matrix()
    np.savez(os.path.join(workdir, "preprocessing.npz"), **arrays)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        for step, acc in ((20, 0.3), (40, 0.45)):
            row = {"step": step, "test_accuracy": acc, "test_mse": 0.04, "train_loss": 0.1}
            f.write(json.dumps(row) + "\n")
    return images, labels
