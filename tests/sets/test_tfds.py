"""TFDS export: versioned dataset, lossless, loadable offline with tfds.load."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sets_testlib import assert_bit_equal, make_arrays, make_metadata, make_zca_matrix

from tfkip.sets import export_tfds, load_tfds, load_tfds_metadata, preprocessor


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    images, labels = make_arrays(n=12, dtype=dtype)
    metadata = make_metadata(images, labels)
    data_dir = str(tmp_path / "tfds")
    version_dir = export_tfds("kip_demo", images, labels, metadata, data_dir, version="1.2.0")
    assert version_dir == os.path.join(data_dir, "kip_demo", "1.2.0")

    x, y = load_tfds("kip_demo", data_dir)
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    assert load_tfds_metadata("kip_demo", data_dir) == metadata

    builder = tfds.builder("kip_demo", data_dir=data_dir)
    assert str(builder.info.version) == "1.2.0"
    assert builder.info.features["class"].num_classes == 3
    assert builder.info.features["image"].shape == (4, 4, 3)
    assert builder.info.features["image"].dtype == dtype
    assert "cifar10" in builder.info.description
    ds = tfds.load("kip_demo:1.2.0", split="train", data_dir=data_dir)
    classes = [int(e["class"]) for e in ds]
    assert classes == list(np.argmax(labels, axis=1))
    pairs = tfds.load("kip_demo", split="train", data_dir=data_dir, as_supervised=True)
    assert pairs.element_spec[0].shape == (4, 4, 3) and pairs.element_spec[1].shape == (3,)
    assert sorted(os.listdir(data_dir)) == ["kip_demo"]


def test_versions_coexist_and_existing_version_needs_overwrite(tmp_path):
    images, labels = make_arrays()
    metadata = make_metadata(images, labels)
    data_dir = str(tmp_path)
    export_tfds("kip_demo", images, labels, metadata, data_dir)
    with pytest.raises(ValueError, match="already exists; bump `version`"):
        export_tfds("kip_demo", images, labels, metadata, data_dir)
    export_tfds("kip_demo", images * 2, labels, metadata.replace(step=2), data_dir, "1.1.0")
    assert_bit_equal(load_tfds("kip_demo", data_dir, "1.0.0")[0], images)
    assert load_tfds_metadata("kip_demo", data_dir, "1.1.0").step == 2
    export_tfds("kip_demo", images * 3, labels, metadata, data_dir, overwrite=True)
    assert_bit_equal(load_tfds("kip_demo", data_dir, "1.0.0")[0], images * 3)


def test_zca_matrix_is_stored_in_the_version_folder(tmp_path):
    images, labels = make_arrays()
    metadata = make_metadata(images, labels, zca=True)
    matrix = make_zca_matrix()
    version_dir = export_tfds("kip_zca", images, labels, metadata, str(tmp_path), zca_matrix=matrix)
    m = load_tfds_metadata("kip_zca", str(tmp_path))
    assert m.zca_matrix_file == os.path.join(version_dir, "zca_matrix.npy")
    raw = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
    np.testing.assert_array_equal(
        preprocessor(m)(raw), preprocessor(metadata, zca_matrix=matrix)(raw)
    )


def test_bad_names_and_missing_datasets(tmp_path):
    images, labels = make_arrays()
    metadata = make_metadata(images, labels)
    with pytest.raises(ValueError, match="snake_case"):
        export_tfds("Bad-Name", images, labels, metadata, str(tmp_path))
    with pytest.raises(ValueError, match="version='1.0'"):
        export_tfds("kip_x", images, labels, metadata, str(tmp_path), version="1.0")
    with pytest.raises(ValueError, match="registered TFDS dataset"):
        export_tfds("mnist", images, labels, metadata, str(tmp_path))
    with pytest.raises(ValueError, match="No TFDS dataset 'kip_absent'"):
        load_tfds("kip_absent", str(tmp_path))
