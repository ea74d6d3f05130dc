"""Runs a launch script with one injected fault (tests only): ``python fault_inject.py
SCRIPT ARGS...``, the fault chosen by environment variables.

* ``INJECT_CHECKPOINT_ENOSPC=N``: saving checkpoint N fails as TensorFlow's SaveV2 does
  on a full disk: its ``ckpt-N_temp/`` staging folder holds a partial file and a
  ``ResourceExhaustedError`` "...; No space left on device" is raised.
* ``INJECT_DISTILLED_ENOSPC=K``: the K-th write of distilled.npz (1-based) fails as a
  ``tf.io.gfile`` write on a full disk: half the bytes reach the temporary file, then
  ``ResourceExhaustedError``.
* ``INJECT_NAN_STEP=S``: KIP step S -> S+1 makes the support NaN (every time it runs, or,
  with ``INJECT_NAN_UNTIL_LR_LOWERED=1``, until the learning rate was lowered).
"""

from __future__ import annotations

import os
import runpy
import sys

import numpy as np
import tensorflow as tf

from tfkip import files


def _checkpoint_enospc(number: int) -> None:
    original = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kwargs):
        if checkpoint_number == number:
            prefix = os.path.join(self.directory, f"ckpt-{number}_temp")
            os.makedirs(prefix, exist_ok=True)
            part = os.path.join(prefix, "part-00000-of-00001.data-00000-of-00001.tempstate1")
            with open(part, "wb") as f:
                f.write(b"\0" * 1000)
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{part}; No space left on device [Op:SaveV2]"
            )
        return original(self, checkpoint_number=checkpoint_number, **kwargs)

    tf.train.CheckpointManager.save = save


def _distilled_enospc(nth: int) -> None:

    original = files.AtomicFiles.write_bytes
    count = {"n": 0}

    def write_bytes(self, final, data):
        if final.endswith("distilled.npz"):
            count["n"] += 1
            if count["n"] == nth:
                tmp = self.temp(final)
                with tf.io.gfile.GFile(tmp, "wb") as f:
                    f.write(data[: len(data) // 2])
                raise tf.errors.ResourceExhaustedError(
                    None, None, f"{tmp}; No space left on device"
                )
        return original(self, final, data)

    files.AtomicFiles.write_bytes = write_bytes


def _nan_step(step: int, until_lr_lowered: bool) -> None:
    from tfkip.train.loop import KIPTrainer

    original = KIPTrainer.train
    state = {"lr": None}

    def train(self, start_step, num_steps):
        lr = float(self.model.optimizer.learning_rate.numpy())
        state["lr"] = lr if state["lr"] is None else state["lr"]
        lowered = lr < state["lr"]
        if not (start_step <= step < start_step + num_steps) or (until_lr_lowered and lowered):
            return original(self, start_step, num_steps)
        if step > start_step:
            original(self, start_step, step - start_step)
        images = self.model.support_images
        images.assign(np.full(images.shape, np.nan, images.numpy().dtype))
        return float("nan"), float("nan")

    KIPTrainer.train = train


def main() -> None:
    env = os.environ
    if "INJECT_CHECKPOINT_ENOSPC" in env:
        _checkpoint_enospc(int(env["INJECT_CHECKPOINT_ENOSPC"]))
    if "INJECT_DISTILLED_ENOSPC" in env:
        _distilled_enospc(int(env["INJECT_DISTILLED_ENOSPC"]))
    if "INJECT_NAN_STEP" in env:
        _nan_step(int(env["INJECT_NAN_STEP"]), env.get("INJECT_NAN_UNTIL_LR_LOWERED") == "1")
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
