"""Preemption: turn a termination notice into a checkpoint at the next loop boundary.

Cloud TPU VMs (and GCE VMs in general) announce preemption, maintenance and ``gcloud ...
stop`` by sending SIGTERM to the processes, then give them a short grace period (about
30 s for spot VMs). TensorFlow's `tf.distribute.experimental.PreemptionCheckpointHandler`
handles this on Google-internal TPUs and for MultiWorkerMirroredStrategy on GCE GPUs, but
is a logged no-op for TPUs and CPUs on GCP ("PreemptionCheckpointHandler does not support
usage with TPU or CPU device on GCP", TF 2.21). `TerminationWatcher` is the equivalent for
every strategy: SIGTERM sets a flag; after each host loop the run asks `should_stop()`
(summed over workers under MultiWorkerMirroredStrategy), saves a checkpoint at the
current step and exits with `Preempted` (exit status 143, as for SIGTERM). Rerunning the
same command resumes there. Between notices, the periodic checkpoints bound the lost work
to ``checkpoint_every`` steps (and SIGKILL, which cannot be caught, to the same).
"""

from __future__ import annotations

import signal
import threading

import tensorflow as tf
from absl import logging


class Preempted(SystemExit):
    """The run saved a checkpoint and stopped after a termination notice (SIGTERM)."""

    def __init__(self, step: int):
        super().__init__(143)
        self.step = step

    def __str__(self) -> str:
        return f"Stopped by SIGTERM after saving a checkpoint at step {self.step}; rerun to resume."


class TerminationWatcher:
    """Records SIGTERM (in the main thread) so that the run can checkpoint and stop.

    Use as a context manager; the previous SIGTERM handler is restored on exit.
    """

    def __init__(self, strategy: tf.distribute.Strategy):
        self.strategy = strategy
        self.requested = False
        self._previous = None

    def __enter__(self) -> TerminationWatcher:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        del signum, frame
        self.requested = True
        logging.warning("SIGTERM received: checkpointing at the end of this loop, then stopping.")

    def should_stop(self) -> bool:
        """Whether any worker was asked to terminate (a collective under multi-worker)."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return self.requested
        flag = tf.constant(1 if self.requested else 0, tf.int32)
        per_replica = self.strategy.experimental_distribute_values_from_function(lambda _: flag)
        return int(self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)) > 0


def preemption_handler(strategy, manager):
    """TensorFlow's preemption handling for TPUs where it works (not on GCP).

    On Cloud TPU VMs TensorFlow's handler is a logged no-op; `TerminationWatcher` covers
    them (and every other strategy).
    """
    if not isinstance(strategy, tf.distribute.TPUStrategy) or _on_gcp():
        return None
    return tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, manager
    )


def _on_gcp() -> bool:
    try:
        from tensorflow.python.distribute.failure_handling import failure_handling_util
    except ImportError:  # pragma: no cover (a TensorFlow without it: assume GCP)
        return True
    return bool(failure_handling_util.on_gcp())
