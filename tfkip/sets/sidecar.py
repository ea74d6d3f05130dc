"""JSON sidecars, checksums and ZCA-matrix files shared by the exporters.

A sidecar ``{output}.json`` is ``{"format": ..., "format_version": 1, "metadata":
DistilledMetadata.to_dict(), ...format-specific keys}``. A ZCA matrix travels as
``{output}.zca.npy``; the sidecar names it relative to its own folder.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tfkip import files as _files
from tfkip.sets.metadata import DistilledMetadata
from tfkip.sets.preprocessing import load_zca_matrix

SIDECAR_VERSION = 1


def sidecar_path(path: str) -> str:
    """The sidecar of export ``path``: ``{path}.json``."""
    return f"{path}.json"


def little_endian(array: np.ndarray) -> np.ndarray:
    """C-contiguous, little-endian copy (or view) of ``array``."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def array_checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 hex digest of the little-endian bytes of ``images`` then ``labels``."""
    digest = hashlib.sha256()
    digest.update(little_endian(images).tobytes())
    digest.update(little_endian(labels).tobytes())
    return digest.hexdigest()


def zca_for_export(metadata: DistilledMetadata, zca_matrix: np.ndarray | None) -> np.ndarray | None:
    """The ZCA matrix to ship with an export: ``zca_matrix``, else the metadata's file."""
    if zca_matrix is not None or not metadata.zca:
        return zca_matrix
    if metadata.zca_matrix_file and tf.io.gfile.exists(metadata.zca_matrix_file):
        return load_zca_matrix(metadata.zca_matrix_file)
    logging.warning(
        "Exporting a ZCA distilled set without its ZCA matrix (zca_matrix_file=%r): raw "
        "test images cannot be mapped into its space from the export alone.",
        metadata.zca_matrix_file,
    )
    return None


def stage_zca(
    files: _files.AtomicFiles, out_path: str, metadata: DistilledMetadata, zca_matrix: Any
) -> DistilledMetadata:
    """Stages ``{out_path}.zca.npy`` in ``files``; returns the metadata to write to disk."""
    matrix = zca_for_export(metadata, zca_matrix)
    if matrix is None:
        return metadata.replace(zca_matrix_file=None)
    matrix = np.asarray(matrix)
    d = int(np.prod(metadata.image_shape))
    if matrix.shape != (d, d):
        raise ValueError(
            f"`zca_matrix` must have shape {(d, d)} for images {metadata.image_shape}. "
            f"Received: zca_matrix.shape={matrix.shape}"
        )
    zca_path = f"{out_path}.zca.npy"
    buf = io.BytesIO()
    np.save(buf, matrix, allow_pickle=False)
    files.write_bytes(zca_path, buf.getvalue())
    return metadata.replace(zca_matrix_file=_files.basename(zca_path))


def sidecar_bytes(fmt: str, metadata: DistilledMetadata, **extra: Any) -> bytes:
    """Serialises a sidecar document."""
    doc = {"format": fmt, "format_version": SIDECAR_VERSION, "metadata": metadata.to_dict()}
    doc.update(extra)
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def resolve_metadata(metadata: DistilledMetadata, base_dir: str) -> DistilledMetadata:
    """Turns a sidecar-relative ``zca_matrix_file`` into a usable path."""
    name = metadata.zca_matrix_file
    if not name or "://" in name or name.startswith("/") or not base_dir:
        return metadata
    return metadata.replace(zca_matrix_file=_files.join(base_dir, name))


def read_sidecar(path: str, fmt: str) -> tuple[dict[str, Any], DistilledMetadata]:
    """Reads and checks ``path`` (a sidecar JSON) of export format ``fmt``.

    Returns:
        ``(document, metadata)`` with the metadata's ZCA file resolved.

    Raises:
        ValueError: if the sidecar is missing, not JSON, or not of format ``fmt``.
    """
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"The metadata sidecar {path!r} does not exist; it is written next to every "
            f"export and is needed to read it. Received: sidecar={path!r}"
        )
    try:
        doc = json.loads(_files.read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"The sidecar {path!r} is not valid JSON ({e}).") from e
    if not isinstance(doc, dict) or doc.get("format") != fmt or "metadata" not in doc:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{path!r} is not a {fmt!r} sidecar. Received: format={found!r}")
    if doc.get("format_version", 0) > SIDECAR_VERSION:
        raise ValueError(
            f"{path!r} was written by a newer tfkip (sidecar format_version="
            f"{doc['format_version']} > {SIDECAR_VERSION}); upgrade tfkip to read it."
        )
    try:
        metadata = DistilledMetadata.from_dict(doc["metadata"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"The sidecar {path!r} holds invalid metadata: {e}") from e
    return doc, resolve_metadata(metadata, _files.dirname(path))
