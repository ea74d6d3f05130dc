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

``run_label_solve(config)``: the same setup, then Label Solve of the natural support over
the whole train split, evaluated before ("natural") and after ("solved").
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tfkip import architectures, files
from tfkip.data import class_balanced_indices, make_augmentation, prepare
from tfkip.data.holdout import validation_split
from tfkip.kip.krr import check_finite
from tfkip.kip.model import KIPModel
from tfkip.kip.optimizer import KIPAdam
from tfkip.runtime.progress import Progress, format_duration, format_rate
from tfkip.train import validation
from tfkip.train.budget import Budget, agree
from tfkip.train.config import DistillConfig
from tfkip.train.guard import NonFiniteGuard
from tfkip.train.loop import KIPTrainer
from tfkip.train.preemption import Preempted, TerminationWatcher, preemption_handler
from tfkip.train.restore import restore_latest_good
from tfkip.train.snapshots import Snapshots
from tfkip.train.strategy import get_strategy, is_chief, set_precision_policy, worker_dir
from tfkip.train.workdir import Workdir
from tfkip.viz.grid import class_names_for, image_grid


def build_network(config: DistillConfig, num_classes: int):
    return architectures.get(
        config.architecture,
        config.depth,
        width=config.width,
        num_classes=num_classes,
        W_std=config.W_std,
        b_std=config.b_std,
        parameterization=config.parameterization,
        activation=config.activation,
    )


class _Run:
    """Shared setup of both jobs: strategy, data, network, workdir, model, trainer."""

    def __init__(self, config: DistillConfig, label_solve: bool = False):
        self.config = config
        self.strategy = get_strategy(config.strategy, config.tpu, config.num_cpu_devices)
        set_precision_policy(config.dtype)
        self.is_chief = is_chief(self.strategy)
        dtype = np.float64 if config.dtype == "float64" else np.float32
        self.data = prepare(config.dataset, config.data_dir, config.zca, config.zca_reg, dtype)
        data = self.data
        self.network = build_network(config, data.num_classes)
        self.network.output_shape(data.image_shape)  # clear error if shapes do not fit
        # Validation images leave the targets (and the support's draw); without them
        # (validation_size=0) `rest` is the whole train split, in order.
        val, rest = validation_split(
            data.labels_train, config.validation_size, config.seed, data.num_classes
        )
        self.x_val, self.y_val = data.x_train[val], data.y_train[val]
        self.x_target, self.y_target = data.x_train[rest], data.y_train[rest]
        self.labels_target = data.labels_train[rest]
        per_class = config.support_per_class
        idx = rest[class_balanced_indices(self.labels_target, per_class, config.seed)]
        self.support_images, self.support_labels = data.x_train[idx], data.y_train[idx]
        # Every worker reads the chief's workdir (config, metrics, checkpoints: it must be a
        # shared path such as gs:// for multi-worker runs); only the chief writes outputs.
        # Other workers must take part in checkpoint saves (collectives), so they save
        # into a scratch folder of their own that is removed after each save.
        self.workdir = Workdir(config.workdir)
        self.checkpoint_dir = self.workdir.join("checkpoints")
        if not self.is_chief:
            self.checkpoint_dir = files.join(worker_dir(config.workdir), "checkpoints")
        full = dict(
            config.to_dict(),
            job="label_solve" if label_solve else "kip",
            num_classes=data.num_classes,
            image_shape=list(data.image_shape),
            support_size=len(idx),
            preprocessing=data.preprocessor.get_config(),
            network=self.network.get_config(),
        )
        identity = dict(config.identity(), job=full["job"])
        defaults = {f.name: f.default for f in dataclasses.fields(DistillConfig)}
        self.resumed = self.workdir.check_or_write_config(
            full, identity, write=self.is_chief, defaults=defaults
        )
        if self.is_chief:
            stale = self.workdir.remove_interrupted_writes()
            for path in stale + validation.remove_interrupted_writes(self.workdir):
                logging.info("Removed %s, left by an interrupted write.", path)
            data.preprocessor.save(self.workdir.join("preprocessing.npz"))
        with self.strategy.scope():
            augmenter = None
            if config.augment and not label_solve:
                augmenter = make_augmentation(config.augmentations, config.seed, config.dtype)
            self.model = KIPModel(
                self.network,
                self.support_images,
                self.support_labels,
                learn_labels=config.learn_labels,
                kernel=config.kernel,
                reg=config.reg,
                augmenter=augmenter,
                kernel_batch_size=config.kernel_batch_size,
                kernel_memory_budget=config.kernel_memory_budget,
                dtype=config.dtype,
                rf_models=config.rf_models,
                rf_width=config.rf_width,
                rf_seed=config.rf_seed,
                loss=config.loss,
                solve_dtype=None if config.solve_dtype == config.dtype else config.solve_dtype,
            )
            # The reference's Adam (epsilon on the bias-corrected sqrt(v), as in JAX).
            self.model.compile(optimizer=KIPAdam(config.learning_rate))
            self.model.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best = None
            if config.validation and not label_solve:
                self.best = validation.BestSet(
                    self.support_images.shape, self.support_labels.shape, config.dtype
                )
        self.trainer = KIPTrainer(
            self.model,
            self.strategy,
            self.x_target,
            self.y_target,
            self.labels_target,
            config.target_batch_size,
            config.seed,
            jit_compile=augmenter is None or augmenter.xla_compatible,
        )
        # The trainers of in-run test evaluation and validation. Exact KIP: the one
        # trainer, whose model's kernel is exact. A run whose model kernel is not exact
        # sets `eval_trainer` to one of an exact-kernel model sharing the support, and
        # `validation_trainer` per `config.validation_kernel`.
        self.eval_trainer = self.trainer
        self.validation_trainer = self.trainer
        if self.is_chief:
            self.writer = tf.summary.create_file_writer(self.workdir.join("tb"))
        else:
            self.writer = tf.summary.create_noop_writer()

    def evaluate(self, step: int, **extra) -> dict[str, Any]:
        """Test (and validation) evaluation of the current support; updates the best set."""
        progress = Progress(
            len(self.data.x_test),
            f"evaluation at step {step}",
            unit="test images",
            per_unit=(int(self.model.support_images.shape[0]), "pairs"),
            quiet_for=10,
        )
        metrics = self.eval_trainer.evaluate(
            self.data.x_test, self.data.y_test, self.config.eval_tile, progress.update
        )
        check_finite(metrics["test_mse"], "The KRR test prediction", step)
        record = {"step": step, **metrics, **extra}
        if self.best is not None:
            record.update(self.validate(step))
        with self.writer.as_default(step=step):
            tf.summary.scalar("test/accuracy", metrics["test_accuracy"])
            tf.summary.scalar("test/mse", metrics["test_mse"])
            if self.best is not None:
                tf.summary.scalar("validation/loss", record["validation_loss"])
                tf.summary.scalar("validation/accuracy", record["validation_accuracy"])
            if self.is_chief:  # the support set as it is at this evaluation
                images, labels = self.model.distilled()
                tf.summary.image("support", self.support_grid(images, labels)[None])
        logging.info(
            "step %d: test accuracy %.4f, test mse %.5f",
            step,
            metrics["test_accuracy"],
            metrics["test_mse"],
        )
        if self.best is not None and record["best_step"] == step:
            self.write_best(record)
        return record

    def validate(self, step: int) -> dict[str, Any]:
        """Validation loss/accuracy of the current support; counts it in the best set."""
        scores = validation.validation_metrics(
            self.validation_trainer.evaluate(self.x_val, self.y_val, self.config.eval_tile)
        )
        images, labels = self.model.distilled()
        self.best.update(step, scores["validation_loss"], images, labels)
        logging.info(
            "step %d: validation loss %.5f, accuracy %.4f (best: step %d)",
            step,
            scores["validation_loss"],
            scores["validation_accuracy"],
            int(self.best.step.numpy()),
        )
        return {**scores, **self.best.fields()}

    def write_best(self, record: dict[str, Any]) -> None:
        """Writes ``best/`` (the chief) with the best evaluation's ``record``."""
        if self.is_chief:
            self.best.write(self.workdir, record)

    def log_loop(
        self, step: int, num: int, seconds: float, loss: float, acc: float, progress: Progress
    ) -> None:
        """One progress line (with time left) and the train summaries of a host loop."""
        rate = num / seconds
        images = num * self.config.target_batch_size
        progress.update(step)
        left = progress.seconds_left()
        logging.info(
            "step %d/%d: loss %.5f, accuracy %.4f, %s, %s, %s elapsed, %s left",
            step,
            self.config.steps,
            loss,
            acc,
            format_rate(num, seconds, "steps"),
            format_rate(images, seconds, "target images"),
            format_duration(progress.elapsed),
            "?" if left is None else ("~" + format_duration(left) if left else "nothing"),
        )
        with self.writer.as_default(step=step):
            tf.summary.scalar("train/loss", loss)
            tf.summary.scalar("train/accuracy", acc)
            learning_rate = self.model.optimizer.learning_rate
            tf.summary.scalar("learning_rate", float(learning_rate.numpy()))
            tf.summary.scalar("steps_per_second", rate)
            tf.summary.scalar("target_images_per_second", images)

    def support_grid(self, images, labels, path: str | None = None) -> np.ndarray:
        """The (rows, cols, C) uint8 picture: natural start beside ``images``, classes named."""
        return image_grid(
            images,
            labels,
            path=path,
            natural=self.support_images,
            natural_labels=self.support_labels,
            class_names=class_names_for(self.config.dataset, self.data.num_classes),
        )

    def write_outputs(self, step: int) -> None:
        images, labels = self.model.distilled()
        if not self.is_chief:
            return
        self.workdir.write_distilled(images, labels)
        self.support_grid(images, labels, path=self.workdir.join("support.png"))
        self.writer.flush()


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
    run = _Run(config)
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
            run.log_loop(step, num, seconds, train_loss, train_acc, progress)
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


def run_label_solve(config: DistillConfig) -> list[dict[str, Any]]:
    """Label Solve on the natural class-balanced support over the whole train split
    (minus the validation images); the support evaluated before and after (with
    ``eval_every=0``: not evaluated, one record with ``label_solve_seconds``)."""
    run = _Run(config, label_solve=True)
    evaluate = run.evaluate if config.eval_every else (lambda step, **extra: extra)
    natural = evaluate(0, labels="natural")
    progress = Progress(
        len(run.x_target),
        "Label Solve",
        unit="target images",
        per_unit=(int(run.model.support_images.shape[0]), "pairs"),
        quiet_for=10,
    )
    start = time.perf_counter()
    solved_labels = run.trainer.label_solve(
        run.x_target, run.y_target, config.reg, progress=progress.update
    )
    check_finite(solved_labels, "The solved labels")
    seconds = time.perf_counter() - start
    run.model.support_labels.assign(solved_labels)
    solved = evaluate(0, labels="solved", label_solve_seconds=round(seconds, 3))
    records = [natural, solved] if config.eval_every else [dict(solved, step=0)]
    if run.is_chief:
        run.workdir.write_metrics(records)
    run.write_outputs(0)
    return records


def _until(step: int, every: int) -> int:
    return every - step % every


def _remove_tree(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
