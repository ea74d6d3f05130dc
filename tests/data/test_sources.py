"""Tests for tfkip.data.sources: bundled sample, npz layouts, TFDS, validation."""

import os
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfkip.data import RawDataset, load_dataset, sources


def _save_npz(tmp_path, name="d.npz", **arrays):
    path = os.path.join(str(tmp_path), name)
    np.savez(path, **arrays)
    return path


def _images(n, h=3, w=3, c=1, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, c)).astype(dtype)


# ----------------------------------------------------------------------------- mnist_5k


def test_mnist_5k_split_first_400_per_class_are_train():
    ds = load_dataset("mnist_5k")
    assert ds.name == "mnist_5k"
    assert ds.num_classes == 10
    assert ds.x_train.shape == (4000, 28, 28, 1) and ds.x_test.shape == (1000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [100] * 10)
    with np.load(sources._MNIST_5K_PATH) as raw:
        images, labels = raw["images"], raw["labels"]
    for c in (0, 3, 9):
        of_class = images[labels == c]
        np.testing.assert_array_equal(ds.x_train[ds.y_train == c], of_class[:400])
        np.testing.assert_array_equal(ds.x_test[ds.y_test == c], of_class[400:])


# ----------------------------------------------------------------------------- npz


def test_npz_keras_layout_adds_channel_and_argmaxes_one_hot(tmp_path):
    y_train = np.array([0, 2, 1, 2])
    y_test = np.array([1, 0])
    path = _save_npz(
        tmp_path,
        x_train=_images(4)[..., 0],  # rank 3: channel axis must be added
        y_train=np.eye(3)[y_train] - 1.0 / 3,  # centred one-hot rows
        x_test=_images(2, seed=1)[..., 0],
        y_test=np.eye(3)[y_test],
    )
    ds = load_dataset(f"npz:{path}")
    assert ds.name == f"npz:{path}"
    assert ds.x_train.shape == (4, 3, 3, 1) and ds.x_test.shape == (2, 3, 3, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], _images(4)[..., 0])
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.y_train.dtype == np.int64
    assert ds.num_classes == 3


def test_npz_int_labels_infer_num_classes_and_keep_float_pixels(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 2, 2, 3)).astype(np.float32)
    path = _save_npz(
        tmp_path, x_train=x, y_train=np.array([0, 1, 4, 1, 0]), x_test=x[:2], y_test=[3, 0]
    )
    ds = load_dataset(f"npz:{path}")
    assert ds.num_classes == 5
    assert ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train, x)


def test_npz_images_labels_layout_is_class_stratified_and_keeps_order(tmp_path):
    # Class 0: 10 images -> last 2 test; class 1: 7 -> last 1; class 2: 3 -> last 1.
    labels = np.array([0, 1] * 7 + [0, 0, 0, 2, 2, 2])
    images = np.arange(labels.size, dtype=np.uint8).reshape(-1, 1, 1, 1) * np.ones(
        (1, 2, 2, 1), np.uint8
    )
    path = _save_npz(tmp_path, images=images, labels=labels)
    ds = load_dataset(f"npz:{path}")
    ids_train = ds.x_train[:, 0, 0, 0].astype(int)
    ids_test = ds.x_test[:, 0, 0, 0].astype(int)
    expected_test = []
    for c, n_test in ((0, 2), (1, 1), (2, 1)):
        expected_test += np.nonzero(labels == c)[0][-n_test:].tolist()
    np.testing.assert_array_equal(ids_test, sorted(expected_test))  # original order kept
    np.testing.assert_array_equal(ids_train, sorted(set(range(labels.size)) - set(expected_test)))
    np.testing.assert_array_equal(ds.y_train, labels[ids_train])
    np.testing.assert_array_equal(ds.y_test, labels[ids_test])
    assert ds.num_classes == 3


def test_npz_num_classes_entry_is_used_and_enforced(tmp_path):
    x = _images(4)
    ok = _save_npz(
        tmp_path,
        "ok.npz",
        x_train=x,
        y_train=[0, 1, 0, 1],
        x_test=x,
        y_test=[1, 1, 0, 0],
        num_classes=7,
    )
    assert load_dataset(f"npz:{ok}").num_classes == 7
    bad = _save_npz(
        tmp_path,
        "bad.npz",
        x_train=x,
        y_train=[0, 1, 5, 1],
        x_test=x,
        y_test=[1, 1, 0, 0],
        num_classes=3,
    )
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[5\]"):
        load_dataset(f"npz:{bad}")


# ----------------------------------------------------------------------------- tfds


def test_tfds_mnist_through_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        ds = load_dataset("mnist", download=False)
    assert ds.num_classes == 10
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_test.shape == (12, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.y_train.min() >= 0 and ds.y_train.max() < 10


def test_unknown_tfds_name_fails_fast_without_network():
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"no_such_dataset_xyz.*'mnist_5k'.*'npz:PATH'"):
        load_dataset("no_such_dataset_xyz")
    assert time.monotonic() - start < 10


def test_unprepared_tfds_without_download_is_a_clear_error(tmp_path):
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"'mnist' is not prepared.*download=False"):
        load_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert time.monotonic() - start < 10


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["", "   ", None])
def test_empty_name(name):
    with pytest.raises(ValueError, match="non-empty string"):
        load_dataset(name)


def test_npz_missing_keys_lists_found_and_expected(tmp_path):
    path = _save_npz(tmp_path, x_train=_images(2), y_train=[0, 1], pixels=np.zeros(2))
    with pytest.raises(
        ValueError, match=r"x_test.*images.*Received keys: \['pixels', 'x_train', 'y_train'\]"
    ):
        load_dataset(f"npz:{path}")


def test_npz_length_mismatch(tmp_path):
    path = _save_npz(tmp_path, images=_images(5), labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match="5 images and 4 labels"):
        load_dataset(f"npz:{path}")
    path = _save_npz(
        tmp_path, "k.npz", x_train=_images(3), y_train=[0, 1], x_test=_images(2), y_test=[0, 1]
    )
    with pytest.raises(ValueError, match="3 images and 2 labels"):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize("shape", [(4, 3, 3, 1, 1), (4, 3), (4, 3, 3, 5)])
def test_npz_images_not_nhwc(tmp_path, shape):
    path = _save_npz(tmp_path, images=np.zeros(shape, np.uint8), labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"NHWC.*Received: shape=\(" + ", ".join(map(str, shape))):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npz_non_finite_pixels(tmp_path, bad):
    x = np.zeros((4, 2, 2, 1), np.float32)
    x[2, 1, 0, 0] = bad
    path = _save_npz(tmp_path, images=x, labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"1 NaN or infinite pixel.*image 2"):
        load_dataset(f"npz:{path}")


def test_npz_negative_label(tmp_path):
    path = _save_npz(tmp_path, images=_images(4), labels=[0, -3, 1, 1])
    with pytest.raises(ValueError, match=r"out-of-range labels: \[-3\]"):
        load_dataset(f"npz:{path}")


def test_npz_fractional_label(tmp_path):
    path = _save_npz(tmp_path, images=_images(4), labels=[0.0, 1.5, 1.0, 0.0])
    with pytest.raises(ValueError, match="whole numbers"):
        load_dataset(f"npz:{path}")


def test_npz_class_too_small_to_split(tmp_path):
    path = _save_npz(tmp_path, images=_images(4), labels=[0, 0, 0, 1])
    with pytest.raises(ValueError, match="class 1 has 1 image"):
        load_dataset(f"npz:{path}")


def test_corrupt_and_missing_npz_name_the_path(tmp_path):
    corrupt = os.path.join(str(tmp_path), "corrupt.npz")
    with open(corrupt, "wb") as f:
        f.write(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(ValueError, match=r"corrupt\.npz.*not a readable \.npz"):
        load_dataset(f"npz:{corrupt}")
    missing = os.path.join(str(tmp_path), "missing.npz")
    with pytest.raises(ValueError, match=r"Could not read npz file .*missing\.npz"):
        load_dataset(f"npz:{missing}")
    with pytest.raises(ValueError, match="must be followed by a file path"):
        load_dataset("npz:")


def test_raw_dataset_validates_directly():
    x = _images(2)
    ds = RawDataset("d", x, np.array([0, 1], np.int32), x, np.array([1, 0], np.uint8), 2)
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.image_shape == (3, 3, 1)
    with pytest.raises(ValueError, match="num_classes=1"):
        RawDataset("d", x, np.array([0, 0]), x, np.array([0, 0]), 1)
    with pytest.raises(ValueError, match=r"same \(H, W, C\)"):
        RawDataset("d", x, np.array([0, 1]), _images(2, h=4), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\).*\[2\]"):
        RawDataset("d", x, np.array([0, 2]), x, np.array([0, 1]), 2)
