"""KIP-compatible ``.npz`` files, names and catalogue (spec §5).

A released KIP file is an ``.npz`` with exactly the keys ``images`` (N, H, W, C) and
``labels`` (N, num_classes), named

* ``{arch}_ssize{N}_{zca|nozca}_{l|nol}_{aug|noaug}_ckpt{K}.npz`` (KIP),
* ``ssize{N}_{zca|nozca}_{l|nol}_{aug|noaug}_ckpt{K}.npz`` (older KIP layout),
* ``{arch}_ssize{N}_{zca|nozca}.npz`` (Label Solve),

and indexed by a CSV with the columns of ``kip.csv``. tfkip adds a JSON sidecar
``{file}.json`` with the full :class:`DistilledMetadata`, and ``{file}.zca.npy`` for
ZCA sets; the ``.npz`` itself stays byte-compatible with the originals.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import files as _files
from tfkip.sets import sidecar as _sidecar
from tfkip.sets.metadata import DistilledMetadata

NPZ_FORMAT = "tfkip.kip_npz"
CATALOG_COLUMNS = (
    "architecture",
    "dataset",
    "ssize",
    "zca",
    "l",
    "aug",
    "ckpt",
    "test_acc",
    "test_mse",
    "URL",
)
KNOWN_DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped", "svhn")

_FLAGS = r"(?P<zca>zca|nozca)_(?P<l>l|nol)_(?P<aug>aug|noaug)_ckpt(?P<ckpt>\d+)"
_PATTERNS = (
    ("kip", re.compile(rf"^(?P<architecture>.+?)_ssize(?P<ssize>\d+)_{_FLAGS}\.npz$")),
    ("kip_old", re.compile(rf"^ssize(?P<ssize>\d+)_{_FLAGS}\.npz$")),
    ("ls", re.compile(r"^(?P<architecture>.+?)_ssize(?P<ssize>\d+)_(?P<zca>zca|nozca)\.npz$")),
)


def parse_kip_filename(name: str) -> dict[str, Any]:
    """Parses a KIP/LS file name (a path is fine; only its last component is used).

    Returns:
        ``{"layout": "kip" | "kip_old" | "ls", "architecture": str | None, "ssize": int,
        "zca": bool, "l": bool, "aug": bool | None, "ckpt": int}``. Old-layout names have
        ``architecture=None``; LS names have ``l=False``, ``aug=None``, ``ckpt=0``.

    Raises:
        ValueError: if ``name`` follows none of the three grammars.

    >>> parse_kip_filename("ConvNet_ssize100_zca_nol_noaug_ckpt1000.npz")["ckpt"]
    1000
    """
    base = _files.basename(str(name))
    for layout, pattern in _PATTERNS:
        m = pattern.match(base)
        if m is None:
            continue
        g = m.groupdict()
        return {
            "layout": layout,
            "architecture": g.get("architecture"),
            "ssize": int(g["ssize"]),
            "zca": g["zca"] == "zca",
            "l": g.get("l") == "l",
            "aug": None if g.get("aug") is None else g["aug"] == "aug",
            "ckpt": int(g.get("ckpt") or 0),
        }
    raise ValueError(
        "Not a KIP file name; expected '{arch}_ssize{N}_{zca|nozca}_{l|nol}_{aug|noaug}_"
        "ckpt{K}.npz', 'ssize{N}_..._ckpt{K}.npz' or '{arch}_ssize{N}_{zca|nozca}.npz'. "
        f"Received: name={name!r}"
    )


def _check_name(name: str, expected: dict[str, Any]) -> str:
    parsed = parse_kip_filename(name)
    if any(parsed[k] != v for k, v in expected.items()):
        raise ValueError(
            f"The architecture name makes an ambiguous file name {name!r}; use letters, "
            f"digits, '-' and '.'. Received: architecture={expected['architecture']!r}"
        )
    return name


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")
    return int(value)


def kip_filename(
    architecture: str,
    support_size: int,
    zca: bool,
    learn_labels: bool,
    augment: bool,
    ckpt: int,
) -> str:
    """The KIP release name of a checkpoint.

    >>> kip_filename("ConvNet", 100, True, False, False, 1000)
    'ConvNet_ssize100_zca_nol_noaug_ckpt1000.npz'
    """
    if not isinstance(architecture, str) or not architecture or "/" in architecture:
        raise ValueError(f"`architecture` must be a non-empty name. Received: {architecture!r}")
    n, k = _check_count("support_size", support_size), _check_count("ckpt", ckpt)
    name = (
        f"{architecture}_ssize{n}_{'zca' if zca else 'nozca'}_{'l' if learn_labels else 'nol'}"
        f"_{'aug' if augment else 'noaug'}_ckpt{k}.npz"
    )
    return _check_name(name, {"layout": "kip", "architecture": architecture, "ssize": n})


def ls_filename(architecture: str, support_size: int, zca: bool) -> str:
    """The Label-Solve release name, ``{arch}_ssize{N}_{zca|nozca}.npz``."""
    if not isinstance(architecture, str) or not architecture or "/" in architecture:
        raise ValueError(f"`architecture` must be a non-empty name. Received: {architecture!r}")
    n = _check_count("support_size", support_size)
    name = f"{architecture}_ssize{n}_{'zca' if zca else 'nozca'}.npz"
    return _check_name(name, {"layout": "ls", "architecture": architecture, "ssize": n})


def write_kip_npz(
    folder: str,
    images: np.ndarray,
    labels: np.ndarray,
    metadata: DistilledMetadata,
    zca_matrix: np.ndarray | None = None,
) -> str:
    """Writes ``{folder}/{kip_filename(...)}`` plus its ``.json`` sidecar, atomically.

    The ``.npz`` holds exactly ``images`` (N, H, W, C) and ``labels`` (N, C), unchanged
    (dtype and bits preserved). The name comes from ``metadata`` (``step`` is the ckpt).

    Args:
        folder: output folder (created if needed; ``gs://`` works).
        images: (N, H, W, C) float images in the distilled (preprocessed) space.
        labels: (N, num_classes) float labels.
        metadata: must match the arrays.
        zca_matrix: (d, d) ZCA matrix to ship; defaults to ``metadata.zca_matrix_file``.

    Returns:
        The path of the ``.npz`` written.
    """
    metadata.check_arrays(images, labels)
    name = kip_filename(
        metadata.architecture,
        metadata.support_size,
        metadata.zca,
        metadata.learned_labels,
        metadata.augment,
        metadata.step,
    )
    path = _files.join(folder, name)
    _files.makedirs(folder)
    with _files.atomic_files() as files:
        files.write_bytes(path, _files.npz_bytes(images=images, labels=labels))
        disk_metadata = _sidecar.stage_zca(files, path, metadata, zca_matrix)
        files.write_bytes(
            _sidecar.sidecar_path(path),
            _sidecar.sidecar_bytes(
                NPZ_FORMAT,
                disk_metadata,
                file=name,
                checksum={"sha256": _sidecar.array_checksum(images, labels)},
            ),
        )
    return path


def read_kip_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a KIP ``.npz``: ``(images (N, H, W, C), labels (N, C))``.

    Raises:
        ValueError: if the file is missing or corrupt, or lacks ``images``/``labels``.
    """
    arrays = _files.load_npz(path)
    missing = [k for k in ("images", "labels") if k not in arrays]
    if missing:
        raise ValueError(
            f"{path!r} is not a KIP distilled set: it lacks {missing}. A KIP .npz holds "
            f"`images` and `labels`. Received: keys found={sorted(arrays)}"
        )
    return arrays["images"], arrays["labels"]


def read_kip_sidecar(path: str) -> DistilledMetadata | None:
    """The metadata of a KIP ``.npz`` from its sidecar, or None if it has none."""
    side = _sidecar.sidecar_path(path)
    if not tf.io.gfile.exists(side):
        return None
    return _sidecar.read_sidecar(side, NPZ_FORMAT)[1]


def _fmt(value: Any) -> str:
    return "" if value is None else str(value)


def _row_from_metadata(m: DistilledMetadata, url: str) -> dict[str, str]:
    values = (m.architecture, m.dataset, m.support_size, m.zca, m.learned_labels, m.augment)
    row = dict(zip(CATALOG_COLUMNS[:6], map(_fmt, values)))
    row.update(
        ckpt=_fmt(m.step), test_acc=_fmt(m.test_accuracy), test_mse=_fmt(m.test_mse), URL=url
    )
    return row


def _catalog_row(path: str) -> dict[str, str] | None:
    """A catalogue row for ``path`` (an .npz or a sidecar .json), or None if no export."""
    if path.endswith(".npz"):
        metadata = read_kip_sidecar(path)
        if metadata is not None:
            return _row_from_metadata(metadata, path)
        try:
            p = parse_kip_filename(path)
        except ValueError:
            return None
        parent = _files.basename(_files.dirname(path))
        values = (p["architecture"], parent if parent in KNOWN_DATASETS else None, p["ssize"])
        row = dict(zip(CATALOG_COLUMNS[:3], map(_fmt, values)))
        row.update(zca=str(p["zca"]), l=str(p["l"]), aug=_fmt(p["aug"]), ckpt=str(p["ckpt"]))
        return {**row, "test_acc": "", "test_mse": "", "URL": path}
    try:  # A TFRecord export's sidecar.
        doc = json.loads(_files.read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError, tf.errors.OpError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != "tfkip.tfrecord":
        return None
    return _row_from_metadata(DistilledMetadata.from_dict(doc["metadata"]), path[: -len(".json")])


def write_catalog(folder: str, out_csv: str) -> int:
    """Writes a ``kip.csv``-style index of every export under ``folder`` (recursively).

    Columns: ``architecture, dataset, ssize, zca, l, aug, ckpt, test_acc, test_mse, URL``.
    Values come from sidecars, else from KIP file names (``dataset`` from a parent
    folder named like a TFDS dataset, as in ``kip/{dataset}/...``); ``URL`` is the
    file path (for TFRecord exports, the record path). Rows are sorted by URL.

    Returns:
        The number of rows written.
    """
    if not tf.io.gfile.isdir(folder):
        raise ValueError(f"`folder` must be an existing folder. Received: folder={folder!r}")
    rows = []
    for root, _, names in tf.io.gfile.walk(folder):
        for name in sorted(names):
            if _files.is_temp_name(name) or not name.endswith((".npz", ".json")):
                continue
            row = _catalog_row(_files.join(root, name))
            if row is not None:
                rows.append(row)
    rows.sort(key=lambda r: r["URL"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CATALOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _files.makedirs(_files.dirname(out_csv))
    _files.atomic_write_bytes(out_csv, buf.getvalue().encode("utf-8"))
    return len(rows)
