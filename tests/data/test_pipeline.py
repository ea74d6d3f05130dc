"""Tests for tfkip.data.pipeline.prepare on the bundled sample."""

import os

import numpy as np
import pytest

from tfkip.data import load_dataset, prepare


def test_prepare_mnist_5k():
    data = prepare("mnist_5k")
    raw = load_dataset("mnist_5k")
    assert data.name == "mnist_5k" and data.num_classes == 10 and data.image_shape == (28, 28, 1)
    assert data.x_train.shape == (4000, 28, 28, 1) and data.x_test.shape == (1000, 28, 28, 1)
    assert data.x_train.dtype == np.float64 and data.y_train.shape == (4000, 10)
    np.testing.assert_array_equal(data.labels_train, raw.y_train)
    np.testing.assert_array_equal(np.argmax(data.y_test, axis=1), data.labels_test)
    np.testing.assert_allclose(data.y_train.max(axis=1), 0.9)
    np.testing.assert_allclose(data.x_train.mean(), 0.0, atol=1e-10)
    np.testing.assert_allclose(data.x_train.std(), 1.0, atol=1e-10)
    np.testing.assert_array_equal(data.preprocessor(raw.x_test), data.x_test)
    # Test images use the train statistics, so their mean is not forced to 0.
    assert abs(data.x_test.mean()) > 1e-6


def test_prepare_zca_float32_from_npz(tmp_path):
    # Strongly correlated pixels: 3 smooth patterns plus a little noise, 6x6x2 images.
    rng = np.random.default_rng(0)
    patterns = rng.normal(size=(3, 72))
    x = rng.normal(size=(300, 3)) @ patterns * 40 + rng.normal(size=(300, 72)) * 4 + 128
    labels = np.arange(300) % 3
    path = os.path.join(str(tmp_path), "toy.npz")
    np.savez(path, images=np.clip(x, 0, 255).astype(np.uint8).reshape(300, 6, 6, 2), labels=labels)
    data = prepare(f"npz:{path}", zca=True, zca_reg=0.1, dtype=np.float32)
    assert data.preprocessor.zca and data.num_classes == 3
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.float32
    assert data.x_train.shape == (240, 6, 6, 2) and data.x_test.shape == (60, 6, 6, 2)

    def spectrum(images):
        flat = images.reshape(images.shape[0], -1).astype(np.float64)
        return np.linalg.eigvalsh(flat.T @ flat / flat.shape[0])[::-1]

    plain = spectrum(prepare(f"npz:{path}").x_train)
    white = spectrum(data.x_train)
    # n > d, so the whitened train covariance is I - reg W^2: every eigenvalue below 1,
    # while the 3 patterns dominate the standardised spectrum.
    assert white[0] < 1.0 < plain[0] / 10
    assert white[0] / np.median(white) < plain[0] / np.median(plain) / 10


def test_prepare_unknown_name():
    with pytest.raises(ValueError, match="mnist_6k"):
        prepare("mnist_6k")
