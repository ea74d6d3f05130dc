"""Run-time faults as one line that says what is safe: classification and clean-up.

A launch script runs its job inside ``watching(folder)`` (`tfkip.runtime.cli.own` does it); when
the job dies of an environment fault, `describe` turns the exception into the text of one
``error: ...`` line (see `tfkip.runtime.cli.run`) naming the file or folder and what to do, and,
for a folder with checkpoints, its last good checkpoint and step::

    error: out of space writing runs/q/checkpoints/ckpt-300 (No space left on device).
    The last good checkpoint is runs/q/checkpoints/ckpt-200 (step 200); a rerun of the
    same command resumes from it.

Faults recognised (`describe` returns None for anything else, which keeps its traceback):

==================  ==========================================================================
fault               recognised by
==================  ==========================================================================
out of space        ``No space left on device`` / ``Disk quota exceeded`` (TF's
                    ``ResourceExhaustedError``, ``OSError`` ENOSPC/EDQUOT)
read-only           ``Read-only file system`` (EROFS)
permission lost     ``PermissionDeniedError`` / ``PermissionError``
vanished folder     a ``NotFoundError`` / ``FileNotFoundError`` while the watched folder is gone
out of memory       any other ``ResourceExhaustedError`` (XLA ``RESOURCE_EXHAUSTED``,
                    allocator OOM), or ``MemoryError``
corrupt checkpoint  `tfkip.train.restore.CheckpointError`
non-finite step     `tfkip.kip.krr.NotPositiveDefiniteError` raised by the training loop
TFDS data missing   ``tensorflow_datasets`` ``DatasetNotFoundError`` / ``AssertionError``
                    about a missing dataset; a failed download (``ConnectionError``,
                    ``requests`` / ``urllib3`` errors)
==================  ==========================================================================

On any exception, ``watching`` first deletes what the failed write left in the folder:
hidden ``.NAME.tmp-*`` files (`tfkip.files.temp_name`) and TensorFlow's ``ckpt-N_temp/``
checkpoint staging folders, so that nothing trips the next run, which resumes from the
last good checkpoint.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator

_state: dict[str, str | None] = {"folder": None, "checkpoints": None}

_SPACE = ("No space left on device", "Disk quota exceeded")
_READ_ONLY = "Read-only file system"
_PATH = re.compile(r"((?:[a-z][a-z0-9+.-]*://|/)[^\s;:]+|(?:\.{0,2}[\w.-]+/)+[\w.-]+)")
_TEMP_CHECKPOINT = re.compile(r"^(.*/ckpt-\d+)_temp(?:/.*)?$")
_TEMP_FILE = re.compile(r"^(.*/)\.([^/]+)\.tmp-[0-9a-f]+$")


@contextlib.contextmanager
def watching(
    folder: str | None, checkpoints: str | None = None, cleanup: bool = True
) -> Iterator[None]:
    """Remembers ``folder`` (and its checkpoints' sub-folder, if it has one) for
    `describe`; on an exception, removes its temporary files (only with ``cleanup``: not
    on a non-chief worker, whose chief may still be writing them)."""
    _state["folder"] = folder
    _state["checkpoints"] = checkpoints
    try:
        yield
    except BaseException:
        if folder and cleanup:
            with contextlib.suppress(Exception):
                remove_temporaries(folder)
        raise


RUN_SUBFOLDERS = ("checkpoints", "best", "snapshots")
"""The sub-folders of a run's workdir that atomic writes (and checkpoints) write into."""


def remove_temporaries(folder: str) -> list[str]:
    """Deletes the hidden temp files and ``ckpt-N_temp`` folders of ``folder`` and of its
    `RUN_SUBFOLDERS`; returns what was deleted."""
    import tensorflow as tf

    from tfkip import files

    removed = []
    for sub in (folder, *(files.join(folder, name) for name in RUN_SUBFOLDERS)):
        if not tf.io.gfile.isdir(sub):
            continue
        for name in tf.io.gfile.listdir(sub):
            name = name.rstrip("/")
            path = files.join(sub, name)
            if files.is_temp_name(name):
                files.remove_quietly(path)
                removed.append(path)
            elif re.fullmatch(r"ckpt-\d+_temp", name) and tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
                removed.append(path)
    return removed


def last_checkpoint(folder: str | None, sub: str = "checkpoints") -> tuple[str, int] | None:
    """``(path, step)`` of the newest checkpoint listed in ``folder/sub``."""
    if not folder:
        return None
    try:
        import tensorflow as tf

        from tfkip import files

        path = tf.train.latest_checkpoint(files.join(folder, sub))
    except Exception:  # noqa: BLE001 (the folder may be gone or unreadable)
        return None
    match = re.search(r"ckpt-(\d+)$", path or "")
    return (path, int(match.group(1))) if match else None


def _safe_part(folder: str | None) -> str:
    if not folder or not _state["checkpoints"]:
        return ""
    last = last_checkpoint(folder, _state["checkpoints"])
    if last is None:
        if folder:
            return f" No checkpoint in {folder} yet; a rerun starts from the beginning."
        return ""
    return (
        f" The last good checkpoint is {last[0]} (step {last[1]}); a rerun of the same "
        f"command resumes from it."
    )


def _message(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\]", "", text)
    return " ".join(text.split())


def _reason(text: str) -> str:
    """The OS's words (``No space left on device``) from ``"<path>; <reason>"``."""
    return text.rsplit(";", 1)[-1].strip() if ";" in text else text


def _final_path(path: str) -> str:
    """The file a temporary ``path`` was to become (``ckpt-300_temp/...`` -> ``ckpt-300``)."""
    match = _TEMP_CHECKPOINT.match(path)
    if match:
        return match.group(1)
    match = _TEMP_FILE.match(path)
    if match:
        return match.group(1) + match.group(2)
    return path


def error_path(error: BaseException) -> str | None:
    """The file the failed operation was about, temp names mapped to their final names."""
    filename = getattr(error, "filename", None)
    if isinstance(filename, str) and filename:
        return _final_path(filename)
    match = _PATH.search(_message(error))
    return _final_path(match.group(1)) if match else None


def _tf_errors():
    import sys

    tf = sys.modules.get("tensorflow")
    return getattr(tf, "errors", None)


def _is_tfds_missing(error: BaseException) -> bool:
    name = type(error).__name__
    text = _message(error)
    if name == "DatasetNotFoundError":
        return True
    return name == "AssertionError" and "Dataset" in text and "not found" in text.lower()


def describe(error: BaseException) -> str | None:
    """The one-line message (without ``error: ``) for a recognised fault, else None."""
    folder = _state["folder"]
    text = _message(error)
    errors = _tf_errors()
    tf_error = errors is not None and isinstance(error, errors.OpError)
    os_errno = getattr(error, "errno", None) if isinstance(error, OSError) else None
    path = error_path(error) or folder or "the output folder"
    strerror = getattr(error, "strerror", None) if isinstance(error, OSError) else None
    reason = strerror or _reason(text)

    if any(s in text for s in _SPACE) or os_errno in (errno.ENOSPC, errno.EDQUOT):
        return f"out of space writing {path} ({reason})." + _safe_part(folder)
    if _READ_ONLY in text or os_errno == errno.EROFS:
        return f"{path} is on a read-only file system ({reason})." + _safe_part(folder)
    type_name = type(error).__name__
    if type_name == "CheckpointError":
        return text
    if type_name == "NonFiniteError" or (
        type_name == "NotPositiveDefiniteError" and "step" in text
    ):
        return text + _safe_part(folder)
    missing = isinstance(error, (FileNotFoundError, NotADirectoryError)) or (
        tf_error and isinstance(error, errors.NotFoundError)
    )
    if missing and folder and not _exists(folder):
        return f"{folder} vanished while the run was writing {path} ({reason})." + _safe_part(
            folder
        )
    if isinstance(error, PermissionError) or (
        tf_error and isinstance(error, errors.PermissionDeniedError)
    ):
        return f"permission denied on {path} ({reason}); restore write access to it." + _safe_part(
            folder
        )
    if isinstance(error, MemoryError) or (
        tf_error and isinstance(error, errors.ResourceExhaustedError)
    ):
        return (
            f"out of memory ({_oom_detail(error)}). Lower the kernel tile memory with "
            "--kernel_memory_mib (or set --kernel_batch_size), or use a smaller "
            "--target_batch_size / --eval_tile." + _safe_part(folder)
        )
    if _is_network(error):
        return (
            f"could not download the data ({type(error).__name__}: {text[:200]}). Prepare the "
            "dataset on a machine with network access (tfds build NAME --data_dir=DIR) and pass "
            "--data_dir=DIR, or use --dataset=mnist_5k / npz:PATH."
        )
    if _is_tfds_missing(error):
        return (
            f"the dataset's files are missing ({text[:300]}). Download it (e.g. "
            "tfds.load(name, download=True) or `tfds build`) or point --data_dir at it."
        )
    return None


_OOM = re.compile(
    r"(Out of memory[^\n]*|OOM when allocating[^\n]*|RESOURCE_EXHAUSTED:[^\n]*|"
    r"failed to allocate[^\n]*)",
    re.IGNORECASE,
)


def _oom_detail(error: BaseException) -> str:
    """The allocation that failed, from a TensorFlow message that may carry a long stack."""
    raw = getattr(error, "message", None) or str(error) or type(error).__name__
    match = _OOM.search(raw)
    line = match.group(1) if match else raw.strip().splitlines()[-1]
    return " ".join(line.split())[:200].rstrip(".")


def _is_network(error: BaseException) -> bool:
    module = type(error).__module__ or ""
    return isinstance(error, ConnectionError) or (
        isinstance(error, OSError) and module.split(".")[0] in ("requests", "urllib3")
    )


def _exists(folder: str) -> bool:
    try:
        import tensorflow as tf

        return bool(tf.io.gfile.exists(folder))
    except Exception:  # noqa: BLE001
        return False
