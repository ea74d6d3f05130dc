"""Non-finite guard: a KIP step whose loss or support becomes NaN/inf is not applied.

`NonFiniteGuard.train(step, num)` stands in for `KIPTrainer.train`. It copies the run's
state (the model's variables -- support images and labels --, the optimizer's, the
augmentation's random state) to host memory, runs the ``num`` steps in one host call as
usual, and checks that the mean loss and every support value are finite. If not, it puts
the copy back and replays the steps one by one to find the first bad step ``s`` (the update
from the state after ``s`` steps), and restores the state before it. Then, by ``mode``:

* ``"stop"`` (default): raises `NonFiniteError` naming the step; the run writes nothing
  more, so the last checkpoint and ``distilled.npz`` keep the last good support.
* ``"lower_lr"``: multiplies the optimizer's learning rate by ``lr_factor`` (logged as a
  warning) and goes on from step ``s``; after ``max_lowerings`` lowerings it stops as
  above. The lowered rate is part of the optimizer state, so it is checkpointed.

A finite run is unchanged bit for bit (the copy is only read back after a failure). The
copy costs one host transfer of the state per host call (three support-sized arrays with
Adam), small beside a KIP step.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging

from tfkip.kip.krr import NotPositiveDefiniteError

ON_NONFINITE = ("stop", "lower_lr")


class NonFiniteError(ValueError):
    """A KIP step made the loss or the support non-finite; it was not applied."""


class NonFiniteGuard:
    """See the module docstring. ``trainer`` is a `KIPTrainer`."""

    def __init__(self, trainer, mode: str = "stop", lr_factor: float = 0.5, max_lowerings=5):
        if mode not in ON_NONFINITE:
            raise ValueError(
                f"on_nonfinite must be one of {ON_NONFINITE}. Received: on_nonfinite={mode!r}"
            )
        if not 0.0 < lr_factor < 1.0:
            raise ValueError(f"lr_factor must be in (0, 1). Received: lr_factor={lr_factor!r}")
        self.trainer = trainer
        self.model = trainer.model
        self.mode = mode
        self.lr_factor = lr_factor
        self.max_lowerings = max_lowerings
        self.lowerings = 0

    def _variables(self) -> list[tf.Variable]:
        model = self.model
        found = list(model.variables) + list(model.optimizer.variables)
        if getattr(model, "augmenter", None) is not None:
            found += list(model.augmenter.variables)
        unique, seen = [], set()
        for v in found:
            if id(v) not in seen:
                seen.add(id(v))
                unique.append(v)
        return unique

    def _capture(self) -> list[np.ndarray]:
        return [np.array(v.numpy()) for v in self._variables()]

    def _restore(self, values: list[np.ndarray]) -> None:
        for v, value in zip(self._variables(), values):
            v.assign(value)

    def _support_finite(self) -> bool:
        model = self.model
        return bool(
            np.all(np.isfinite(model.support_images.numpy()))
            and np.all(np.isfinite(model.support_labels.numpy()))
        )

    def _try(self, step: int, num: int) -> tuple[float, float] | None:
        """``trainer.train(step, num)``, or None if it went non-finite."""
        try:
            loss, acc = self.trainer.train(step, num)
        except NotPositiveDefiniteError:
            return None
        if not np.isfinite(loss) or not self._support_finite():
            return None
        return loss, acc

    def train(self, step: int, num: int) -> tuple[float, float]:
        """Steps ``step .. step + num - 1`` as `KIPTrainer.train`, guarded (see module)."""
        before = self._capture()
        result = self._try(step, num)
        if result is not None:
            return result
        self._restore(before)
        bad, losses = None, []
        for s in range(step, step + num):
            state = self._capture()
            one = self._try(s, 1)
            if one is None:
                self._restore(state)
                bad = s
                break
            losses.append(one)
        if bad is None:  # every step was finite when replayed one at a time
            logging.warning(
                "Steps %d-%d gave a non-finite result in one host call but not one by one; "
                "going on with the one-by-one result.",
                step,
                step + num,
            )
            return float(np.mean([x[0] for x in losses])), float(np.mean([x[1] for x in losses]))
        lr = self.model.optimizer.learning_rate
        if self.mode == "lower_lr" and self.lowerings < self.max_lowerings:
            self.lowerings += 1
            old = float(lr.numpy())
            lr.assign(old * self.lr_factor)
            logging.warning(
                "KIP step %d -> %d made the loss or support non-finite; not applied. "
                "Learning rate lowered from %g to %g; going on.",
                bad,
                bad + 1,
                old,
                old * self.lr_factor,
            )
            rest = self.train(bad, step + num - bad)
            losses.append(rest)
            return float(np.mean([x[0] for x in losses])), float(np.mean([x[1] for x in losses]))
        raise NonFiniteError(
            f"KIP step {bad} -> {bad + 1} made the loss or the support non-finite, so it was "
            f"not applied and the run stopped without writing it. Try a smaller "
            f"--learning_rate, a larger --reg, --dtype=float64, or --on_nonfinite=lower_lr."
        )
