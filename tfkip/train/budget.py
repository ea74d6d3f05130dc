"""The wall-clock budget of a distillation (``max_time``) and its training-loop clock.

`Budget` answers two questions between the loop's host calls (each runs many KIP steps
in one `tf.function`, so the budget can only be checked between calls):

* how many steps the next call may run so that it, and an evaluation it ends on, still
  fit in what is left of ``max_time`` (`Budget.fit`), and
* how many seconds the training loop itself has run (``train_seconds``: the host calls
  of `KIPTrainer.train`, their compilation included, evaluations and checkpoints
  excluded), the clock of time-to-accuracy snapshots.

``max_time`` counts from the start of the command (``started``, a `time.monotonic`
reading; launch/distill.py takes it before importing TensorFlow), so start-up,
compilation, evaluations and checkpoints all spend it, as Lightning's ``max_time``.

Chunk sizing: the first call (which compiles) and the second (which measures a step
without compilation) run one step each while any time is left; later calls run
``floor(left / seconds_per_step)`` steps at most, with ``seconds_per_step`` the last
call's. A call that would end on
an evaluation must leave room for it too (the last evaluation's duration), or it stops
one step short of it; so evaluations are never skipped, and the run overshoots
``max_time`` by at most the error of these estimates plus the final checkpoint.

Under MultiWorkerMirroredStrategy every worker has its own clock; the run takes the
chief's decisions (`agree`), so all workers run the same steps.
"""

from __future__ import annotations

import math
import time

import tensorflow as tf

__all__ = ["Budget", "agree"]


class Budget:
    """``max_time`` seconds from ``started`` (None: unlimited), and the loop's clock.

    Args:
      max_time: seconds, or None for no limit.
      started: `time.monotonic` reading at the command's start (default: now).
      clock: the time function (tests pass a fake one).
    """

    def __init__(self, max_time: float | None, started: float | None = None, clock=None):
        if max_time is not None and not max_time > 0:
            raise ValueError(f"max_time must be > 0 seconds or None. Received: {max_time!r}")
        self.clock = clock or time.monotonic
        self.max_time = max_time
        self.started = self.clock() if started is None else started
        self.train_seconds = 0.0  # training-loop seconds of this process
        self.seconds_per_step: float | None = None
        self.eval_seconds = 0.0  # the last evaluation's duration
        self.calls = 0  # host calls of the training loop in this process

    @property
    def limited(self) -> bool:
        return self.max_time is not None

    def elapsed(self) -> float:
        """Seconds since the command's start."""
        return self.clock() - self.started

    def left(self) -> float:
        """Seconds left of ``max_time`` (infinite when unlimited)."""
        return math.inf if self.max_time is None else self.max_time - self.elapsed()

    def spent(self) -> bool:
        return self.left() <= 0

    def fit(self, num: int, until_eval: int) -> int:
        """Steps (<= ``num``) the next host call may run; 0: stop now.

        ``until_eval``: steps until the next evaluation (the call ends on it when
        ``num >= until_eval``).
        """
        if not self.limited:
            return num
        left = self.left()
        if left <= 0:
            return 0
        if self.calls < 2:  # the compiling call, then a measured one: a step each
            return min(num, 1)
        fits = int(left // self.seconds_per_step)
        if (
            fits >= until_eval
            and num >= until_eval
            and until_eval * self.seconds_per_step + self.eval_seconds > left
        ):
            fits = until_eval - 1  # stop short of an evaluation there is no time for
        return max(0, min(num, fits))

    def record_train(self, num: int, seconds: float) -> None:
        """Accounts one host call of ``num`` steps that took ``seconds``."""
        self.train_seconds += seconds
        self.calls += 1
        if num > 0:
            self.seconds_per_step = seconds / num

    def record_eval(self, seconds: float) -> None:
        self.eval_seconds = seconds


def agree(strategy, value: int) -> int:
    """The chief's ``value``, on every worker.

    Decisions taken from a worker's own clock (how many steps the next call runs, whether
    the budget is spent) may differ between the workers of a
    `tf.distribute.MultiWorkerMirroredStrategy`, whose steps must match (they run
    collectives together). The collective here gives every worker the first replica's
    value; under other strategies (one process) ``value`` is returned as is.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return int(value)
    mine = tf.constant(int(value), tf.int32)

    def first_replica_only(context):
        return mine if context.replica_id_in_sync_group == 0 else tf.zeros_like(mine)

    per_replica = strategy.experimental_distribute_values_from_function(first_replica_only)
    return int(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))
