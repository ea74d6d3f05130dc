"""Exports go through tf.io.gfile: a non-local filesystem (ram://) works like gs://."""

from __future__ import annotations

import uuid

import numpy as np
import tensorflow as tf
from sets_testlib import assert_bit_equal, make_arrays, make_metadata, make_zca_matrix

from tfkip.sets import (
    load_run,
    preprocessor,
    read_tfrecord_arrays,
    write_catalog,
    write_kip_npz,
    write_tfrecord,
)
from tfkip.viz import image_grid


def test_ram_filesystem_round_trips():
    root = f"ram://tfkip-{uuid.uuid4().hex}"
    images, labels = make_arrays()
    metadata = make_metadata(images, labels, zca=True)
    matrix = make_zca_matrix()
    raw = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
    expected = preprocessor(metadata, zca_matrix=matrix)(raw)

    record = f"{root}/rec/kip.tfrecord"
    write_tfrecord(record, images, labels, metadata, 2, "GZIP", zca_matrix=matrix)
    x, y, m = read_tfrecord_arrays(record)
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    assert m.zca_matrix_file == f"{record}.zca.npy"
    np.testing.assert_array_equal(preprocessor(m)(raw), expected)

    path = write_kip_npz(f"{root}/rel/cifar10", images, labels, metadata, zca_matrix=matrix)
    _, _, m = load_run(path)
    np.testing.assert_array_equal(preprocessor(m)(raw), expected)
    assert write_catalog(f"{root}/rel", f"{root}/rel/catalog.csv") == 1
    image_grid(images, labels, f"{root}/rel/grid.png")
    assert sorted(tf.io.gfile.listdir(f"{root}/rel")) == ["catalog.csv", "cifar10", "grid.png"]
