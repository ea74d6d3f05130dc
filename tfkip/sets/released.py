"""The published KIP / Label Solve sets (``gs://kip-datasets``, spec §5): names and indexes.

A released set is referred to by any of

* ``released:kip/cifar10/ConvNet_ssize100_zca_nol_noaug_ckpt1000`` (``.npz`` optional),
* ``gs://kip-datasets/kip/cifar10/ConvNet_ssize100_zca_nol_noaug_ckpt1000.npz``,
* ``https://storage.googleapis.com/kip-datasets/kip/...`` (or the
  ``storage.cloud.google.com`` form the index's ``URL`` column uses),

and every form is read through ``tf.io.gfile`` under one *root* (default
:data:`RELEASED_ROOT`; a local folder laid out like the bucket works the same, which is
how the tests run offline). Paths inside the root are
``kip/{dataset}/{name}.npz`` and ``ls/{dataset}/{name}.npz`` with the file-name grammars
of :func:`tfkip.sets.parse_kip_filename`; the indexes are ``kip/kip.csv`` and
``ls/ls.csv``.

>>> ref = parse_released("released:kip/cifar10/ConvNet_ssize100_zca_nol_noaug_ckpt1000")
>>> ref.dataset, ref.architecture, ref.ssize, ref.zca, ref.ckpt
('cifar10', 'ConvNet', 100, True, 1000)
>>> rows = read_index("/tmp/kip-datasets", "kip", dataset="cifar10", ckpt=1000)  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import tensorflow as tf

from tfkip import files as _files
from tfkip.sets.npz import parse_kip_filename

__all__ = [
    "INDEX_FILES",
    "RELEASED_ROOT",
    "ReleasedSet",
    "UnreachablePathError",
    "find_index_row",
    "gfile_call",
    "is_released",
    "parse_released",
    "read_index",
]

RELEASED_ROOT = "gs://kip-datasets"
INDEX_FILES = {"kip": "kip/kip.csv", "ls": "ls/ls.csv"}
INDEX_FILTERS = ("dataset", "architecture", "ssize", "zca", "l", "aug", "ckpt")
# Old-layout folders use short names; evaluation needs the TFDS name.
TFDS_NAMES = {"svhn": "svhn_cropped"}
ARCHITECTURES = {"ConvNet": "convnet", "ConvNet3": "convnet3"}  # released name -> preset

_URL_PREFIXES = (
    "gs://kip-datasets/",
    "https://storage.googleapis.com/kip-datasets/",
    "https://storage.cloud.google.com/kip-datasets/",
    "http://storage.googleapis.com/kip-datasets/",
)
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://")
_T = TypeVar("_T")


class UnreachablePathError(ValueError):
    """A path (``gs://...``, ...) could not be reached or read; the message says why."""


@dataclasses.dataclass(frozen=True)
class ReleasedSet:
    """A parsed released-set reference.

    Attributes:
      relpath: path inside the root, e.g. ``"kip/cifar10/ConvNet_ssize100_..._ckpt1000.npz"``.
      kind: ``"kip"`` or ``"ls"`` (the top folder).
      dataset: TFDS name of the source dataset (``svhn`` folders map to ``svhn_cropped``).
      layout: ``"kip"``, ``"kip_old"`` (no architecture in the name) or ``"ls"``.
      architecture: released architecture name (``"ConvNet"``, ``"ConvNet3"``) or None
        for the old layout.
      ssize: support size N (images in the file).
      zca, l, aug: ZCA preprocessing, learned labels, augmentation (``aug`` None for LS).
      ckpt: KIP checkpoint step (0 for LS).
    """

    relpath: str
    kind: str
    dataset: str
    layout: str
    architecture: str | None
    ssize: int
    zca: bool
    l: bool  # noqa: E741 (the index's column name)
    aug: bool | None
    ckpt: int

    def path(self, root: str = RELEASED_ROOT) -> str:
        """The file's path under ``root`` (``gs://``, local, ...)."""
        return _files.join(root, *self.relpath.split("/"))

    @property
    def preset(self) -> str | None:
        """The `tfkip.architectures` preset of :attr:`architecture` (None if unknown)."""
        return ARCHITECTURES.get(self.architecture or "")


def is_released(source: str) -> bool:
    """Whether ``source`` names a released set (``released:...`` or a bucket URL)."""
    return source.startswith("released:") or source.startswith(_URL_PREFIXES)


def parse_released(source: str) -> ReleasedSet:
    """Parses a released-set reference (see module docstring) into a :class:`ReleasedSet`.

    Raises:
      ValueError: ``source`` is not ``{kip|ls}/{dataset}/{file}`` under a released prefix,
        or the file name follows none of the grammars of spec §5 (the message names the
        expected forms and the value received).
    """
    rel = source
    for prefix in ("released:", *_URL_PREFIXES):
        if rel.startswith(prefix):
            rel = rel[len(prefix) :]
            break
    else:
        raise ValueError(
            "A released set is 'released:{kip|ls}/{dataset}/{name}', 'gs://kip-datasets/...' "
            f"or 'https://storage.googleapis.com/kip-datasets/...'. Received: {source!r}"
        )
    rel = rel.split("?", 1)[0].strip("/")
    if not rel.endswith(".npz"):
        rel += ".npz"
    parts = rel.split("/")
    if len(parts) != 3 or parts[0] not in INDEX_FILES or not parts[1]:
        raise ValueError(
            "A released set lives at '{kip|ls}/{dataset}/{name}.npz', e.g. "
            "'released:kip/cifar10/ConvNet_ssize100_zca_nol_noaug_ckpt1000'. "
            f"Received: {source!r}"
        )
    kind, folder, name = parts
    try:
        fields = parse_kip_filename(name)
    except ValueError as e:
        raise ValueError(f"Released set {source!r}: {e}") from None
    if (fields["layout"] == "ls") != (kind == "ls"):
        expected = (
            "'{arch}_ssize{N}_{zca|nozca}.npz'"
            if kind == "ls"
            else "'{arch}_ssize{N}_{zca|nozca}_{l|nol}_{aug|noaug}_ckpt{K}.npz'"
        )
        raise ValueError(f"Files under {kind}/ are named {expected}. Received: {source!r}")
    return ReleasedSet(
        relpath=rel,
        kind=kind,
        dataset=TFDS_NAMES.get(folder, folder),
        **{k: fields[k] for k in ("layout", "architecture", "ssize", "zca", "l", "aug", "ckpt")},
    )


def _limit_gcs_retries() -> None:
    """Bounds TensorFlow's GCS retries and timeouts (unless the user set them).

    TensorFlow retries a failing GCS request up to 10 times with exponential back-off,
    which on a network that drops packets takes minutes; a user is better served by a
    clear error after seconds. Read by TensorFlow when its GCS file system first starts.
    """
    for key, value in (
        ("GCS_RETRY_CONFIG_MAX_RETRIES", "2"),
        ("GCS_RETRY_CONFIG_MAX_DELAY_TIME_US", "2000000"),
        ("GCS_REQUEST_CONNECTION_TIMEOUT_SECS", "10"),
        ("GCS_METADATA_REQUEST_TIMEOUT_SECS", "5"),
    ):
        os.environ.setdefault(key, value)


def gfile_call(fn: Callable[[], _T], path: str, timeout: float = 60.0) -> _T:
    """Runs ``fn()`` (a ``tf.io.gfile`` access of ``path``) with a clear error on failure.

    Remote paths (``scheme://``) run in a worker thread bounded by ``timeout`` seconds,
    with TensorFlow's GCS retries limited; local paths run directly.

    Raises:
      UnreachablePathError: ``path`` is remote and the call failed with a
        ``tf.errors.OpError`` other than not-found, or did not finish in ``timeout``.
      FileNotFoundError: ``path`` does not exist (``tf.errors.NotFoundError``).
    """
    if not _REMOTE.match(path):
        try:
            return fn()
        except tf.errors.NotFoundError as e:
            raise FileNotFoundError(f"File not found: {path!r} ({e.message})") from None
    _limit_gcs_retries()
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tfkip-gfile")
    future = pool.submit(fn)
    pool.shutdown(wait=False)
    hint = (
        "Check the network connection and credentials, or copy the files into a local "
        "folder with the same layout and pass it as the root (--released_root)."
    )
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise UnreachablePathError(
            f"Could not reach {path!r}: no answer within {timeout:g} s. {hint}"
        ) from None
    except tf.errors.NotFoundError as e:
        raise FileNotFoundError(f"File not found: {path!r} ({e.message})") from None
    except tf.errors.OpError as e:
        message = " ".join(str(e.message).split())
        raise UnreachablePathError(f"Could not read {path!r}: {message}. {hint}") from None


def _parse_bool(value: str, true: str, false: str, column: str, where: str) -> bool | None:
    text = value.strip()
    if text == "":
        return None
    lowered = text.lower()
    if lowered in ("true", "1", "t", "yes", true):
        return True
    if lowered in ("false", "0", "f", "no", false):
        return False
    raise ValueError(
        f"{where}: column {column!r} must be True/False (or {true}/{false}). Received: {value!r}"
    )


def _parse_row(raw: dict[str, str], where: str) -> dict[str, Any]:
    def number(key: str, kind: type) -> Any:
        text = (raw.get(key) or "").strip()
        if not text:
            return None
        try:
            return kind(float(text)) if kind is int else kind(text)
        except ValueError:
            message = f"{where}: column {key!r} must be a number. Received: {text!r}"
            raise ValueError(message) from None

    dataset = (raw.get("dataset") or "").strip()
    return {
        "architecture": (raw.get("architecture") or "").strip() or None,
        "dataset": TFDS_NAMES.get(dataset, dataset),
        "ssize": number("ssize", int),
        "zca": _parse_bool(raw.get("zca", ""), "zca", "nozca", "zca", where),
        "l": _parse_bool(raw.get("l", ""), "l", "nol", "l", where),
        "aug": _parse_bool(raw.get("aug", ""), "aug", "noaug", "aug", where),
        "ckpt": number("ckpt", int),
        "test_acc": number("test_acc", float),
        "test_mse": number("test_mse", float),
        "URL": (raw.get("URL") or "").strip(),
    }


def read_index(root_or_csv: str, kind: str = "kip", timeout: float = 60.0, **filters: Any):
    """Reads ``kip/kip.csv`` or ``ls/ls.csv`` and keeps the rows matching ``filters``.

    Args:
      root_or_csv: the bucket root (``gs://kip-datasets``, a local mirror) or a ``.csv``.
      kind: ``"kip"`` or ``"ls"``: which index under a root.
      timeout: seconds allowed for reading a remote index.
      **filters: any of ``dataset`` (str), ``architecture`` (str), ``ssize``, ``ckpt``
        (int), ``zca``, ``l``, ``aug`` (bool); a row is kept when every given filter
        equals its column. ``aug`` is absent from ``ls.csv`` (its rows hold None).

    Returns:
      A list of dicts with keys ``architecture`` (str | None: the older kip.csv has no
      such column), ``dataset`` (TFDS name), ``ssize``, ``ckpt`` (int | None), ``zca``,
      ``l``, ``aug`` (bool | None), ``test_acc``, ``test_mse`` (float | None), ``URL``.
      Boolean columns may be written ``True``/``False`` or ``zca``/``nozca`` etc.

    Raises:
      ValueError: an unknown filter or kind, or a file without the index columns.
      FileNotFoundError, UnreachablePathError: the index cannot be read.
    """
    if kind not in INDEX_FILES:
        raise ValueError(f"kind must be one of {sorted(INDEX_FILES)}. Received: kind={kind!r}")
    unknown = sorted(set(filters) - set(INDEX_FILTERS))
    if unknown:
        raise ValueError(
            f"Unknown index filters {unknown}; expected some of {list(INDEX_FILTERS)}."
        )
    path = root_or_csv
    if not path.endswith(".csv"):
        path = _files.join(root_or_csv, *INDEX_FILES[kind].split("/"))
    text = gfile_call(lambda: _files.read_bytes(path), path, timeout).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    needed = {"dataset", "ssize", "zca", "test_acc"}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        raise ValueError(
            f"{path!r} is not a KIP index: it needs the columns {sorted(needed)} (kip.csv: "
            f"architecture, dataset, ssize, zca, l, aug, ckpt, test_acc, test_mse, URL). "
            f"Received: columns={reader.fieldnames}"
        )
    if "dataset" in filters:
        filters["dataset"] = TFDS_NAMES.get(filters["dataset"], filters["dataset"])
    rows = []
    for number, raw in enumerate(reader, start=2):
        row = _parse_row(raw, f"{path!r} line {number}")
        if all(row[k] == v for k, v in filters.items()):
            rows.append(row)
    return rows


def find_index_row(
    ref: ReleasedSet, root: str = RELEASED_ROOT, timeout: float = 60.0
) -> dict[str, Any] | None:
    """The index row of ``ref``: same file name and dataset folder in the ``URL``
    column, else the same fields (architecture, dataset, ssize, zca, l, aug, ckpt).

    Returns:
      The row (see :func:`read_index`), or None if the index has no such row.
    """
    rows = read_index(root, ref.kind, timeout, dataset=ref.dataset, ssize=ref.ssize, zca=ref.zca)
    suffix = "/".join(ref.relpath.split("/")[-2:])
    for row in rows:
        if row["URL"].split("?", 1)[0].endswith(suffix):
            return row
    for row in rows:
        same = row["architecture"] in (None, ref.architecture)
        if ref.kind == "kip":
            same = same and (row["l"], row["aug"], row["ckpt"]) == (ref.l, ref.aug, ref.ckpt)
        if same:
            return row
    return None
