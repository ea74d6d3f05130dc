"""Snapshots of the support by training-loop time, for time-to-accuracy curves.

With ``snapshot_every_seconds = P`` a run writes ``snapshots/step_SSSSSSSS.npz`` (the
format of ``distilled.npz``: ``images``, ``labels``) at step 0 and after each host call
of the training loop that brings its ``train_seconds`` (the training loop's own
seconds, compilation included, evaluations and checkpoints excluded: `Budget`) to the
next multiple of ``P`` or beyond, and lists them in ``snapshots/snapshots.jsonl``, one
``{"step", "train_seconds", "elapsed_seconds", "file"}`` per line (``elapsed_seconds``:
since the command's start). Host calls are sized to end near each multiple (`steps`).

A resumed run keeps the entries up to its checkpoint's step and continues the clock from
the last of them (the seconds between that snapshot and the checkpoint are not counted
again; they are lost).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import files as _files

SNAPSHOT_DIR = "snapshots"
INDEX_FILE = "snapshots.jsonl"


def read_index(folder: str) -> list[dict[str, Any]]:
    """The entries of ``folder/snapshots.jsonl`` ([] if there is none)."""
    path = _files.join(folder, INDEX_FILE)
    if not tf.io.gfile.exists(path):
        return []
    text = _files.read_bytes(path).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Snapshots:
    """Writes the snapshots of one run (see the module docstring).

    Args:
      workdir: the run's `Workdir`.
      every: ``snapshot_every_seconds``.
      step: the step the run starts (or resumes) at.
      write: whether this process writes files (the chief).
    """

    def __init__(self, workdir, every: float, step: int, write: bool = True):
        self.folder = workdir.join(SNAPSHOT_DIR)
        self.every = float(every)
        self.write_files = write
        self.entries = [e for e in read_index(self.folder) if e["step"] <= step]
        self.offset = self.entries[-1]["train_seconds"] if self.entries else 0.0
        self.next = (math.floor(self.offset / self.every) + 1) * self.every

    def seconds(self, train_seconds: float) -> float:
        """The run's training-loop seconds, given this process's."""
        return self.offset + train_seconds

    def steps(self, train_seconds: float, seconds_per_step: float | None) -> int:
        """Steps until the next snapshot is due (at least 1; 1 without a speed yet)."""
        if seconds_per_step is None or seconds_per_step <= 0:
            return 1
        left = self.next - self.seconds(train_seconds)
        return max(1, math.ceil(left / seconds_per_step))

    def due(self, train_seconds: float) -> bool:
        return not self.entries or self.seconds(train_seconds) >= self.next

    def write(
        self, step: int, train_seconds: float, elapsed: float, images: np.ndarray, labels
    ) -> None:
        """Writes the snapshot of ``step`` and its index entry."""
        seconds = self.seconds(train_seconds)
        name = f"step_{step:08d}.npz"
        self.entries = [e for e in self.entries if e["step"] < step]
        self.entries.append(
            {
                "step": step,
                "train_seconds": round(seconds, 3),
                "elapsed_seconds": round(elapsed, 3),
                "file": name,
            }
        )
        self.next = max(self.next, (math.floor(seconds / self.every) + 1) * self.every)
        if not self.write_files:
            return
        _files.makedirs(self.folder)
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in self.entries)
        with _files.atomic_files() as files:
            arrays = _files.npz_bytes(images=images, labels=labels)
            files.write_bytes(_files.join(self.folder, name), arrays)
            files.write_bytes(_files.join(self.folder, INDEX_FILE), text.encode("utf-8"))
