"""Validation of a distillation: the held-out score, the best set and early stopping.

With ``validation_size > 0`` a run holds ``validation_size`` class-balanced train images
out of its targets (`tfkip.data.holdout.validation_split`) and, at every in-run
evaluation, scores the current support on them: KRR predictions of the support through
the validation kernel, ``validation_loss = 0.5 mean((pred - y)^2)`` (KIP's loss, over
images and classes) and ``validation_accuracy``. The test split is scored too, but only
reported: it never chooses anything.

`BestSet` keeps, as checkpointed variables, the support of the lowest validation loss
so far, its step and loss, and the number of evaluations since it (early stopping's
counter), so a resumed run continues with the same best set and patience as an
uninterrupted one. ``best/`` in the workdir is that set as a workdir of its own
(``distilled.npz`` in the format of the run's, ``metrics.jsonl`` holding the best
evaluation's record, and copies of ``config.json`` and ``preprocessing.npz``), so every
reader of a run folder reads ``RUN/best`` as it reads ``RUN``. It is rewritten after each
improvement (and on resume, from the restored variables) in one `tfkip.files.atomic_files`
transaction.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import files as _files

BEST_DIR = "best"
# The run files a copy in best/ needs to be read like a run folder.
RUN_FILES = ("config.json", "preprocessing.npz")


class BestSet(tf.Module):
    """The lowest-validation-loss support so far (checkpoint it with the model).

    Create it under the strategy's scope. Variables: ``images``, ``labels`` (the
    support's shapes), ``loss`` (+inf before any evaluation), ``step`` (-1 before any),
    ``since`` (evaluations since the best one).
    """

    def __init__(self, images_shape, labels_shape, dtype: str):
        super().__init__(name="best_set")

        def variable(value, name):
            return tf.Variable(value, trainable=False, name=name)

        self.images = variable(tf.zeros(images_shape, dtype), "images")
        self.labels = variable(tf.zeros(labels_shape, dtype), "labels")
        self.loss = variable(tf.constant(np.inf, dtype), "loss")  # float32 on TPU
        self.step = variable(tf.constant(-1, tf.int64), "step")
        self.since = variable(tf.constant(0, tf.int64), "since")

    @property
    def found(self) -> bool:
        return int(self.step.numpy()) >= 0

    def update(self, step: int, loss: float, images: np.ndarray, labels: np.ndarray) -> bool:
        """Counts one evaluation of validation ``loss``; keeps the set if it is the lowest.

        Ties keep the earlier set. Returns whether ``images``/``labels`` became the best.
        """
        if not np.isfinite(loss):
            raise ValueError(f"The validation loss at step {step} is not finite: {loss!r}")
        stored = self.loss.dtype.as_numpy_dtype(loss)  # compared as it is stored
        if stored < self.loss.numpy():
            self.images.assign(images)
            self.labels.assign(labels)
            self.loss.assign(stored)
            self.step.assign(step)
            self.since.assign(0)
            return True
        self.since.assign_add(1)
        return False

    def exhausted(self, patience: int) -> bool:
        """Whether ``patience`` (> 0) evaluations have passed without improvement."""
        return patience > 0 and self.found and int(self.since.numpy()) >= patience

    def fields(self) -> dict[str, Any]:
        """The metrics record's view of the best set."""
        return {
            "best_step": int(self.step.numpy()),
            "best_validation_loss": float(self.loss.numpy()),
            "evaluations_since_best": int(self.since.numpy()),
        }

    def write(self, workdir, record: dict[str, Any]) -> None:
        """Writes ``best/`` (see the module docstring) with the best evaluation's ``record``."""
        folder = workdir.join(BEST_DIR)
        _files.makedirs(folder)
        images, labels = self.images.numpy(), self.labels.numpy()
        with _files.atomic_files() as files:
            for name in RUN_FILES:  # the run's own, unchanged for the run's life
                source, target = workdir.join(name), _files.join(folder, name)
                if tf.io.gfile.exists(source) and not tf.io.gfile.exists(target):
                    files.write_bytes(target, _files.read_bytes(source))
            files.write_bytes(
                _files.join(folder, "distilled.npz"), _files.npz_bytes(images=images, labels=labels)
            )
            line = json.dumps(record, sort_keys=True) + "\n"
            files.write_bytes(_files.join(folder, "metrics.jsonl"), line.encode("utf-8"))


def validation_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """`KIPTrainer.evaluate`'s ``test_*`` keys of a validation split renamed."""
    return {
        "validation_loss": metrics["test_mse"],
        "validation_accuracy": metrics["test_accuracy"],
    }
