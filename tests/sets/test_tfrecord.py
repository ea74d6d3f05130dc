"""TFRecord export: lossless round trips, verification errors, atomicity."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from sets_testlib import assert_bit_equal, make_arrays, make_metadata, make_zca_matrix

from tfkip.sets import preprocessor, read_tfrecord, read_tfrecord_arrays, write_tfrecord
from tfkip.sets import tfrecord as tfrecord_lib


def _write(tmp_path, dtype=np.float32, label_dtype=None, **kwargs):
    images, labels = make_arrays(dtype=dtype, label_dtype=label_dtype)
    metadata = make_metadata(images, labels)
    path = str(tmp_path / "out" / "kip.tfrecord")
    write_tfrecord(path, images, labels, metadata, **kwargs)
    return path, images, labels, metadata


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_shards", [1, 3])
@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_round_trip_is_bit_exact(tmp_path, dtype, num_shards, compression):
    path, images, labels, metadata = _write(
        tmp_path, dtype, num_shards=num_shards, compression=compression
    )
    files = sorted(os.listdir(tmp_path / "out"))
    if num_shards == 1:
        assert files == ["kip.tfrecord", "kip.tfrecord.json"]
    else:
        assert files == [f"kip.tfrecord-{i:05d}-of-00003" for i in range(3)] + ["kip.tfrecord.json"]
    if compression == "GZIP":
        with gzip.open(os.path.join(tmp_path, "out", files[0]), "rb") as f:
            f.read()  # Really gzip.

    x, y, m = read_tfrecord_arrays(path)
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    assert m == metadata

    ds = read_tfrecord(path)
    assert ds.element_spec[0].shape == (4, 4, 3) and ds.element_spec[1].shape == (3,)
    assert ds.element_spec[0].dtype == tf.as_dtype(dtype)
    assert int(ds.cardinality()) == 6
    xs, ys = next(iter(ds.batch(100)))
    assert_bit_equal(xs.numpy(), images)
    assert_bit_equal(ys.numpy(), labels)


def test_float64_labels_with_float32_images_and_record_features(tmp_path):
    path, _, labels, _ = _write(tmp_path, np.float32, label_dtype=np.float64)
    _, y, _ = read_tfrecord_arrays(path)
    assert_bit_equal(y, labels)
    record = next(iter(tf.data.TFRecordDataset(path))).numpy()
    feature = tf.train.Example.FromString(record).features.feature
    assert list(feature["image_shape"].int64_list.value) == [4, 4, 3]
    assert feature["dtype"].bytes_list.value[0] == b"float32"
    assert feature["class"].int64_list.value[0] == 0
    np.testing.assert_allclose(feature["label"].float_list.value, labels[0], rtol=1e-6)


def test_dataset_feeds_keras_fit(tmp_path):
    import keras

    path, _, _, _ = _write(tmp_path)
    ds = read_tfrecord(path).map(lambda x, y: (tf.where(tf.math.is_finite(x), x, 0.0), y))
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model.compile(optimizer="sgd", loss="mse")
    before = model.evaluate(ds.batch(3), verbose=0)
    history = model.fit(ds.batch(3), epochs=20, verbose=0, shuffle=False)
    # Keras saw every example: the per-epoch loss is the mean over the exported set, and
    # training on it lowers it (the features and labels arrived as written).
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < before


def test_zca_matrix_travels_with_the_export(tmp_path):
    images, labels = make_arrays()
    metadata = make_metadata(images, labels, zca=True)
    matrix = make_zca_matrix()
    path = str(tmp_path / "z.tfrecord")
    write_tfrecord(path, images, labels, metadata, zca_matrix=matrix)
    sidecar = json.loads((tmp_path / "z.tfrecord.json").read_text())
    assert sidecar["metadata"]["zca_matrix_file"] == "z.tfrecord.zca.npy"
    _, _, m = read_tfrecord_arrays(path)
    raw = np.random.default_rng(0).integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    expected = preprocessor(metadata, zca_matrix=matrix)(raw)
    np.testing.assert_array_equal(preprocessor(m)(raw), expected)


def test_bad_arguments(tmp_path):
    images, labels = make_arrays()
    metadata = make_metadata(images, labels)
    path = str(tmp_path / "x.tfrecord")
    with pytest.raises(ValueError, match="compression='BZIP2'"):
        write_tfrecord(path, images, labels, metadata, compression="BZIP2")
    with pytest.raises(ValueError, match="num_shards=7"):
        write_tfrecord(path, images, labels, metadata, num_shards=7)
    with pytest.raises(ValueError, match="images.shape"):
        write_tfrecord(path, images[:5], labels[:5], metadata)
    assert os.listdir(tmp_path) == []


def test_missing_sidecar(tmp_path):
    path, *_ = _write(tmp_path)
    os.remove(path + ".json")
    with pytest.raises(ValueError, match="sidecar .* does not exist"):
        read_tfrecord_arrays(path)
    with pytest.raises(ValueError, match="does not exist"):
        read_tfrecord(path)


@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_truncated_file_names_the_file(tmp_path, compression):
    path, *_ = _write(tmp_path, num_shards=3, compression=compression)
    shard = path + "-00001-of-00003"
    with open(shard, "rb") as f:
        data = f.read()
    with open(shard, "wb") as f:
        f.write(data[: len(data) - 20])
    with pytest.raises(ValueError, match="kip.tfrecord-00001-of-00003.*truncated or corrupt"):
        read_tfrecord_arrays(path)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_tfrecord(path)


def test_corrupted_bytes_are_detected(tmp_path):
    path, *_ = _write(tmp_path)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(ValueError, match="kip.tfrecord.*truncated or corrupt"):
        read_tfrecord_arrays(path)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.update(num_records=7), "found 6 records, the sidecar says 7"),
        (lambda d: d.update(image_shape=[4, 4, 1]), "does not match its sidecar"),
        (lambda d: d.update(image_dtype="float64"), "does not match its sidecar"),
        (lambda d: d["checksum"].update(sha256="0" * 64), "checksum"),
        (lambda d: d["metadata"].update(support_size=5), "metadata says"),
        (lambda d: d.update(shards=["gone"]), "missing shard"),
        (lambda d: d.update(compression="LZ4"), "compression='LZ4'"),
        (lambda d: d.pop("label_shape"), "lacks the keys \\['label_shape'\\]"),
        (lambda d: d.update(format="other"), "not a 'tfkip.tfrecord' sidecar"),
        (lambda d: d["metadata"].update(zca="yes"), "holds invalid metadata"),
    ],
)
def test_sidecar_mismatch(tmp_path, edit, match):
    path, *_ = _write(tmp_path)
    with open(path + ".json") as f:
        doc = json.load(f)
    edit(doc)
    with open(path + ".json", "w") as f:
        json.dump(doc, f)
    with pytest.raises(ValueError, match=match):
        read_tfrecord_arrays(path)


@pytest.mark.parametrize("num_shards", [1, 3])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, num_shards):
    images, labels = make_arrays()
    metadata = make_metadata(images, labels)
    real = tfrecord_lib._make_example
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(tfrecord_lib, "_make_example", flaky)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        write_tfrecord(str(out / "kip.tfrecord"), images, labels, metadata, num_shards)
    assert os.listdir(out) == []


def test_failure_at_sidecar_keeps_previous_export(tmp_path, monkeypatch):
    path, images, labels, metadata = _write(tmp_path)
    before = {n: (tmp_path / "out" / n).read_bytes() for n in os.listdir(tmp_path / "out")}

    def boom(*args, **kwargs):
        raise OSError("no space")

    monkeypatch.setattr(tfrecord_lib._sidecar, "sidecar_bytes", boom)
    with pytest.raises(OSError):
        write_tfrecord(path, images[::-1].copy(), labels[::-1].copy(), metadata)
    after = {n: (tmp_path / "out" / n).read_bytes() for n in os.listdir(tmp_path / "out")}
    assert after == before
