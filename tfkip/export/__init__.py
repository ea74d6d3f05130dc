"""Export of distilled (KIP / Label Solve) support sets.

Formats: KIP-compatible ``.npz`` (+ catalogue CSV), TFRecord shards, and a versioned
tensorflow-datasets dataset; each carries a :class:`DistilledMetadata` describing how
raw images map into the distilled space (:func:`preprocessor`). :func:`image_grid`
draws the support set. :func:`evaluate_distilled` computes the KRR test accuracy of any
set (a run, an export, a published ``gs://kip-datasets`` set); :func:`read_index` reads
the published ``kip.csv`` / ``ls.csv`` indexes and :func:`parse_released` their names.

>>> images, labels, metadata = load_run("/tmp/kip_run")  # doctest: +SKIP
>>> write_tfrecord("/tmp/out/kip.tfrecord", images, labels, metadata)  # doctest: +SKIP
>>> ds = read_tfrecord("/tmp/out/kip.tfrecord").batch(100)  # doctest: +SKIP
"""

from tfkip.export.evaluate import EvaluateConfig, evaluate_distilled
from tfkip.export.grid import class_names_for, display_fn_for, image_grid, minmax_per_image
from tfkip.export.kip_npz import (
    CATALOG_COLUMNS,
    kip_filename,
    ls_filename,
    parse_kip_filename,
    read_kip_npz,
    write_catalog,
    write_kip_npz,
)
from tfkip.export.metadata import DistilledMetadata
from tfkip.export.preprocessing import load_zca_matrix, preprocess, preprocessor, read_preprocessing
from tfkip.export.released import (
    RELEASED_ROOT,
    ReleasedSet,
    UnreachablePathError,
    find_index_row,
    parse_released,
    read_index,
)
from tfkip.export.run import FORMATS, default_tfds_name, export_distilled
from tfkip.export.runs import load_run
from tfkip.export.tfds_export import export_tfds, load_tfds, load_tfds_metadata
from tfkip.export.tfrecord import read_tfrecord, read_tfrecord_arrays, write_tfrecord

__all__ = [
    "CATALOG_COLUMNS",
    "FORMATS",
    "RELEASED_ROOT",
    "DistilledMetadata",
    "EvaluateConfig",
    "ReleasedSet",
    "UnreachablePathError",
    "class_names_for",
    "default_tfds_name",
    "display_fn_for",
    "evaluate_distilled",
    "export_distilled",
    "export_tfds",
    "find_index_row",
    "image_grid",
    "kip_filename",
    "load_run",
    "load_tfds",
    "load_tfds_metadata",
    "load_zca_matrix",
    "ls_filename",
    "minmax_per_image",
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
