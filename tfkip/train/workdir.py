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

from tfkip import io


class ConfigMismatchError(ValueError):
    """The workdir holds a run with a different configuration."""


class Workdir:
    def __init__(self, path: str):
        self.path = path
        io.makedirs(path)

    def join(self, *parts: str) -> str:
        return io.join(self.path, *parts)

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
                old = json.loads(io.read_bytes(path).decode("utf-8"))
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
        """Deletes what interrupted atomic writes left in the workdir (the hidden
        ``.NAME.tmp-*`` files of `tfkip.io.temp_name`; the finished files were never
        touched); returns their paths. Call it before this run writes anything (the chief,
        at start), so that no write of its own is in flight."""
        stale = [
            self.join(name) for name in tf.io.gfile.listdir(self.path) if io.is_temp_name(name)
        ]
        for path in stale:
            io.remove_quietly(path)
        return stale

    def write_json(self, name: str, value: Any) -> None:
        io.atomic_write_bytes(self.join(name), json.dumps(value, indent=2, sort_keys=True).encode())

    # ------------------------------------------------------------ metrics
    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.join("metrics.jsonl")
        if not tf.io.gfile.exists(path):
            return []
        lines = io.read_bytes(path).decode("utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        io.atomic_write_bytes(self.join("metrics.jsonl"), text.encode("utf-8"))

    # ------------------------------------------------------------ outputs
    def write_distilled(self, images: np.ndarray, labels: np.ndarray) -> None:
        io.atomic_write_bytes(
            self.join("distilled.npz"), io.npz_bytes(images=images, labels=labels)
        )


def _normalise(value):
    return json.loads(json.dumps(value))
