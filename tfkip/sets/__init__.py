"""Distilled support sets: their metadata, file formats, reading and export.

Formats: KIP-compatible ``.npz`` (+ catalogue CSV), TFRecord shards, and a versioned
tensorflow-datasets dataset; each carries a :class:`DistilledMetadata` describing how
raw images map into the distilled space (:func:`preprocessor`). :func:`load_run` reads a
distillation workdir or any export; :func:`read_index` reads the published ``kip.csv`` /
``ls.csv`` indexes and :func:`parse_released` their names; :func:`export_distilled`
writes a run in any format.

>>> images, labels, metadata = load_run("/tmp/kip_run")  # doctest: +SKIP
>>> write_tfrecord("/tmp/out/kip.tfrecord", images, labels, metadata)  # doctest: +SKIP
>>> ds = read_tfrecord("/tmp/out/kip.tfrecord").batch(100)  # doctest: +SKIP
"""

from tfkip.sets.export import FORMATS, default_tfds_name, export_distilled
from tfkip.sets.load import load_run
from tfkip.sets.metadata import DistilledMetadata
from tfkip.sets.npz import (
    CATALOG_COLUMNS,
    kip_filename,
    ls_filename,
    parse_kip_filename,
    read_kip_npz,
    write_catalog,
    write_kip_npz,
)
from tfkip.sets.preprocessing import load_zca_matrix, preprocess, preprocessor, read_preprocessing
from tfkip.sets.released import (
    RELEASED_ROOT,
    ReleasedSet,
    UnreachablePathError,
    find_index_row,
    parse_released,
    read_index,
)
from tfkip.sets.tfds import export_tfds, load_tfds, load_tfds_metadata
from tfkip.sets.tfrecord import read_tfrecord, read_tfrecord_arrays, write_tfrecord

__all__ = [
    "CATALOG_COLUMNS",
    "FORMATS",
    "RELEASED_ROOT",
    "DistilledMetadata",
    "ReleasedSet",
    "UnreachablePathError",
    "default_tfds_name",
    "export_distilled",
    "export_tfds",
    "find_index_row",
    "kip_filename",
    "load_run",
    "load_tfds",
    "load_tfds_metadata",
    "load_zca_matrix",
    "ls_filename",
    "parse_released",
    "parse_kip_filename",
    "preprocess",
    "preprocessor",
    "read_kip_npz",
    "read_index",
    "read_preprocessing",
    "read_tfrecord",
    "read_tfrecord_arrays",
    "write_catalog",
    "write_kip_npz",
    "write_tfrecord",
]
