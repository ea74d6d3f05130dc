"""Quieter launch scripts: TensorFlow's start-up and per-save log lines hidden by default.

Two kinds of lines reach a user's terminal from TensorFlow without saying anything about
the run:

* C++ start-up lines, printed twice per process while TensorFlow's libraries load and once
  more when it looks for GPUs ("oneDNN custom operations are on", "Could not find cuda
  drivers", "This TensorFlow binary is optimized to use ...", "failed call to cuInit").
  They are written before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, so that variable
  does not hide them. `quiet_startup`, called by a launch script before anything imports
  TensorFlow, imports it (and lists the GPUs) with file descriptor 2 sent to a temporary
  file, then writes back every line that is not one of :data:`STARTUP_NOISE`; it also
  sets ``TF_CPP_MIN_LOG_LEVEL=2`` (C++ INFO and WARNING lines off, errors stay) unless the
  environment sets it: a failed op otherwise adds two C++ warnings ("OP_REQUIRES failed",
  "Local rendezvous is aborting") to the one ``error:`` line that reports it.
* "Sharding callback duration: N microseconds", logged at INFO by every checkpoint save.
  `quiet_tensorflow_info` drops those records (from the ``absl`` and ``tensorflow``
  loggers).

``--verbosity=1`` (or ``-v 1``) on the command line, or ``TFKIP_VERBOSE_STARTUP=1``,
keeps everything, as before.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Sequence

STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "cpu_feature_guard.cc",
    "To enable the following instructions:",
    "failed call to cuInit",
    "Unable to register cu",
    "computation placer already registered",
    "TF-TRT Warning",
)
PER_SAVE_NOISE = ("Sharding callback duration",)


def verbose_requested(argv: Sequence[str] | None = None) -> bool:
    """Whether the command line asks for TensorFlow's own lines (``--verbosity``/``-v``
    >= 1, or ``TFKIP_VERBOSE_STARTUP=1``)."""
    if os.environ.get("TFKIP_VERBOSE_STARTUP", "") not in ("", "0"):
        return True
    args = list(sys.argv if argv is None else argv)[1:]
    for i, arg in enumerate(args):
        value = None
        if arg.startswith(("--verbosity=", "-v=")):
            value = arg.split("=", 1)[1]
        elif arg in ("--verbosity", "-v") and i + 1 < len(args):
            value = args[i + 1]
        if value is not None:
            try:
                return int(value) >= 1
            except ValueError:
                return False
    return False


def quiet_startup(argv: Sequence[str] | None = None) -> None:
    """Imports TensorFlow with its C++ start-up lines hidden (see the module docstring).

    A no-op if TensorFlow is already imported or verbose output is requested.
    """
    if verbose_requested(argv) or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            lines = text.splitlines(keepends=True)
            kept = lines if failed else [x for x in lines if not _is_noise(x)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def _is_noise(line: str) -> bool:
    return any(marker in line for marker in STARTUP_NOISE)


class _DropPerSaveLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        try:
            message = str(record.msg)
        except Exception:  # noqa: BLE001
            return True
        return not any(marker in message for marker in PER_SAVE_NOISE)


def quiet_tensorflow_info(argv: Sequence[str] | None = None) -> None:
    """Drops TensorFlow's per-checkpoint INFO lines unless verbose output is requested."""
    if verbose_requested(argv):
        return
    for name in ("absl", "tensorflow"):  # TensorFlow logs through both
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPerSaveLines) for f in logger.filters):
            logger.addFilter(_DropPerSaveLines())
