"""Distilled sets as versioned, self-describing tensorflow-datasets datasets.

The set is stored with ``tfds``' ad-hoc builder (the machinery behind
``tfds.dataset_builders.store_as_tfds_dataset``) as one ``train`` split with features

* ``image``: float ``Tensor`` of shape (H, W, C) and the images' dtype (stored as raw
  bytes, so float64 is lossless),
* ``label``: float ``Tensor`` (num_classes,),
* ``class``: ``ClassLabel`` (argmax of the label),

records kept in their original order (``as_supervised=True`` yields
``(image, label)`` pairs). The :class:`DistilledMetadata` is saved in the
dataset's metadata (``info.metadata["tfkip"]``) and quoted in its description. It then
loads offline with ``tfds.load(name, data_dir=data_dir)``.
"""

from __future__ import annotations

import io
import re
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import files as _files
from tfkip.sets import sidecar as _sidecar
from tfkip.sets.metadata import DistilledMetadata

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
ZCA_FILE = "zca_matrix.npy"


def _tfds() -> Any:
    import tensorflow_datasets as tfds  # Imported lazily: it is slow to import.

    return tfds


def _check_name_version(name: str, version: str | None) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            "`name` must be a snake_case TFDS name (lower-case letters, digits and '_', "
            f"starting with a letter), e.g. 'kip_cifar10_convnet'. Received: name={name!r}"
        )
    if version is not None and (not isinstance(version, str) or not _VERSION.match(version)):
        raise ValueError(f"`version` must look like '1.0.0'. Received: version={version!r}")


def _make_builder_class() -> type:
    tfds = _tfds()
    from tensorflow_datasets.core.dataset_builders import adhoc_builder

    class _KipBuilder(adhoc_builder.AdhocBuilder, skip_registration=True):
        """Ad-hoc builder that also stores a metadata dict (``info.metadata``)."""

        def __init__(self, *, metadata: dict[str, Any], **kwargs: Any) -> None:
            self._tfkip_metadata = metadata
            super().__init__(**kwargs)

        def _info(self) -> Any:
            return tfds.core.DatasetInfo(
                builder=self,
                description=self._description,
                features=self._feature_spec,
                homepage=self._homepage,
                citation=self._citation,
                disable_shuffling=self._disable_shuffling,
                supervised_keys=("image", "label"),
                metadata=tfds.core.MetadataDict(self._tfkip_metadata),
            )

    return _KipBuilder


def _description(metadata: DistilledMetadata) -> str:
    m = metadata
    return (
        f"KIP distilled support set of {m.dataset} ({m.support_size} images, "
        f"{m.num_classes} classes), {m.architecture} {m.kernel.upper()} kernel, step {m.step}, "
        f"{'ZCA' if m.zca else 'no ZCA'}, {'learned' if m.learned_labels else 'fixed'} labels, "
        f"{'with' if m.augment else 'no'} augmentation. Images are in the preprocessed space "
        "described by the metadata (see tfkip.sets.preprocessor). Written by tfkip.\n\n"
        f"tfkip metadata:\n{m.to_json()}"
    )


def export_tfds(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    metadata: DistilledMetadata,
    data_dir: str,
    version: str = "1.0.0",
    zca_matrix: np.ndarray | None = None,
    overwrite: bool = False,
) -> str:
    """Stores a distilled set as the TFDS dataset ``name:version`` under ``data_dir``.

    Args:
        name: snake_case dataset name; must not be a registered TFDS dataset.
        images: (N, H, W, C) float images in the distilled space.
        labels: (N, num_classes) float labels.
        metadata: must match the arrays; stored in ``info.metadata["tfkip"]``.
        data_dir: TFDS data folder (``gs://`` works).
        version: ``"X.Y.Z"``; exporting an existing version needs ``overwrite=True``.
        zca_matrix: (d, d) ZCA matrix, stored as ``zca_matrix.npy`` in the version
            folder; defaults to ``metadata.zca_matrix_file``.
        overwrite: replace an existing ``name/version``.

    Returns:
        The version folder ``{data_dir}/{name}/{version}``.

    >>> export_tfds("kip_demo", images, labels, metadata, "/tmp/tfds")  # doctest: +SKIP
    >>> tfds.load("kip_demo", split="train", data_dir="/tmp/tfds")  # doctest: +SKIP
    """
    _check_name_version(name, version)
    metadata.check_arrays(images, labels)
    tfds = _tfds()
    if name in tfds.list_builders(with_community_datasets=False):
        raise ValueError(
            f"`name` is a registered TFDS dataset, so tfds.load would not find the export; "
            f"pick another, e.g. 'kip_{name}'. Received: name={name!r}"
        )
    version_dir = _files.join(data_dir, name, version)
    if tf.io.gfile.exists(version_dir):
        if not overwrite:
            raise ValueError(
                f"{version_dir!r} already exists; bump `version` or pass overwrite=True. "
                f"Received: name={name!r}, version={version!r}"
            )
        tf.io.gfile.rmtree(version_dir)
    matrix = _sidecar.zca_for_export(metadata, zca_matrix)
    disk_metadata = metadata.replace(zca_matrix_file=ZCA_FILE if matrix is not None else None)
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Tensor(
                shape=images.shape[1:], dtype=images.dtype, encoding=tfds.features.Encoding.BYTES
            ),
            "label": tfds.features.Tensor(
                shape=labels.shape[1:], dtype=labels.dtype, encoding=tfds.features.Encoding.BYTES
            ),
            "class": tfds.features.ClassLabel(num_classes=metadata.num_classes),
        }
    )
    examples = [
        (i, {"image": images[i], "label": labels[i], "class": int(np.argmax(labels[i]))})
        for i in range(images.shape[0])
    ]
    builder = _make_builder_class()(
        name=name,
        version=version,
        features=features,
        split_datasets={"train": examples},
        data_dir=data_dir,
        description=_description(disk_metadata),
        release_notes={version: f"Distilled checkpoint at step {metadata.step}."},
        disable_shuffling=True,
        metadata={
            "tfkip": disk_metadata.to_dict(),
            "checksum": {"sha256": _sidecar.array_checksum(images, labels)},
        },
    )
    with tempfile.TemporaryDirectory() as scratch:  # Keeps `downloads/` out of data_dir.
        builder.download_and_prepare(download_dir=scratch)
    if matrix is not None:
        try:
            _files.atomic_write_bytes(_files.join(version_dir, ZCA_FILE), _npy_bytes(matrix))
        except BaseException:
            tf.io.gfile.rmtree(version_dir)
            raise
    return version_dir


def _npy_bytes(matrix: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(matrix), allow_pickle=False)
    return buf.getvalue()


def _builder(name: str, data_dir: str, version: str | None) -> Any:
    _check_name_version(name, version)
    tfds = _tfds()
    full = f"{name}:{version}" if version else name
    try:
        builder = tfds.builder(full, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError and friends.
        raise ValueError(
            f"No TFDS dataset {full!r} under {data_dir!r} ({type(e).__name__}). "
            f"Received: name={name!r}, data_dir={data_dir!r}"
        ) from e
    if not builder.is_prepared() or "tfkip" not in (builder.info.metadata or {}):
        raise ValueError(
            f"{full!r} under {data_dir!r} is not a tfkip export. Received: name={name!r}"
        )
    return builder


def load_tfds_metadata(name: str, data_dir: str, version: str | None = None) -> DistilledMetadata:
    """The :class:`DistilledMetadata` of a :func:`export_tfds` dataset."""
    builder = _builder(name, data_dir, version)
    metadata = DistilledMetadata.from_dict(dict(builder.info.metadata["tfkip"]))
    return _sidecar.resolve_metadata(metadata, str(builder.data_dir))


def load_tfds(
    name: str, data_dir: str, version: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads a :func:`export_tfds` dataset (via ``tfds.load``) as numpy arrays.

    Returns:
        ``(images (N, H, W, C), labels (N, num_classes))`` in the original order and
        dtypes, bit-identical to what was exported (checked against the stored sha256).
    """
    builder = _builder(name, data_dir, version)
    full = f"{name}:{version}" if version else name
    data = _tfds().load(full, split="train", data_dir=data_dir, batch_size=-1, download=False)
    images, labels = np.asarray(data["image"]), np.asarray(data["label"])
    expected = builder.info.metadata.get("checksum", {}).get("sha256")
    if expected is not None and _sidecar.array_checksum(images, labels) != expected:
        raise ValueError(
            f"The records of TFDS dataset {full!r} under {data_dir!r} do not match their "
            "stored checksum: the files were modified or corrupted. Re-export it."
        )
    return images, labels
