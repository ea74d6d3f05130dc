"""The main jobs: KIP distillation and Label Solve, from a `DistillConfig` to a workdir.

``run_distillation(config)``: prepare the data, draw the class-balanced natural support,
build the kernel network and a `KIPModel` under the strategy, restore the latest checkpoint
of ``config.workdir`` if any (refusing one of a different configuration), then run KIP with
`KIPTrainer` in loops of ``steps_per_loop`` steps, evaluating every ``eval_every`` steps
and checkpointing every ``checkpoint_every``. Target batches depend only on
``(seed, step)``, so a run killed at any moment and rerun ends with the same distilled set.
SIGTERM (a preemption notice) checkpoints at the end of the current loop and stops with
`Preempted` (see `tfkip.train.preemption`).

Multi-worker runs (``multi_worker_mirrored``): every worker reads the chief's workdir,
which must therefore be shared (e.g. ``gs://``); only the chief writes outputs, metrics
and summaries.

Validation (``validation_size``), the best set (``best/``) and early stopping:
`tfkip.train.validation`; the wall-clock budget (``max_time``): `tfkip.train.budget`;
time-to-accuracy snapshots (``snapshot_every_seconds``): `tfkip.train.snapshots`. A run
that stops early (patience or budget) checkpoints and writes its outputs as at its end,
and its last metrics record says why (``"stopped": "early_stopping" | "max_time"``).

``run_label_solve(config)`` (`tfkip.train.label_solve`): the same setup
(`tfkip.train.run.Run`), then Label Solve of the natural support over the whole train
split, evaluated before ("natural") and after ("solved").
"""

from __future__ import annotations

import time
from typing import Any

import tensorflow as tf
from absl import logging

from tfkip.runtime.progress import Progress
from tfkip.train.budget import Budget, agree
from tfkip.train.config import DistillConfig
from tfkip.train.guard import NonFiniteGuard
from tfkip.train.preemption import Preempted, TerminationWatcher, preemption_handler
from tfkip.train.restore import restore_latest_good
from tfkip.train.run import Run
from tfkip.train.snapshots import Snapshots
from tfkip.train.strategy import worker_dir


def run_distillation(
    config: DistillConfig, on_nonfinite: str = "stop", started: float | None = None
) -> dict[str, Any]:
    """Runs (or resumes) KIP; returns the last metrics record. See module docstring.

    ``on_nonfinite`` (``"stop"`` or ``"lower_lr"``): what a step whose loss or support
    becomes NaN/inf does; the step is never applied (`tfkip.train.guard`).
    ``started``: the `time.monotonic` reading at the command's start, from which
    ``config.max_time`` counts (default: this call's start).

    Raises:
      Preempted: after SIGTERM, once a checkpoint at the current step is saved (rerun
        the same configuration to resume).
      NonFiniteError: a step went non-finite (``on_nonfinite="stop"``).
      CheckpointError: the workdir's checkpoints are all unreadable.
    """
    budget = Budget(config.max_time, started)
    run = Run(config)
    model, step_var = run.model, run.step
    # The augmentation's random state (Keras SeedGenerator variables) is checkpointed too,
    # so that a resumed run draws the same transforms as an uninterrupted one; so is the
    # best set with its patience counter (only with validation: older checkpoints lack it).
    rng = list(model.augmenter.variables) if model.augmenter is not None else []
    tracked = {"best_set": run.best} if run.best is not None else {}
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=model.optimizer, step=step_var, augmentation_rng=rng, **tracked
    )
    # The chief's newest readable checkpoint (a corrupt one is skipped with a warning).
    latest = restore_latest_good(
        checkpoint, run.workdir.join("checkpoints"), rewrite_state=run.is_chief
    )
    if latest:
        logging.info("Resumed from %s at step %d", latest, int(step_var))
    manager = tf.train.CheckpointManager(checkpoint, run.checkpoint_dir, max_to_keep=3)
    handler = preemption_handler(run.strategy, manager)
    guard = NonFiniteGuard(run.trainer, on_nonfinite)
    step = int(step_var.numpy())
    if step > config.steps:
        logging.warning(
            "The workdir's checkpoint is at step %d, beyond --steps=%d; writing it as is.",
            step,
            config.steps,
        )
    # Records up to the checkpoint's step are kept (a record at `step` was evaluated on
    # exactly the restored support); later ones are recomputed, so none is duplicated.
    records = [r for r in run.workdir.read_metrics() if r.get("step", -1) <= step]
    if run.best is not None and run.best.found:  # best/ as the restored state has it
        best_step = int(run.best.step.numpy())
        kept = [r for r in records if r.get("step") == best_step and "validation_loss" in r]
        run.write_best(kept[-1] if kept else {"step": best_step, **run.best.fields()})
    if not records and config.eval_every:
        start = time.perf_counter()
        records.append(run.evaluate(step, train_loss=None, train_accuracy=None))
        budget.record_eval(time.perf_counter() - start)
        if run.is_chief:
            run.workdir.write_metrics(records)
    snapshots = None
    if config.snapshot_every_seconds:
        snapshots = Snapshots(run.workdir, config.snapshot_every_seconds, step, run.is_chief)
        if snapshots.due(0.0):
            snapshots.write(step, 0.0, budget.elapsed(), *model.distilled())

    def spent(budget: Budget) -> bool:
        return budget.limited and bool(agree(run.strategy, budget.spent()))

    def save(step: int) -> None:
        manager.save(checkpoint_number=step)
        if not run.is_chief:
            _remove_tree(run.checkpoint_dir)  # scratch copy of a non-chief worker

    # Time left is estimated from this process's own speed (a resumed run's too).
    progress = Progress(
        max(config.steps, 1), "KIP", start=min(step, config.steps), log_fn=lambda line: None
    )
    stopped = None
    if run.best is not None and run.best.exhausted(config.early_stopping_patience):
        stopped = "early_stopping"  # a resumed run that had already stopped
    saved = True  # the restored (or initial) state needs no checkpoint of its own
    with TerminationWatcher(run.strategy) as watcher:
        while step < config.steps and stopped is None:
            until_eval = _until(step, config.eval_every) if config.eval_every else config.steps
            until_eval = min(until_eval, config.steps - step)
            num = min(config.steps_per_loop, config.steps - step, until_eval)
            num = min(num, _until(step, config.checkpoint_every))
            if snapshots is not None:
                num = min(num, snapshots.steps(budget.train_seconds, budget.seconds_per_step))
            num = budget.fit(num, until_eval if config.eval_every else num + 1)
            if budget.limited or snapshots is not None:  # the workers' clocks may differ
                num = agree(run.strategy, num)
            if num == 0:
                stopped = "max_time"
                break
            start = time.perf_counter()
            train_loss, train_acc = guard.train(step, num)
            seconds = time.perf_counter() - start
            budget.record_train(num, seconds)
            step += num
            step_var.assign(step)
            budget_left = budget.left() if budget.limited else None
            run.log_loop(step, num, seconds, train_loss, train_acc, progress, budget_left)
            if snapshots is not None and snapshots.due(budget.train_seconds):
                snapshots.write(step, budget.train_seconds, budget.elapsed(), *model.distilled())
            evaluate = config.eval_every and (step % config.eval_every == 0 or step == config.steps)
            if evaluate:
                start = time.perf_counter()
                record = run.evaluate(step, train_loss=train_loss, train_accuracy=train_acc)
                budget.record_eval(time.perf_counter() - start)
                records.append(record)
                if run.best is not None and run.best.exhausted(config.early_stopping_patience):
                    stopped = "early_stopping"
                elif step < config.steps and spent(budget):
                    stopped = "max_time"
                if stopped:
                    record["stopped"] = stopped
                if run.is_chief:
                    run.workdir.write_metrics(records)
            elif step < config.steps and spent(budget):
                stopped = "max_time"
            saved = step % config.checkpoint_every == 0 or step == config.steps
            if saved:
                save(step)
                if step < config.steps and stopped is None:
                    run.write_outputs(step)
            if handler is not None:
                handler.save_checkpoint_if_preempted(checkpoint_number=step)
            if step < config.steps and stopped is None and watcher.should_stop():
                if not saved:
                    save(step)
                logging.warning("Checkpoint saved at step %d; stopping (SIGTERM).", step)
                raise Preempted(step)
    if stopped is not None:
        if not saved:
            save(step)
        if not records or records[-1].get("step") != step:
            records.append({"step": step, "stopped": stopped})
        elif "stopped" not in records[-1]:
            records[-1]["stopped"] = stopped
        records[-1].update(
            elapsed_seconds=round(budget.elapsed(), 3),
            train_seconds=round(budget.train_seconds, 3),
        )
        if run.is_chief:
            run.workdir.write_metrics(records)
        if stopped == "max_time":
            reason = f"the time budget max_time={config.max_time:g} s is spent"
        else:
            reason = f"no lower validation loss in {config.early_stopping_patience} evaluations"
        logging.warning(
            "Stopped at step %d of %d: %s (%.1f s since the start).",
            step,
            config.steps,
            reason,
            budget.elapsed(),
        )
    run.write_outputs(step)
    if not run.is_chief:
        _remove_tree(worker_dir(config.workdir))
    return records[-1] if records else {"step": step}


def _until(step: int, every: int) -> int:
    return every - step % every


def _remove_tree(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
