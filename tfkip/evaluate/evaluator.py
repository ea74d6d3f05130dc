"""The compiled KRR evaluation of a set (`Evaluator`) and `evaluate_distilled`."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from absl import logging

from tfkip.data import centered_one_hot, load_dataset, make_augmentation
from tfkip.data.subset import balanced_first
from tfkip.evaluate.config import NETWORK_FIELDS, EvaluateConfig
from tfkip.evaluate.source import (
    Source,
    check_fits,
    load_source,
    network_config,
    rebuild_preprocessing,
)
from tfkip.runtime.progress import Progress
from tfkip.sets import released as _released
from tfkip.train.loop import KIPTrainer
from tfkip.train.run import build_network, kernel_model
from tfkip.train.strategy import get_strategy, set_precision_policy


def _trainer(model, strategy, num_classes: int, image_shape, jit_compile: bool):
    """A `KIPTrainer` for evaluation only (a minimal class-balanced target pool)."""

    replicas = strategy.num_replicas_in_sync
    classes = np.repeat(np.arange(num_classes), replicas)
    pool = np.zeros((classes.size, *image_shape), model.dtype)
    targets = np.zeros((classes.size, num_classes), model.dtype)
    return KIPTrainer(
        model, strategy, pool, targets, classes, classes.size, 0, jit_compile=jit_compile
    )


@dataclasses.dataclass
class Evaluator:
    """A compiled KRR evaluation of one set on a test split (see `prepare_evaluator`).

    ``evaluate()`` scores the loaded set; ``evaluate(images, labels)`` scores another set
    of the same shapes and preprocessing (e.g. a run's snapshots) with the same compiled
    program, by assigning it as the model's support.
    """

    trainer: Any
    x_test: np.ndarray
    y_test: np.ndarray
    settings: Any  # the DistillConfig of the kernel network
    source: Source
    dataset: str
    description: dict[str, Any] | None

    def evaluate(self, images=None, labels=None, progress: bool = True) -> dict[str, float]:
        """``test_accuracy``, ``test_mse`` and the kernel's ``pairs_per_second``."""
        model = self.trainer.model
        if images is not None:
            model.support_images.assign(np.asarray(images, model.dtype))
            model.support_labels.assign(np.asarray(labels, model.dtype))
        support = int(model.support_images.shape[0])
        update = None
        if progress:
            pairs = (support, "pairs")
            line = Progress(
                len(self.x_test), "evaluation", unit="test images", per_unit=pairs, quiet_for=5
            )
            update = line.update
        started = time.perf_counter()
        metrics = self.trainer.evaluate(self.x_test, self.y_test, self.settings.eval_tile, update)
        seconds = max(time.perf_counter() - started, 1e-9)
        return {**metrics, "pairs_per_second": round(len(self.x_test) * support / seconds, 3)}


def evaluate_distilled(config: EvaluateConfig) -> dict[str, Any]:
    """KRR test accuracy/MSE of ``config.distilled`` on a dataset's test split.

    Returns:
      A JSON-ready dict: ``test_accuracy``, ``test_mse``, ``kernel``, ``reg``, ``dtype``,
      ``network`` (the architecture settings), ``preprocessing`` (what was applied and
      where it came from), ``dataset``, ``test_examples``, ``support_size``, ``source``
      (the argument), ``which``, ``source_kind``, ``path``, ``reported`` (what the run / metadata
      said for this set, or None), ``index`` (the released index row, or None) with
      ``index_error`` when the index could not be read, and ``seconds``.

    Raises:
      ValueError: bad input (see the messages: shapes, label width, names, settings).
      FileNotFoundError, UnreachablePathError: a path cannot be read.
    """
    start = time.perf_counter()
    evaluator = prepare_evaluator(config)
    metrics = evaluator.evaluate()
    settings, source = evaluator.settings, evaluator.source
    result = {
        **metrics,
        "kernel": settings.kernel,
        "reg": settings.reg,
        "dtype": settings.dtype,
        "network": {name: getattr(settings, name) for name in NETWORK_FIELDS},
        "preprocessing": evaluator.description,
        "dataset": evaluator.dataset,
        "test_examples": len(evaluator.x_test),
        "support_size": int(source.images.shape[0]),
        "source": config.distilled,
        "which": config.which,
        "source_kind": source.kind,
        "path": source.path,
        "reported": source.reported,
        "index": None,
    }
    if source.released is not None and config.lookup_index:
        try:
            result["index"] = _released.find_index_row(
                source.released, config.released_root, config.timeout
            )
        except (OSError, ValueError) as e:  # the index is optional: report, do not fail
            result["index_error"] = str(e)
            logging.warning("Released index not read: %s", e)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def prepare_evaluator(config: EvaluateConfig) -> Evaluator:
    """Loads ``config.distilled`` and the test split, and builds its `Evaluator`.

    Raises:
      ValueError: bad input (see the messages: shapes, label width, names, settings).
      FileNotFoundError, UnreachablePathError: a path cannot be read.
    """

    source = load_source(config)
    dataset = config.dataset or source.dataset
    if not dataset:
        raise ValueError(
            f"The set does not say which dataset it distils; pass --dataset (e.g. "
            f"--dataset=mnist_5k or a TFDS name). Received: dataset=None for {config.distilled!r}"
        )
    if source.dataset and dataset != source.dataset:
        logging.warning("Evaluating a set of %r on the test split of %r.", source.dataset, dataset)
    settings = network_config(source, config, dataset)
    raw = load_dataset(dataset, data_dir=config.data_dir, download=config.download)
    check_fits(source, raw)

    preprocess, description = source.preprocess, source.preprocessing
    if config.preprocessing != "auto" or preprocess is None:
        zca = source.recipe_zca if config.preprocessing == "auto" else config.preprocessing == "zca"
        if zca is None:
            raise ValueError(
                f"{config.distilled!r} carries no preprocessing metadata and its name does not "
                "say whether it was ZCA-whitened; pass --preprocessing=standardize or "
                "--preprocessing=zca. Received: preprocessing='auto'"
            )
        preprocess, description = rebuild_preprocessing(raw, zca, config)
    chosen = np.arange(raw.x_test.shape[0])
    if config.max_test_examples is not None:
        chosen = balanced_first(raw.y_test, config.max_test_examples)
    dtype = np.float64 if settings.dtype == "float64" else np.float32
    x_test = np.asarray(preprocess(raw.x_test[chosen]), dtype)
    y_test = centered_one_hot(raw.y_test[chosen], raw.num_classes, dtype=dtype)

    strategy = get_strategy(config.strategy, config.tpu, config.num_cpu_devices)
    set_precision_policy(settings.dtype)
    network = build_network(settings, raw.num_classes)
    jit = config.jit_compile
    if jit is None:  # as the run compiled its evaluation
        jit = True
        if source.kind == "run" and settings.augment:
            jit = make_augmentation(settings.augmentations, settings.seed, settings.dtype)
            jit = jit.xla_compatible
    with strategy.scope():
        model = kernel_model(network, source.images, source.labels, settings)
    trainer = _trainer(model, strategy, raw.num_classes, raw.image_shape, jit)
    return Evaluator(trainer, x_test, y_test, settings, source, dataset, description)
