"""Validation grid search over the transfer recipe (as nn_training's authors tuned theirs).

For every setting of the grid ``lr_factors x l2s x centers x parameterizations`` the
finite network of ``config.base`` is trained on the distilled set and scored on a
**validation split held out from the train split** (``validation_size`` images, the
last ones of each class in proportion: `validation_split`; ``kip/nn_training`` holds out
the last 5,000 of TFDS's shuffled split; spec §4); the test split is
never looked at during the search. The setting with the best validation accuracy (ties:
lower validation loss, then grid order) is then trained once more and tested on the test
split, and saved to ``workdir/best/`` (``metrics.json``, ``model.keras``).

Learning rate of a setting: ``lr_factor * lr_ntk(parameterization)``, the empirical-NTK
estimate (`tfkip.finite.max_learning_rate`) computed once per parameterization (the
centred network has the same NTK as the plain one), or ``lr_factor * base.learning_rate``
when that is given.

Outputs in ``workdir``:

* ``search.jsonl``: one JSON row per finished setting (``setting``, ``key``,
  ``validation_accuracy``, ``validation_loss``, ``train_accuracy``, ``learning_rate``,
  ``seconds``...). A restarted search skips the settings it already has (resume);
  ``search_config.json`` records the base settings and a different base is refused.
* ``hparams/``: TensorBoard HParams (``tensorboard --logdir workdir/hparams``), one run
  per setting with its validation accuracy and loss.
* ``search_result.json``: the chosen setting, its validation and test metrics.

Parallelism: with ``parallel > 1`` (default strategy only) the settings run in that many
worker processes (each pinned to one GPU when there are GPUs, else sharing the CPU).
Under a distributed strategy (mirrored, multi-worker, TPU) the settings run one after
another, each on all replicas, since the strategy already spreads one setting over them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import multiprocessing
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tfkip.finite.build import build_model
from tfkip.finite.ntk import max_learning_rate
from tfkip.runtime.progress import Progress
from tfkip.transfer.data import load_transfer_data
from tfkip.transfer.recipes import TrainConfig
from tfkip.transfer.train import (
    evaluate_network,
    fit_network,
    resolve_config,
    train_on_arrays,
)

ROWS_FILE = "search.jsonl"
RESULT_FILE = "search_result.json"
MANIFEST_FILE = "search_config.json"
# TrainConfig fields a setting overrides, and fields that do not change what is trained.
_GRID_FIELDS = ("max_lr_factor", "l2", "center", "parameterization")
_NOT_TRAINING = ("workdir", "verbose", "steps_per_loop", "checkpoint_every") + _GRID_FIELDS


@dataclasses.dataclass
class SearchConfig:
    """A validation grid search.

    Attributes:
      base: the `TrainConfig` every setting starts from (``distilled`` required; its
        recipe fills what the grid does not vary, e.g. ``steps``).
      workdir: output folder (required; see the module docstring).
      lr_factors: factors of the empirical-NTK learning rate (``max_lr_factor``).
      l2s: L2 strengths (effective-weight penalty, `tfkip.finite.L2Regularized`).
      centers: whether to train the centred network.
      parameterizations: 'ntk' and/or 'standard'.
      validation_size: images held out from the train split, the last of each class in
        proportion (`validation_split`; > 0, fewer than the train split has).
      parallel: worker processes (1: in this process, with the given strategy).
    """

    base: TrainConfig
    workdir: str
    lr_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    l2s: tuple[float, ...] = (0.0, 1e-4, 1e-3)
    centers: tuple[bool, ...] = (True, False)
    parameterizations: tuple[str, ...] = ("ntk", "standard")
    validation_size: int = 500
    parallel: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.base, TrainConfig) or not self.base.distilled:
            raise ValueError(
                "base must be a TrainConfig naming the distilled set (distilled=...). "
                f"Received: base={self.base!r}"
            )
        if not self.workdir:
            raise ValueError(f"workdir is required for a search. Received: {self.workdir!r}")
        grids = {
            "lr_factors": ("learning-rate factor", "--lr_factor_grid=0.5,1,2"),
            "l2s": ("L2", "--l2_grid=0,1e-3"),
            "centers": ("centring", "--center_grid=true,false"),
            "parameterizations": ("parameterization", "--parameterization_grid=ntk,standard"),
        }
        for name, (what, example) in grids.items():
            values = tuple(getattr(self, name))
            if not values:
                raise ValueError(
                    f"The {what} grid is empty; give it at least one value (e.g. {example}). "
                    f"Received: {name}={values}"
                )
            if len(set(values)) != len(values):
                raise ValueError(f"The {name} grid repeats a value. Received: {name}={values}")
            setattr(self, name, values)
        for setting in self.settings():  # every value checked by TrainConfig itself
            dataclasses.replace(self.base, **setting)
        v = self.validation_size
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"validation_size must be an integer >= 1. Received: {v!r}")
        p = self.parallel
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ValueError(f"parallel must be an integer >= 1. Received: parallel={p!r}")

    def settings(self) -> list[dict[str, Any]]:
        """The grid, in order: dicts of ``max_lr_factor, l2, center, parameterization``."""
        grid = itertools.product(self.lr_factors, self.l2s, self.centers, self.parameterizations)
        return [dict(zip(_GRID_FIELDS, (float(f), float(l2), bool(c), p))) for f, l2, c, p in grid]


def setting_key(setting: dict[str, Any]) -> str:
    """A setting's stable name, e.g. ``lr1_l20.001_centred_ntk`` (row key, trial id)."""
    centred = "centred" if setting["center"] else "plain"
    return (
        f"lr{setting['max_lr_factor']:g}_l2{setting['l2']:g}_{centred}_"
        f"{setting['parameterization']}"
    )


VALIDATION_SPLIT = "stratified-tail"
"""How `validation_split` chooses (recorded with a search: one validated with the old split,
the train split's last images, is not resumed with this one)."""


def validation_split(prepared, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x_val, labels_val)``: ``size`` images of the *train* split, stratified by class.

    Each class gives its last images (in split order), as many as its share of the split:
    ``size * n_c / n``, rounded by largest remainder so that they add up to ``size``. The
    reference holds out the last 5,000 images of TFDS's (shuffled) train split, which is
    stratified in expectation; taking each class's tail keeps that on splits stored sorted
    by label, such as the bundled mnist_5k, whose last 500 images are all 8s and 9s.
    """
    labels = np.asarray(prepared.labels_train)
    n = int(labels.shape[0])
    if size >= n:
        raise ValueError(
            f"The validation split ({size} images) must be smaller than the train split it "
            f"is held out from ({n} images of {prepared.name!r}); lower --validation_size. "
            f"Received: validation_size={size}"
        )
    classes, counts = np.unique(labels, return_counts=True)
    quota = size * counts / n
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: size - int(take.sum())]:
        take[i] += 1
    index = np.sort(
        np.concatenate(
            [np.flatnonzero(labels == c)[counts[i] - take[i] :] for i, c in enumerate(classes)]
        )
    )
    return prepared.x_train[index], labels[index]


# One worker's data (loaded once per process) and the per-setting job.
_WORKER: dict[str, Any] = {}


def _load(base: TrainConfig, validation_size: int) -> dict[str, Any]:
    data = load_transfer_data(base.distilled, base.dataset, base.data_dir)
    x_val, labels_val = validation_split(data.prepared, validation_size)
    return {"data": data, "x_val": x_val, "labels_val": labels_val}


def _init_worker(base: TrainConfig, validation_size: int, gpus: Any) -> None:
    if gpus is not None:  # one GPU per worker process, taken from a shared queue
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    _WORKER.update(_load(base, validation_size))


def _run_setting(config: TrainConfig, key: str, strategy=None) -> dict[str, Any]:
    start = time.perf_counter()
    data = _WORKER["data"]
    fitted = fit_network(data.images, data.labels, config, strategy=strategy)
    val = evaluate_network(fitted, _WORKER["x_val"], _WORKER["labels_val"])
    train = evaluate_network(
        fitted, data.images, np.argmax(data.labels, axis=1), targets=data.labels
    )
    return {
        "key": key,
        "setting": {name: getattr(config, name) for name in _GRID_FIELDS},
        "validation_accuracy": val["accuracy"],
        "validation_loss": val["loss"],
        "train_accuracy": train["accuracy"],
        "train_loss": train["loss"],
        "learning_rate": fitted.learning_rate,
        "steps": int(fitted.wrapper.optimizer.iterations.numpy()),
        "seconds": time.perf_counter() - start,
        "seconds_per_step": fitted.seconds_per_step,
    }


def read_rows(path: str) -> dict[str, dict[str, Any]]:
    """The finished rows of ``search.jsonl`` by key (a torn last line is ignored)."""
    rows: dict[str, dict[str, Any]] = {}
    if not tf.io.gfile.exists(path):
        return rows
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["key"]] = row
    return rows


def _rewrite_rows(path: str, rows: dict[str, dict[str, Any]]) -> None:
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write("".join(json.dumps(row) + "\n" for row in rows.values()))
    tf.io.gfile.rename(tmp, path, overwrite=True)


def search(config: SearchConfig, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Runs (or resumes) the search of ``config``; returns the ``search_result.json`` dict.

    Returns:
      ``best`` (the chosen row), ``test_accuracy`` / ``test_loss`` of the chosen setting
      retrained on the distilled set, ``test_metrics`` (its full `train_on_arrays`
      metrics), ``num_settings``, ``validation_size``, ``seconds``.

    Raises:
      ValueError: a workdir holding a search with a different base, a validation split
        as large as the train split, ``parallel > 1`` under a distributed strategy.
    """
    start = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    default = type(tf.distribute.get_strategy())
    if config.parallel > 1 and not isinstance(strategy, default):
        raise ValueError(
            "Settings run in parallel worker processes only with the default strategy; a "
            "distributed strategy already spreads each setting over its replicas. Use "
            f"--parallel=1 with --strategy. Received: parallel={config.parallel}"
        )
    _WORKER.clear()
    _WORKER.update(_load(config.base, config.validation_size))
    data = _WORKER["data"]
    base = resolve_config(config.base, data.run_config)
    if base.dataset is None:
        base = dataclasses.replace(base, dataset=data.prepared.name)
    base = dataclasses.replace(base, workdir=None, verbose=0, checkpoint_every=0)
    tf.io.gfile.makedirs(config.workdir)
    _check_manifest(config, base)

    rows_path = os.path.join(config.workdir, ROWS_FILE)
    done = read_rows(rows_path)
    _rewrite_rows(rows_path, done)  # drops a torn last line before appending
    settings = config.settings()
    lr = _learning_rates(base, data, {s["parameterization"] for s in settings})
    jobs = []
    for setting in settings:
        key = setting_key(setting)
        if key in done:
            continue
        rate = setting["max_lr_factor"] * lr[setting["parameterization"]]
        jobs.append((dataclasses.replace(base, **setting, learning_rate=rate), key))
    logging.info(
        "Search: %d settings, %d done already, %d to run (validation: last %d train images).",
        len(settings),
        len(settings) - len(jobs),
        len(jobs),
        config.validation_size,
    )
    _write_hparams_config(config)
    progress = Progress(max(len(jobs), 1), "Search", unit="settings", min_interval=0)
    for count, row in enumerate(_run_all(jobs, config, strategy), 1):
        with tf.io.gfile.GFile(rows_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        _write_trial(config.workdir, row)
        done[row["key"]] = row
        logging.info(
            "Search setting %d/%d %s: validation_accuracy=%.4f (%.1f s)",
            count,
            len(jobs),
            row["key"],
            row["validation_accuracy"],
            row["seconds"],
        )
        progress.update(count)

    rows = [done[setting_key(s)] for s in settings]
    order = range(len(rows))
    best = rows[
        max(order, key=lambda i: (rows[i]["validation_accuracy"], -rows[i]["validation_loss"], -i))
    ]
    final = dataclasses.replace(
        base,
        **best["setting"],
        learning_rate=best["learning_rate"],
        workdir=os.path.join(config.workdir, "best"),
    )
    test = train_on_arrays(
        data.images,
        data.labels,
        data.prepared.x_test,
        data.prepared.labels_test,
        final,
        strategy=strategy,
    )
    result = {
        "best": best,
        "test_accuracy": test["test_accuracy"],
        "test_loss": test["test_loss"],
        "test_metrics": test,
        "num_settings": len(settings),
        "validation_size": config.validation_size,
        "learning_rates_ntk": lr,
        "seconds": time.perf_counter() - start,
    }
    with tf.io.gfile.GFile(os.path.join(config.workdir, RESULT_FILE), "w") as f:
        f.write(json.dumps(result, indent=2, sort_keys=True))
    return result


def _learning_rates(base: TrainConfig, data, parameterizations) -> dict[str, float]:
    """The lr that factor 1 means, per parameterization (estimated once each)."""
    if base.learning_rate is not None:
        return {p: float(base.learning_rate) for p in parameterizations}
    out = {}
    num_classes = data.labels.shape[1]
    for p in sorted(parameterizations):
        config = dataclasses.replace(base, parameterization=p)
        probe = build_model(
            config.network(num_classes), data.images.shape[1:], config.width, config.seed
        )
        x = data.ntk_inputs(config.ntk_num_inputs)
        out[p] = max_learning_rate(probe, x, batch_size=config.ntk_batch_size)
    return out


def _run_all(jobs, config: SearchConfig, strategy):
    """Yields the rows of ``jobs`` as they finish (in order when sequential)."""
    if config.parallel == 1 or len(jobs) <= 1:
        for job_config, key in jobs:
            yield _run_setting(job_config, key, strategy)
        return
    context = multiprocessing.get_context("spawn")
    gpus = None
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    if num_gpus:
        gpus = context.Manager().Queue()
        for i in range(config.parallel):
            gpus.put(i % num_gpus)
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(config.parallel, len(jobs)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(config.base, config.validation_size, gpus),
    ) as pool:
        futures = [pool.submit(_run_setting, job_config, key) for job_config, key in jobs]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def _check_manifest(config: SearchConfig, base: TrainConfig) -> None:
    path = os.path.join(config.workdir, MANIFEST_FILE)
    manifest = {
        "base": {k: v for k, v in base.to_dict().items() if k not in _NOT_TRAINING},
        "validation_size": config.validation_size,
        "validation_split": VALIDATION_SPLIT,
    }
    manifest = json.loads(json.dumps(manifest))
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            before = json.load(f)
        if before != manifest:
            changed = sorted(
                k
                for k in set(before["base"]) | set(manifest["base"])
                if before["base"].get(k) != manifest["base"].get(k)
            )
            changed += [
                k for k in ("validation_size", "validation_split") if before.get(k) != manifest[k]
            ]
            raise ValueError(
                f"{config.workdir!r} holds a search with different base settings; use a new "
                f"workdir (or the same settings to resume). Received: changed={changed}"
            )
        return
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True))


def _write_hparams_config(config: SearchConfig) -> None:
    from tensorboard.plugins.hparams import api as hp

    hparams = [
        hp.HParam("max_lr_factor", hp.Discrete(list(config.lr_factors))),
        hp.HParam("l2", hp.Discrete([float(v) for v in config.l2s])),
        hp.HParam("center", hp.Discrete(list(config.centers))),
        hp.HParam("parameterization", hp.Discrete(list(config.parameterizations))),
    ]
    metrics = [
        hp.Metric("validation_accuracy", display_name="validation accuracy"),
        hp.Metric("validation_loss", display_name="validation loss"),
    ]
    with tf.summary.create_file_writer(os.path.join(config.workdir, "hparams")).as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)


def _write_trial(workdir: str, row: dict[str, Any]) -> None:
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(os.path.join(workdir, "hparams", row["key"]))
    with writer.as_default():
        hp.hparams(row["setting"], trial_id=row["key"])
        for name in ("validation_accuracy", "validation_loss", "train_accuracy"):
            tf.summary.scalar(name, row[name], step=row["steps"])
    writer.close()
