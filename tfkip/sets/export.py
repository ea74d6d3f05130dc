"""One call that exports a distillation result in any format (used by launch/export.py)."""

from __future__ import annotations

import re

from tfkip import files as _files
from tfkip.sets.load import load_run
from tfkip.sets.metadata import DistilledMetadata
from tfkip.sets.npz import write_catalog, write_kip_npz
from tfkip.sets.tfds import export_tfds
from tfkip.sets.tfrecord import write_tfrecord
from tfkip.viz.grid import class_names_for, display_fn_for, image_grid

FORMATS = ("tfrecord", "tfds", "npz")
CATALOG_FILE = "catalog.csv"


def default_tfds_name(metadata: DistilledMetadata) -> str:
    """A snake_case TFDS name such as ``kip_cifar10_convnet_ssize100_zca_nol_noaug``."""
    m = metadata
    raw = (
        f"kip_{m.dataset}_{m.architecture}_ssize{m.support_size}_{'zca' if m.zca else 'nozca'}"
        f"_{'l' if m.learned_labels else 'nol'}_{'aug' if m.augment else 'noaug'}"
    )
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", raw.lower()))


def export_distilled(
    distilled: str,
    fmt: str,
    output: str,
    num_shards: int = 1,
    compression: str | None = None,
    name: str | None = None,
    version: str = "1.0.0",
    grid: bool = True,
    max_per_class: int = 10,
) -> dict[str, str]:
    """Exports a workdir or ``.npz`` (see :func:`load_run`) as ``fmt``.

    Args:
        distilled: a distillation workdir or an ``.npz`` file.
        fmt: ``"tfrecord"`` (``output`` = record path), ``"npz"`` (``output`` = folder;
            writes the KIP-named file and refreshes ``{output}/catalog.csv``) or
            ``"tfds"`` (``output`` = TFDS data_dir).
        output: see ``fmt``.
        num_shards, compression: TFRecord sharding and compression (None/"GZIP"/"ZLIB").
        name, version: TFDS dataset name (default :func:`default_tfds_name`) and version.
        grid: also write a PNG of the support set next to the export.
        max_per_class: images per class in the PNG.

    Returns:
        ``{"export": path, "grid": png path (if grid), "catalog": csv (npz only)}``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {FORMATS}. Received: fmt={fmt!r}")
    images, labels, metadata = load_run(distilled)
    written: dict[str, str] = {}
    if fmt == "tfrecord":
        write_tfrecord(output, images, labels, metadata, num_shards, compression)
        written["export"], png = output, f"{output}.png"
    elif fmt == "npz":
        path = write_kip_npz(output, images, labels, metadata)
        written["export"], png = path, f"{path[: -len('.npz')]}.png"
        written["catalog"] = _files.join(output, CATALOG_FILE)
        write_catalog(output, written["catalog"])
    else:
        name = name or default_tfds_name(metadata)
        written["export"] = export_tfds(name, images, labels, metadata, output, version)
        png = _files.join(written["export"], "support_grid.png")
    if grid:
        fn = display_fn_for(metadata)
        names = class_names_for(metadata.dataset, metadata.num_classes)
        image_grid(
            images, labels, png, display_fn=fn, max_per_class=max_per_class, class_names=names
        )
        written["grid"] = png
    return written
