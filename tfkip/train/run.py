"""The state of one distillation run: its data, model, trainers, evaluation and outputs.

`Run` prepares a workdir (config check, preprocessing, interrupted writes removed), the
class-balanced support and targets (minus the validation images), the `KIPModel` and its
`KIPTrainer` under the strategy, and writes what a run leaves behind (``distilled.npz``,
``support.png``, ``metrics.jsonl``, ``best/``, TensorBoard). `run_distillation`
(`tfkip.train.distill`) and `run_label_solve` (`tfkip.train.label_solve`) drive it.
"""

from __future__ import annotations

import dataclasses
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
from tfkip.train.config import DistillConfig
from tfkip.train.loop import KIPTrainer
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


def kernel_model(network, images, labels, config: DistillConfig, **overrides) -> KIPModel:
    """A `KIPModel` of ``network`` with support ``(images, labels)`` and the kernel settings
    of ``config`` (kernel, ridge, tiles, memory budget, dtype, random-feature twins);
    ``overrides`` replace or add constructor arguments. Call it under the strategy's scope."""
    options = dict(
        kernel=config.kernel,
        reg=config.reg,
        kernel_batch_size=config.kernel_batch_size,
        kernel_memory_budget=config.kernel_memory_budget,
        dtype=config.dtype,
        rf_models=config.rf_models,
        rf_width=config.rf_width,
        rf_seed=config.rf_seed,
        rf_dtype=config.rf_dtype,
    )
    return KIPModel(network, images, labels, **{**options, **overrides})


class Run:
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
            for path in self.workdir.remove_interrupted_writes():
                logging.info("Removed %s, left by an interrupted write.", path)
            data.preprocessor.save(self.workdir.join("preprocessing.npz"))
        with self.strategy.scope():
            augmenter = None
            if config.augment and not label_solve:
                augmenter = make_augmentation(config.augmentations, config.seed, config.dtype)
            self.model = kernel_model(
                self.network,
                self.support_images,
                self.support_labels,
                config,
                learn_labels=config.learn_labels,
                augmenter=augmenter,
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
        self.trainer = self._trainer(self.model, config, augmenter)
        # The trainers of in-run test evaluation and validation. Exact KIP: the one
        # trainer, whose model's kernel is exact. A random-feature run evaluates with a
        # second model of the exact kernel it estimates (`exact_trainer`, its support
        # copied in before each evaluation) where `eval_kernel` / `validation_kernel`
        # ask for it, and with its own fixed twins otherwise.
        self.eval_trainer = self.trainer
        self.validation_trainer = self.trainer
        self.exact_trainer = None
        if not self.model.exact and not label_solve:
            exact = config.eval_kernel == "exact"
            if exact or config.validation_kernel == "exact":
                self.exact_trainer = self._exact_trainer(config, augmenter)
            if exact:
                self.eval_trainer = self.exact_trainer
            if config.validation_kernel == "exact":
                self.validation_trainer = self.exact_trainer
        if self.is_chief:
            self.writer = tf.summary.create_file_writer(self.workdir.join("tb"))
        else:
            self.writer = tf.summary.create_noop_writer()

    def _exact_trainer(self, config: DistillConfig, augmenter) -> KIPTrainer:
        """A trainer of the exact NNGP that a random-feature run estimates (evaluation
        only: the run's support is copied into its model by `_sync_exact`)."""
        with self.strategy.scope():
            model = kernel_model(
                self.network, self.support_images, self.support_labels, config, kernel="nngp"
            )
        # XLA whatever the run's steps use: the exact recursions need its fusions.
        return self._trainer(model, config, augmenter, jit_compile=True)

    def _trainer(
        self, model: KIPModel, config: DistillConfig, augmenter, jit_compile: bool | None = None
    ) -> KIPTrainer:
        """The run's `KIPTrainer` of ``model``: its targets, batch, seed and compilation
        (``jit_compile`` None: ``config.jit_compile``; never XLA for an augmenter that
        XLA cannot compile)."""
        jit_compile = config.jit_compile if jit_compile is None else jit_compile
        return KIPTrainer(
            model,
            self.strategy,
            self.x_target,
            self.y_target,
            self.labels_target,
            config.target_batch_size,
            config.seed,
            jit_compile=jit_compile and (augmenter is None or augmenter.xla_compatible),
        )

    def _sync_exact(self) -> None:
        if self.exact_trainer is not None:
            exact = self.exact_trainer.model
            exact.support_images.assign(tf.cast(self.model.support_images, exact.dtype))
            exact.support_labels.assign(tf.cast(self.model.support_labels, exact.dtype))

    def evaluate(self, step: int, **extra) -> dict[str, Any]:
        """Test (and validation) evaluation of the current support; updates the best set."""
        self._sync_exact()
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
        self,
        step: int,
        num: int,
        seconds: float,
        loss: float,
        acc: float,
        progress: Progress,
        budget_left: float | None = None,
    ) -> None:
        """One progress line (with time left: to the last step, or to the end of the
        ``max_time`` budget, ``budget_left`` seconds, if that comes first) and the train
        summaries of a host loop."""
        rate = num / seconds
        images = num * self.config.target_batch_size
        progress.update(step)
        left = progress.seconds_left()
        if left is None:
            left_text = "?"
        else:
            left_text = "~" + format_duration(left) if left else "nothing"
        if budget_left is not None and (left is None or budget_left < left):
            left_text = f"~{format_duration(max(budget_left, 0.0))} (of --max_time)"
        logging.info(
            "step %d/%d: loss %.5f, accuracy %.4f, %s, %s, %s elapsed, %s left",
            step,
            self.config.steps,
            loss,
            acc,
            format_rate(num, seconds, "steps"),
            format_rate(images, seconds, "target images"),
            format_duration(progress.elapsed),
            left_text,
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
