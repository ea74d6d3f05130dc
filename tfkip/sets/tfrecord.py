"""Distilled sets as TFRecord files of ``tf.train.Example`` (one per image).

Features of each example:

* ``image``: raw little-endian bytes of the (H, W, C) float tensor (exact bits),
  with ``image_shape`` (int64 list) and ``dtype`` (bytes, numpy name);
* ``label``: the soft label vector as a float list (float32, for quick inspection),
  and ``label_bytes`` + ``label_dtype``: its exact bits (float64 labels round-trip);
* ``class``: int64 argmax of the label; ``index``: int64 position in the set.

Shards are ``{path}-{i:05d}-of-{n:05d}`` when ``num_shards > 1`` (else ``path``), holding
consecutive runs of images. The sidecar ``{path}.json`` holds the metadata, the record
count, shard names, dtypes, shapes, compression and a sha256 checksum of the arrays,
which readers verify.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import files as _files
from tfkip.sets import sidecar as _sidecar
from tfkip.sets.metadata import DistilledMetadata

TFRECORD_FORMAT = "tfkip.tfrecord"
COMPRESSIONS = (None, "GZIP", "ZLIB")


def _check_compression(compression: str | None) -> str | None:
    if compression in ("", "NONE"):
        compression = None
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"`compression` must be one of {COMPRESSIONS}. Received: compression={compression!r}"
        )
    return compression


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def shard_paths(path: str, num_shards: int) -> list[str]:
    """Shard file names: ``[path]`` or ``{path}-{i:05d}-of-{n:05d}``."""
    if num_shards == 1:
        return [path]
    return [f"{path}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values: Any) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _make_example(index: int, image: np.ndarray, label: np.ndarray) -> bytes:
    """Serialises one (image (H, W, C), label (C,)) pair as a tf.train.Example."""
    image = _sidecar.little_endian(image)
    label = _sidecar.little_endian(label)
    features = {
        "image": _bytes(image.tobytes()),
        "image_shape": _ints(image.shape),
        "dtype": _bytes(image.dtype.name.encode()),
        "label": tf.train.Feature(float_list=tf.train.FloatList(value=label.tolist())),
        "label_bytes": _bytes(label.tobytes()),
        "label_dtype": _bytes(label.dtype.name.encode()),
        "class": _ints([np.argmax(label)]),
        "index": _ints([index]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString()


def write_tfrecord(
    path: str,
    images: np.ndarray,
    labels: np.ndarray,
    metadata: DistilledMetadata,
    num_shards: int = 1,
    compression: str | None = None,
    zca_matrix: np.ndarray | None = None,
) -> list[str]:
    """Writes a distilled set as TFRecord shard(s) plus the ``{path}.json`` sidecar.

    All files are written under temporary names and renamed at the end (the sidecar
    last); on any failure the temporary files are removed and nothing is left behind.

    Args:
        path: output path (``gs://`` works); shard names derive from it.
        images: (N, H, W, C) float16/32/64 images in the distilled space.
        labels: (N, num_classes) float labels.
        metadata: must match the arrays (``metadata.check_arrays``).
        num_shards: number of files, 1 <= num_shards <= N.
        compression: None, ``"GZIP"`` or ``"ZLIB"``.
        zca_matrix: (d, d) ZCA matrix to ship as ``{path}.zca.npy``; defaults to the
            file named by ``metadata.zca_matrix_file``.

    Returns:
        The shard paths written.

    >>> write_tfrecord("/tmp/kip.tfrecord", images, labels, metadata)  # doctest: +SKIP
    """
    metadata.check_arrays(images, labels)
    compression = _check_compression(compression)
    n = images.shape[0]
    if not _is_count(num_shards) or not 1 <= num_shards <= n:
        raise ValueError(
            f"`num_shards` must be an int between 1 and the number of images ({n}). "
            f"Received: num_shards={num_shards}"
        )
    paths = shard_paths(path, int(num_shards))
    blocks = np.array_split(np.arange(n), num_shards)
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    _files.makedirs(_files.dirname(path))
    with _files.atomic_files() as files:
        for shard, block in zip(paths, blocks, strict=True):
            with tf.io.TFRecordWriter(files.temp(shard), options) as writer:
                for i in block:
                    writer.write(_make_example(int(i), images[i], labels[i]))
        disk_metadata = _sidecar.stage_zca(files, path, metadata, zca_matrix)
        files.write_bytes(
            _sidecar.sidecar_path(path),
            _sidecar.sidecar_bytes(
                TFRECORD_FORMAT,
                disk_metadata,
                num_records=n,
                shards=[_files.basename(p) for p in paths],
                records_per_shard=[len(b) for b in blocks],
                compression=compression,
                image_dtype=images.dtype.name,
                label_dtype=labels.dtype.name,
                image_shape=list(images.shape[1:]),
                label_shape=list(labels.shape[1:]),
                checksum={"sha256": _sidecar.array_checksum(images, labels)},
            ),
        )
    return paths


def _read_sidecar(path: str) -> tuple[dict[str, Any], DistilledMetadata, list[str]]:
    doc, metadata = _sidecar.read_sidecar(_sidecar.sidecar_path(path), TFRECORD_FORMAT)
    required = ("shards", "compression", "num_records", "image_dtype", "label_dtype")
    missing = [k for k in (*required, "image_shape", "label_shape") if k not in doc]
    if missing:
        raise ValueError(f"The sidecar of {path!r} lacks the keys {missing}; re-export it.")
    _check_compression(doc["compression"])
    shards = [_files.join(_files.dirname(path), s) for s in doc["shards"]]
    for shard in shards:
        if not tf.io.gfile.exists(shard):
            raise ValueError(f"The sidecar of {path!r} names a missing shard {shard!r}.")
    return doc, metadata, shards


def _raw_records(shard: str, compression: str | None) -> list[bytes]:
    """All serialized records of one shard; corrupt/truncated files -> ValueError."""
    ds = tf.data.TFRecordDataset(shard, compression_type=compression or "")
    try:
        return [r.numpy() for r in ds]
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise ValueError(
            f"The TFRecord file {shard!r} is truncated or corrupt ({type(e).__name__}: "
            f"{e.message.splitlines()[0] if e.message else ''}). Re-export it."
        ) from e


def _decode(record: bytes, shard: str, doc: dict[str, Any]) -> tuple[int, bytes, bytes]:
    try:
        feature = tf.train.Example.FromString(record).features.feature
        index = feature["index"].int64_list.value[0]
        image_shape = list(feature["image_shape"].int64_list.value)
        dtypes = (feature["dtype"].bytes_list.value[0], feature["label_dtype"].bytes_list.value[0])
        image, label = (
            feature["image"].bytes_list.value[0],
            feature["label_bytes"].bytes_list.value[0],
        )
    except Exception as e:  # DecodeError, IndexError, KeyError
        raise ValueError(f"{shard!r} holds a record that is not a tfkip example ({e}).") from e
    expected = (doc["image_dtype"].encode(), doc["label_dtype"].encode())
    if image_shape != doc["image_shape"] or dtypes != expected:
        raise ValueError(
            f"A record of {shard!r} does not match its sidecar: image_shape={image_shape} and "
            f"dtypes={[d.decode() for d in dtypes]}, but the sidecar says "
            f"{doc['image_shape']} and {[doc['image_dtype'], doc['label_dtype']]}."
        )
    return index, image, label


def read_tfrecord_arrays(path: str) -> tuple[np.ndarray, np.ndarray, DistilledMetadata]:
    """Reads a :func:`write_tfrecord` export back into numpy, verifying it fully.

    Returns:
        ``(images (N, H, W, C), labels (N, num_classes), metadata)``, bit-identical to
        what was written.

    Raises:
        ValueError: missing sidecar or shard, truncated/corrupt file (named), or records
            that disagree with the sidecar (count, shapes, dtypes, order, checksum).
    """
    doc, metadata, shards = _read_sidecar(path)
    image_dtype, label_dtype = np.dtype(doc["image_dtype"]), np.dtype(doc["label_dtype"])
    images, labels, indices = [], [], []
    for shard in shards:
        for record in _raw_records(shard, doc["compression"]):
            index, image, label = _decode(record, shard, doc)
            indices.append(index)
            images.append(np.frombuffer(image, dtype=image_dtype.newbyteorder("<")))
            labels.append(np.frombuffer(label, dtype=label_dtype.newbyteorder("<")))
    if len(indices) != doc["num_records"] or indices != list(range(len(indices))):
        raise ValueError(
            f"The records of {path!r} do not match its sidecar: found {len(indices)} "
            f"records, the sidecar says {doc['num_records']} (in order)."
        )
    try:
        x = np.stack(images).reshape(-1, *doc["image_shape"]).astype(image_dtype)
        y = np.stack(labels).reshape(-1, *doc["label_shape"]).astype(label_dtype)
    except ValueError as e:
        raise ValueError(f"The records of {path!r} have inconsistent sizes ({e}).") from e
    if _sidecar.array_checksum(x, y) != doc.get("checksum", {}).get("sha256"):
        raise ValueError(
            f"The checksum of the records of {path!r} does not match its sidecar: the data "
            "or the sidecar was modified or corrupted. Re-export it."
        )
    metadata.check_arrays(x, y)
    return x, y, metadata


def read_tfrecord(path: str, verify: bool = True) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(image, label)`` from a :func:`write_tfrecord` export.

    Elements have static shapes (H, W, C) and (num_classes,) and the original dtypes;
    records come in their original order. Batch it yourself:
    ``model.fit(read_tfrecord(p).batch(100))``.

    Args:
        path: the path given to :func:`write_tfrecord`.
        verify: first read every record eagerly and check it against the sidecar (count,
            shapes, checksum) so corruption raises a clear ValueError here rather than a
            ``DataLossError`` during training.
    """
    doc, _, shards = _read_sidecar(path)
    if verify:
        read_tfrecord_arrays(path)
    image_dtype = tf.as_dtype(np.dtype(doc["image_dtype"]))
    label_dtype = tf.as_dtype(np.dtype(doc["label_dtype"]))
    image_shape, label_shape = list(doc["image_shape"]), list(doc["label_shape"])
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label_bytes": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_raw(parsed["image"], image_dtype, little_endian=True)
        label = tf.io.decode_raw(parsed["label_bytes"], label_dtype, little_endian=True)
        return tf.reshape(image, image_shape), tf.reshape(label, label_shape)

    ds = tf.data.TFRecordDataset(shards, compression_type=doc["compression"] or "")
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.apply(tf.data.experimental.assert_cardinality(doc["num_records"]))
