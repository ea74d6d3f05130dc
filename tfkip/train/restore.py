"""Resume from the newest checkpoint that can be read, falling back past corrupt ones.

`restore_latest_good(checkpoint, directory)` tries the checkpoints that
``directory/checkpoint`` lists (a `tf.train.CheckpointManager` keeps ``max_to_keep``),
newest first. A truncated or corrupt one (TensorFlow checks every tensor's CRC32C, so a
damaged file fails as ``DataLossError``, ``OutOfRangeError``, an ``IndexError`` "Read less
bytes than requested", ...) is skipped; one
warning names it, the reason and the checkpoint the run resumes from. With
``rewrite_state`` (the chief) the state file is rewritten without the unreadable ones, so
that a later `tf.train.CheckpointManager` and error messages see the good one as the
latest; the damaged files are left in place and overwritten when the run saves that step
again. If none can be read, `CheckpointError` (a ValueError: one ``error:`` line).
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging
from tensorflow.python.checkpoint import checkpoint_management


class CheckpointError(ValueError):
    """No checkpoint of the workdir can be restored."""


def _reason(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(text.split())[:300]


def restore_latest_good(
    checkpoint: tf.train.Checkpoint, directory: str, rewrite_state: bool = True
) -> str | None:
    """Restores the newest readable checkpoint of ``directory``; returns its path (None if
    there is none). See the module docstring.

    Raises:
      CheckpointError: checkpoints are listed but none can be read.
    """
    state = tf.train.get_checkpoint_state(directory)
    if state is None or not state.model_checkpoint_path:
        return None
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    failures = []
    for path in reversed(paths):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except Exception as err:  # noqa: BLE001 (OpError, IndexError, ValueError, ...: all unreadable)
            failures.append((path, err))
            continue
        if failures:
            bad = "; ".join(f"{p} cannot be read ({_reason(e)})" for p, e in failures)
            logging.warning("Checkpoint %s: resuming from the previous one, %s.", bad, path)
            if rewrite_state:
                _drop_from_state(directory, state, path, {b for b, _ in failures})
        return path
    path, err = failures[0]
    raise CheckpointError(
        f"No checkpoint in {directory} can be read (newest: {path}: {_reason(err)}). Restore "
        f"the files from a backup, or use a fresh --workdir."
    )


def _drop_from_state(directory: str, state, latest: str, bad: set[str]) -> None:
    """Rewrites ``directory/checkpoint`` without ``bad``, ``latest`` as the newest, keeping
    the save timestamps (without them `tf.train.CheckpointManager` would treat the kept
    checkpoints as preserved forever and never delete them)."""
    paths = list(state.all_model_checkpoint_paths)
    stamps = list(state.all_model_checkpoint_timestamps)
    if len(stamps) != len(paths):
        stamps = [None] * len(paths)
    kept = [(p, t) for p, t in zip(paths, stamps) if p not in bad]
    have_stamps = all(t is not None for _, t in kept)
    checkpoint_management.update_checkpoint_state_internal(
        directory,
        latest,
        all_model_checkpoint_paths=[p for p, _ in kept],
        all_model_checkpoint_timestamps=[t for _, t in kept] if have_stamps else None,
        last_preserved_timestamp=state.last_preserved_timestamp,
        save_relative_paths=True,
    )
