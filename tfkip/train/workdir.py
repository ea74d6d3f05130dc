"""A run's working directory: config, metrics, outputs, all written atomically.

Layout (any local or ``gs://`` folder, through `tf.io.gfile`)::

    config.json         every setting of the run, plus the preprocessing summary
    preprocessing.npz   channel mean/std and ZCA matrix (re-apply to new images)
    metrics.jsonl       one JSON object per evaluation
    best/               with validation: the best set, read like a workdir
    snapshots/          with snapshot_every_seconds: the support by training seconds
    distilled.npz       ``images`` (N, H, W, C) preprocessed, ``labels`` (N, C)
    support.png         the support images, one row per class
    checkpoints/        tf.train.CheckpointManager checkpoints (resume)
    tb/                 TensorBoard summaries
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import files


class ConfigMismatchError(ValueError):
    """The workdir holds a run with a different configuration."""


class Workdir:
    def __init__(self, path: str):
        self.path = path
        files.makedirs(path)

    def join(self, *parts: str) -> str:
        return files.join(self.path, *parts)

    # ------------------------------------------------------------- config
    def check_or_write_config(
        self,
        config: dict[str, Any],
        identity: dict[str, Any],
        write: bool = True,
        defaults: dict[str, Any] | None = None,
    ) -> bool:
        """Writes config.json, refusing to reuse a workdir of another configuration.

        ``identity`` holds the settings that must match the existing config.json (the
        `ConfigMismatchError` names every one that differs). ``write=False`` only checks
        (non-chief workers). ``defaults``: values of settings that a config.json written
        before they existed lacks (it then matches a run with the default). Returns True
        if the workdir already held this run (a resume).
        """
        path = self.join("config.json")
        resumed = False
        if tf.io.gfile.exists(path):
            try:
                old = json.loads(files.read_bytes(path).decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as err:
                raise ConfigMismatchError(
                    f"{path} is not valid JSON ({err}); use a fresh --workdir."
                ) from err
            old = {**(defaults or {}), **old}
            diffs = {
                k: (old.get(k), v)
                for k, v in identity.items()
                if _normalise(old.get(k)) != _normalise(v)
            }
            if diffs:
                detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diffs.items()))
                raise ConfigMismatchError(
                    f"The workdir {self.path} holds a run with a different configuration "
                    f"({detail}); resuming it would mix two runs. Use a new --workdir or the "
                    f"original settings."
                )
            resumed = True
        elif tf.io.gfile.exists(self.join("checkpoints", "checkpoint")):
            raise ConfigMismatchError(
                f"The workdir {self.path} holds checkpoints but no config.json, so it cannot "
                f"be checked that they belong to this configuration. Use a new --workdir."
            )
        if write:
            self.write_json("config.json", config)
        return resumed

    def remove_interrupted_writes(self) -> list[str]:
        """Deletes what interrupted writes left in the workdir (the hidden ``.NAME.tmp-*``
        files of `tfkip.files.temp_name`, in the workdir, ``best/`` and ``snapshots/``, and
        TensorFlow's ``checkpoints/ckpt-N_temp/`` staging folders; the finished files were
        never touched); returns their paths. Call it before this run writes anything (the
        chief, at start), so that no write of its own is in flight."""
        from tfkip.runtime.faults import remove_temporaries

        return remove_temporaries(self.path)

    def write_json(self, name: str, value: Any) -> None:
        files.atomic_write_bytes(
            self.join(name), json.dumps(value, indent=2, sort_keys=True).encode()
        )

    # ------------------------------------------------------------ metrics
    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.join("metrics.jsonl")
        if not tf.io.gfile.exists(path):
            return []
        lines = files.read_bytes(path).decode("utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        files.atomic_write_bytes(self.join("metrics.jsonl"), text.encode("utf-8"))

    # ------------------------------------------------------------ outputs
    def write_distilled(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Writes distilled.npz; refuses a non-finite set (the old file stays)."""
        for name, value in (("images", images), ("labels", labels)):
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"Refusing to write a non-finite distilled set to "
                    f"{self.join('distilled.npz')}: its {name} hold NaN or inf."
                )
        files.atomic_write_bytes(
            self.join("distilled.npz"), files.npz_bytes(images=images, labels=labels)
        )


def _normalise(value):
    return json.loads(json.dumps(value))
