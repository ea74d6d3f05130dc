"""Paths and atomic writes through ``tf.io.gfile``, for every file tfkip writes.

Every writer writes to hidden temporary names in the destination folder and only
renames them to their final names once everything was written, so a crash or an
exception never leaves a half-written export behind. ``tf.io.gfile`` is used
throughout, so local paths and ``gs://`` paths behave the same.
"""

from __future__ import annotations

import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

_TMP_MARKER = ".tmp-"


def join(*parts: str) -> str:
    """Joins path parts, keeping ``gs://``-style URLs intact."""
    if "://" in parts[0]:
        return posixpath.join(*parts)
    return os.path.join(*parts)


def dirname(path: str) -> str:
    """The folder of ``path`` (``""`` if it has none)."""
    if "://" in path:
        return posixpath.dirname(path)
    return os.path.dirname(path)


def basename(path: str) -> str:
    """The last component of ``path``."""
    return posixpath.basename(path) if "://" in path else os.path.basename(path)


def temp_name(path: str, keep_extension: bool = False) -> str:
    """A unique hidden temporary name in the same folder as ``path``; with
    ``keep_extension`` it ends in ``path``'s extension (for writers that require one, such
    as Keras' ``model.save``)."""
    stem, extension = posixpath.splitext(basename(path)) if keep_extension else (basename(path), "")
    return join(dirname(path), f".{stem}{_TMP_MARKER}{uuid.uuid4().hex}{extension}")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` was made by :func:`temp_name`."""
    return basename(name).startswith(".") and _TMP_MARKER in basename(name)


def makedirs(folder: str) -> None:
    """Creates ``folder`` (and parents) if it is not empty and does not exist."""
    if folder and not tf.io.gfile.exists(folder):
        tf.io.gfile.makedirs(folder)


def remove_quietly(path: str) -> None:
    """Deletes ``path`` if it exists; never raises."""
    try:
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
    except (tf.errors.OpError, OSError):
        pass


class AtomicFiles:
    """Collects temporary files and renames them to their final names together.

    Use through :func:`atomic_files`. ``temp(final)`` returns a temporary path to write
    ``final`` to. On success every temporary file is renamed (in the order they were
    requested, so put the file that marks an export as complete last); on failure
    every temporary file, and any final file already renamed by this transaction,
    is removed.
    """

    def __init__(self) -> None:
        self._pairs: list[tuple[str, str]] = []
        self._committed: list[str] = []

    def temp(self, final: str, keep_extension: bool = False) -> str:
        """Registers ``final`` and returns the temporary path to write it to (ending in
        ``final``'s extension with ``keep_extension``)."""
        tmp = temp_name(final, keep_extension)
        self._pairs.append((tmp, final))
        return tmp

    def write_bytes(self, final: str, data: bytes) -> None:
        """Writes ``data`` to a temporary file that becomes ``final`` on commit."""
        with tf.io.gfile.GFile(self.temp(final), "wb") as f:
            f.write(data)

    def commit(self) -> None:
        for tmp, final in self._pairs:
            tf.io.gfile.rename(tmp, final, overwrite=True)
            self._committed.append(final)

    def abort(self) -> None:
        for tmp, _ in self._pairs:
            remove_quietly(tmp)
        for final in self._committed:
            remove_quietly(final)


@contextmanager
def atomic_files() -> Iterator[AtomicFiles]:
    """Context manager: all files registered inside appear at once, or none does.

    >>> with atomic_files() as files:  # doctest: +SKIP
    ...     files.write_bytes("/tmp/out.json", b"{}")
    """
    files = AtomicFiles()
    try:
        yield files
        files.commit()
    except BaseException:
        files.abort()
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_files() as files:
        files.write_bytes(path, data)


def read_bytes(path: str) -> bytes:
    """Reads a whole file through ``tf.io.gfile``."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Serialises ``arrays`` as an uncompressed ``.npz`` archive."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Loads every array of an ``.npz`` (or one ``.npy``) file, without pickles.

    Raises:
        ValueError: if the file is missing or is not a readable npz/npy file.
    """
    if not tf.io.gfile.exists(path):
        raise ValueError(f"File not found. Received: path={path!r}")
    data = read_bytes(path)
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"array": loaded}
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, OSError, ...
        raise ValueError(
            f"Could not read {path!r} as a numpy .npz/.npy file; it is corrupt or truncated "
            f"({type(e).__name__}: {e}). Received: path={path!r}"
        ) from e
