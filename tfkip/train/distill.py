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

``run_label_solve(config)``: the same setup, then Label Solve of the natural support over
the whole train split, evaluated before ("natural") and after ("solved").
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tfkip import architectures, io
from tfkip.data import class_balanced_indices, make_augmentation, prepare
from tfkip.export.grid import class_names_for, image_grid
from tfkip.kip.krr import check_finite
from tfkip.kip.model import KIPModel
from tfkip.kip.optimizer import KIPAdam
from tfkip.progress import Progress, format_duration, format_rate
from tfkip.train.config import DistillConfig
from tfkip.train.loop import KIPTrainer
from tfkip.train.preemption import Preempted, TerminationWatcher
from tfkip.train.strategy import get_strategy, is_chief, set_precision_policy, worker_dir
from tfkip.train.workdir import Workdir


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
        idx = class_balanced_indices(data.labels_train, config.support_per_class, config.seed)
        self.support_images, self.support_labels = data.x_train[idx], data.y_train[idx]
        # Every worker reads the chief's workdir (config, metrics, checkpoints: it must be a
        # shared path such as gs:// for multi-worker runs); only the chief writes outputs.
        # Other workers must take part in checkpoint saves (collectives), so they save
        # into a scratch folder of their own that is removed after each save.
        self.workdir = Workdir(config.workdir)
        self.checkpoint_dir = self.workdir.join("checkpoints")
        if not self.is_chief:
            self.checkpoint_dir = io.join(worker_dir(config.workdir), "checkpoints")
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
        self.resumed = self.workdir.check_or_write_config(full, identity, write=self.is_chief)
        if self.is_chief:
            for path in self.workdir.remove_interrupted_writes():
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
        self.trainer = KIPTrainer(
            self.model,
            self.strategy,
            data.x_train,
            data.y_train,
            data.labels_train,
            config.target_batch_size,
            config.seed,
            jit_compile=augmenter is None or augmenter.xla_compatible,
        )
        if self.is_chief:
            self.writer = tf.summary.create_file_writer(self.workdir.join("tb"))
        else:
            self.writer = tf.summary.create_noop_writer()

    def evaluate(self, step: int, **extra) -> dict[str, Any]:
        progress = Progress(
            len(self.data.x_test), f"evaluation at step {step}", unit="test images", quiet_for=10
        )
        metrics = self.trainer.evaluate(
            self.data.x_test, self.data.y_test, self.config.eval_tile, progress.update
        )
        check_finite(metrics["test_mse"], "The KRR test prediction", step)
        record = {"step": step, **metrics, **extra}
        with self.writer.as_default(step=step):
            tf.summary.scalar("test/accuracy", metrics["test_accuracy"])
            tf.summary.scalar("test/mse", metrics["test_mse"])
            if self.is_chief:  # the support set as it is at this evaluation
                images, labels = self.model.distilled()
                tf.summary.image("support", self.support_grid(images, labels)[None])
        logging.info(
            "step %d: test accuracy %.4f, test mse %.5f",
            step,
            metrics["test_accuracy"],
            metrics["test_mse"],
        )
        return record

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


def run_distillation(config: DistillConfig) -> dict[str, Any]:
    """Runs (or resumes) KIP; returns the last metrics record. See module docstring.

    Raises:
      Preempted: after SIGTERM, once a checkpoint at the current step is saved (rerun
        the same configuration to resume).
    """
    run = _Run(config)
    model, step_var = run.model, run.step
    # The augmentation's random state (Keras SeedGenerator variables) is checkpointed too,
    # so that a resumed run draws the same transforms as an uninterrupted one.
    rng = list(model.augmenter.variables) if model.augmenter is not None else []
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=model.optimizer, step=step_var, augmentation_rng=rng
    )
    manager = tf.train.CheckpointManager(checkpoint, run.checkpoint_dir, max_to_keep=3)
    handler = _preemption_handler(run.strategy, manager)
    latest = tf.train.latest_checkpoint(run.workdir.join("checkpoints"))  # the chief's
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", latest, int(step_var))
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
    if not records:
        records.append(run.evaluate(step, train_loss=None, train_accuracy=None))
        if run.is_chief:
            run.workdir.write_metrics(records)

    def save(step: int) -> None:
        manager.save(checkpoint_number=step)
        if not run.is_chief:
            _remove_tree(run.checkpoint_dir)  # scratch copy of a non-chief worker

    # Time left is estimated from this process's own speed (a resumed run's too).
    progress = Progress(
        max(config.steps, 1), "KIP", start=min(step, config.steps), log_fn=lambda line: None
    )
    with TerminationWatcher(run.strategy) as watcher:
        while step < config.steps:
            num = min(config.steps_per_loop, config.steps - step)
            num = min(num, _until(step, config.eval_every), _until(step, config.checkpoint_every))
            start = time.perf_counter()
            train_loss, train_acc = run.trainer.train(step, num)
            seconds = time.perf_counter() - start
            step += num
            step_var.assign(step)
            run.log_loop(step, num, seconds, train_loss, train_acc, progress)
            if step % config.eval_every == 0 or step == config.steps:
                records.append(run.evaluate(step, train_loss=train_loss, train_accuracy=train_acc))
                if run.is_chief:
                    run.workdir.write_metrics(records)
            saved = step % config.checkpoint_every == 0 or step == config.steps
            if saved:
                save(step)
                if step < config.steps:
                    run.write_outputs(step)
            if handler is not None:
                handler.save_checkpoint_if_preempted(checkpoint_number=step)
            if step < config.steps and watcher.should_stop():
                if not saved:
                    save(step)
                logging.warning("Checkpoint saved at step %d; stopping (SIGTERM).", step)
                raise Preempted(step)
    run.write_outputs(step)
    if not run.is_chief:
        _remove_tree(worker_dir(config.workdir))
    return records[-1]


def run_label_solve(config: DistillConfig) -> list[dict[str, Any]]:
    """Label Solve on the natural class-balanced support over the whole train split."""
    run = _Run(config, label_solve=True)
    natural = run.evaluate(0, labels="natural")
    progress = Progress(len(run.data.x_train), "Label Solve", unit="target images", quiet_for=10)
    solved_labels = run.trainer.label_solve(
        run.data.x_train, run.data.y_train, config.reg, progress=progress.update
    )
    check_finite(solved_labels, "The solved labels")
    run.model.support_labels.assign(solved_labels)
    solved = run.evaluate(0, labels="solved")
    if run.is_chief:
        run.workdir.write_metrics([natural, solved])
    run.write_outputs(0)
    return [natural, solved]


def _until(step: int, every: int) -> int:
    return every - step % every


def _remove_tree(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def _preemption_handler(strategy, manager):
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
