"""Training a finite network on a (distilled) support set, then testing it.

The transfer recipe of ``kip/nn_training.ipynb`` (spec §4), with `keras.Model.fit`, in
the settings of a `TrainConfig` (whose ``recipe`` fills parameterization, centring, L2
and steps; see `tfkip.transfer.recipes`):

* loss ``0.5 * mean((f(x) - y)^2)`` on the centred labels (or softmax cross-entropy on
  the argmax one-hot labels), plus ``0.5 * l2 * sum(w^2)`` over the effective weights
  (`tfkip.finite.L2Regularized`; the reference's ``sum(theta^2)`` under 'standard');
* `keras.optimizers.SGD` with momentum 0.9 on a `keras.optimizers.schedules.CosineDecay`
  from ``lr0`` to 0 over ``steps``;
* ``lr0`` from the empirical NTK of the initial network (`max_learning_rate`) unless given:
  on held-out train images (the reference) and, in the default recipe, also on the
  support images themselves, taking the smaller. Gradient descent on the support is
  stable below ``2 / lambda_max`` of *their* NTK; a distilled set whose images are larger
  than natural ones (random-feature KIP sets: about 3x the norm) has a larger NTK, and the
  held-out estimate alone then trains it out of the lazy regime (docs/transfer.md);
* batches of ``batch_size`` (the whole set when smaller), reshuffled every epoch with
  the run's seed;
* test accuracy / loss on the real test split in the distilled images' space.

With ``center=True`` (the default recipe; not in the reference) the network trained is
the centred ``f(x; theta) - f(x; theta_0)``, which removes the random initial function
from the predictions; with 10 images this noise otherwise dominates the test predictions.
``workdir/model.keras`` holds the trained function (centred, frozen initial copy inside)
rebuilt from built-in Keras layers (`tfkip.finite.plain_keras_model`), so plain
``keras.models.load_model`` loads it and its predictions are the trained network's.

The model is built, compiled and fitted inside ``strategy.scope()``, so any
`tfkip.train.get_strategy` strategy runs it (Keras scales the per-replica loss so the
summed gradients equal the global-batch mean, and the L2 term counts once).

>>> from tfkip.transfer import TrainConfig, train
>>> metrics = train(TrainConfig(distilled="/tmp/kip_run", workdir="/tmp/fin"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfkip import files
from tfkip.data.preprocess import centered_one_hot
from tfkip.finite.build import build_model
from tfkip.finite.ntk import max_learning_rate
from tfkip.finite.plain import plain_keras_model
from tfkip.train.strategy import is_chief, replica_batch_size, worker_dir
from tfkip.transfer.data import load_transfer_data
from tfkip.transfer.model import L2Regularized, StepTimer, half_mse
from tfkip.transfer.recipes import TrainConfig, canonical_architecture

METRICS_FILE = "metrics.json"
_MWMS = tf.distribute.MultiWorkerMirroredStrategy
MODEL_FILE = "model.keras"


@dataclasses.dataclass(eq=False)
class FitResult:
    """A fitted finite network (`fit_network`).

    Attributes:
      wrapper: the compiled `L2Regularized` training model.
      trained: ``f(.; theta)``, the trained `build_model` network.
      initial: its frozen initial copy ``f(.; theta_0)`` if centred, else None.
      network: what predicts: ``trained - initial`` if centred, else ``trained``.
      config: the run's `TrainConfig`; learning_rate, learning_rate_source, ntk_seconds:
        lr0 and where it came from; seconds_per_step; final_train_loss_with_l2.
    """

    wrapper: L2Regularized
    trained: keras.Model
    initial: keras.Model | None
    network: keras.Model
    config: TrainConfig
    learning_rate: float
    learning_rate_source: str
    ntk_seconds: float
    seconds_per_step: float
    final_train_loss_with_l2: float

    def export(self) -> keras.Model:
        """The predicting function as built-in Keras layers (`plain_keras_model`)."""
        return plain_keras_model(self.trained, self.initial)


def resolve_config(config: TrainConfig, run_config: dict[str, Any]) -> TrainConfig:
    """Fills the network settings from a run's ``config.json`` when ``config`` has none.

    With ``config.architecture`` None, the run's ``architecture`` and, if set there,
    ``depth``, ``W_std``, ``b_std``, ``activation`` and ``readout`` are taken over (an
    explicit ``config.depth`` wins); the width and parameterization stay the finite
    network's own. ``dataset`` is taken over if unset.
    """
    changes: dict[str, Any] = {}
    if config.architecture is None:
        arch = run_config.get("architecture")
        changes["architecture"] = canonical_architecture(arch) if arch else "convnet"
        if config.depth is None and arch and run_config.get("depth") is not None:
            changes["depth"] = int(run_config["depth"])
        if arch:
            for key in ("W_std", "b_std"):  # b_std None (no bias) is a setting too
                if key in run_config:
                    changes[key] = run_config[key]
            for key in ("activation", "readout"):
                if run_config.get(key) is not None:
                    changes[key] = run_config[key]
    if config.dataset is None and run_config.get("dataset"):
        changes["dataset"] = run_config["dataset"]
    return dataclasses.replace(config, **changes) if changes else config


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains the finite network of ``config`` on ``config.distilled``; see `train_on_arrays`.

    The dataset, data_dir, architecture and depth default to the run's ``config.json``;
    the test split is prepared as the run's was and any mismatch is refused
    (`tfkip.transfer.data.check_compatible`).
    """
    if not config.distilled:
        raise ValueError("config.distilled must name a distill workdir or an .npz. Received: None")
    data = load_transfer_data(config.distilled, config.dataset, config.data_dir)
    config = resolve_config(config, data.run_config)
    if config.dataset is None:
        config = dataclasses.replace(config, dataset=data.prepared.name)
    return train_on_arrays(
        data.images,
        data.labels,
        data.prepared.x_test,
        data.prepared.labels_test,
        config,
        x_ntk=data.ntk_inputs(config.ntk_num_inputs),
        strategy=strategy,
    )


def train_on_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    x_test: np.ndarray,
    labels_test: np.ndarray,
    config: TrainConfig,
    *,
    x_ntk: np.ndarray | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Trains ``config``'s finite network on ``(images, labels)`` and tests it.

    Args:
      images: ``(N, H, W, C)`` training images (preprocessed space).
      labels: ``(N, K)`` float targets (centred one-hot or learned); for 'xent' their
        argmax is the class.
      x_test: ``(M, H, W, C)`` test images in the same space; labels_test: ``(M,)`` ints.
      config: the recipe; ``config.architecture`` None means 'convnet'.
      x_ntk: inputs of the learning-rate estimate (the first ``ntk_num_inputs`` are
        used); default: ``images``.
      strategy: a `tf.distribute.Strategy`; default: the current one.

    Returns:
      The metrics (also written to ``workdir/metrics.json`` with ``workdir/model.keras``,
      by the chief only under a multi-worker strategy): ``test_accuracy``,
      ``test_loss`` (without L2), ``test_loss_with_l2``, ``train_accuracy``,
      ``train_loss``, ``learning_rate`` (lr0), ``learning_rate_source``,
      ``seconds_per_step``, ``ntk_seconds``, ``num_params``, ``num_replicas``, ``config``.
    """
    strategy = strategy or tf.distribute.get_strategy()
    _check_arrays(images, labels, x_test, labels_test)
    fitted = fit_network(images, labels, config, x_ntk=x_ntk, strategy=strategy)
    test = evaluate_network(fitted, x_test, labels_test)
    trained = evaluate_network(fitted, images, np.argmax(labels, axis=1), targets=labels)
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_loss_with_l2": test["loss_with_l2"],
        "train_accuracy": trained["accuracy"],
        "train_loss": trained["loss"],
        "learning_rate": fitted.learning_rate,
        "learning_rate_source": fitted.learning_rate_source,
        "ntk_seconds": fitted.ntk_seconds,
        "seconds_per_step": fitted.seconds_per_step,
        "steps": int(fitted.wrapper.optimizer.iterations.numpy()),
        "batch_size": min(config.batch_size, len(images)),
        "num_train_images": int(len(images)),
        "num_test_images": int(len(x_test)),
        "num_params": int(sum(np.prod(v.shape) for v in fitted.trained.trainable_variables)),
        "num_replicas": int(strategy.num_replicas_in_sync),
        "final_train_loss_with_l2": fitted.final_train_loss_with_l2,
        "config": fitted.config.to_dict(),
    }
    if config.workdir and is_chief(strategy):
        with files.atomic_files() as out:  # the model and its metrics appear together
            fitted.export().save(out.temp(files.join(config.workdir, MODEL_FILE), True))
            text = json.dumps(metrics, indent=2, sort_keys=True)
            out.write_bytes(files.join(config.workdir, METRICS_FILE), text.encode("utf-8"))
    return metrics


def fit_network(
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    *,
    x_ntk: np.ndarray | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> FitResult:
    """Builds, compiles and fits ``config``'s network on ``(images, labels)``.

    ``images`` ``(N, ...)`` and ``labels`` ``(N, K)`` as in `train_on_arrays`. The
    learning rate is ``config.learning_rate`` or ``max_lr_factor`` times the
    empirical-NTK estimate on ``x_ntk[:ntk_num_inputs]`` (held-out images) and, except
    in the reference recipe, on ``images[:ntk_num_inputs]``, whichever is smaller
    (module docstring); ``images`` alone without ``x_ntk``. With a
    ``workdir``, TensorBoard logs go to ``workdir/tb`` and (``checkpoint_every``) backups
    to ``workdir/backup``. Nothing is evaluated or saved here.
    """
    strategy = strategy or tf.distribute.get_strategy()
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.float32)
    num_classes = labels.shape[1]
    image_shape = tuple(images.shape[1:])
    network = config.network(num_classes)
    try:
        network.output_shape(image_shape)
    except ValueError as err:
        raise ValueError(
            f"Architecture {config.architecture or 'convnet'!r} (depth {config.depth}) does not "
            f"fit images of shape {image_shape}: {err}"
        ) from err
    keras.utils.set_random_seed(config.seed)
    batch = min(config.batch_size, images.shape[0])
    replica_batch_size(batch, strategy)  # ValueError unless it divides evenly

    ntk_seconds, source = 0.0, "given"
    lr0 = config.learning_rate
    if lr0 is None:
        probes = [images[: config.ntk_num_inputs]]
        if x_ntk is not None:
            held_out = np.asarray(x_ntk, np.float32)[: config.ntk_num_inputs]
            probes = [held_out] + (probes if config.recipe != "reference" else [])
        start = time.perf_counter()
        probe = build_model(network, image_shape, config.width, config.seed)
        rates = [max_learning_rate(probe, x, batch_size=config.ntk_batch_size) for x in probes]
        lr0 = config.max_lr_factor * min(rates)
        ntk_seconds, source = time.perf_counter() - start, "ntk_estimate"
        if len(rates) == 2 and rates[1] < rates[0]:
            source = "ntk_estimate_support"  # the support's own NTK was the larger
        del probe
        logging.info("Empirical-NTK learning rate: %.6g (%.1f s)", lr0, ntk_seconds)

    if config.loss == "mse":
        targets, loss_fn = labels, half_mse
    else:
        targets = np.eye(num_classes, dtype=np.float32)[np.argmax(labels, axis=1)]
        loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)

    steps_per_execution = config.steps_per_loop
    if isinstance(strategy, _MWMS) and steps_per_execution > 1:
        # Keras 3.15's multi-step loop fails to run under this strategy ("You must feed a
        # value for placeholder tensor"); one step per call works.
        logging.warning(
            "steps_per_loop=%d -> 1 under MultiWorkerMirroredStrategy.", steps_per_execution
        )
        steps_per_execution = 1
    with strategy.scope():
        trained = build_model(network, image_shape, config.width, config.seed, name="finite")
        initial, model = None, trained
        if config.center:
            model, initial = _centered_model(trained, network, image_shape, config, both=True)
        wrapper = L2Regularized(model, config.l2)
        schedule = keras.optimizers.schedules.CosineDecay(lr0, config.steps)
        wrapper.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=config.momentum),
            loss=loss_fn,
            metrics=[
                keras.metrics.CategoricalAccuracy(name="accuracy"),
                keras.metrics.MeanMetricWrapper(_raw_loss(config.loss), name="raw_loss"),
            ],
            steps_per_execution=steps_per_execution,
        )
        wrapper(images[:1])  # build (BackupAndRestore needs a built model)

    train_ds = (
        tf.data.Dataset.from_tensor_slices((images, targets))
        .shuffle(images.shape[0], seed=config.seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    timer = StepTimer()
    callbacks: list[keras.callbacks.Callback] = [timer]
    if config.workdir:
        # Non-chief workers (multi-worker) log and back up into their own scratch folder.
        logdir = config.workdir if is_chief(strategy) else worker_dir(config.workdir)
        tf.io.gfile.makedirs(logdir)
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(logdir, "tb"), write_graph=False))
        if config.checkpoint_every:
            callbacks.append(keras.callbacks.BackupAndRestore(os.path.join(logdir, "backup")))
    per_epoch = config.checkpoint_every or config.steps
    history = wrapper.fit(
        train_ds,
        epochs=config.steps // per_epoch,
        steps_per_epoch=per_epoch,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself, with the run's seed
        verbose=config.verbose,
    )
    return FitResult(
        wrapper=wrapper,
        trained=trained,
        initial=initial,
        network=model,
        config=config,
        learning_rate=float(lr0),
        learning_rate_source=source,
        ntk_seconds=ntk_seconds,
        seconds_per_step=timer.seconds_per_step(),
        final_train_loss_with_l2=float(history.history["loss"][-1]),
    )


def evaluate_network(
    fitted: FitResult,
    x: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy and loss of a fitted network on ``(x, labels)``.

    Args:
      fitted: a `fit_network` result.
      x: ``(M, ...)`` images in the training images' space; labels: ``(M,)`` class ids.
      targets: ``(M, K)`` regression targets of the MSE loss; default: the centred
        one-hot labels (for 'xent': the one-hot labels).

    Returns:
      ``accuracy`` (argmax agreement), ``loss`` (without L2), ``loss_with_l2``.
    """
    config = fitted.config
    num_classes = int(fitted.network.outputs[0].shape[-1])
    labels = np.asarray(labels).astype(np.int64)
    if config.loss == "xent":
        targets = np.eye(num_classes, dtype=np.float32)[labels]
    elif targets is None:
        targets = centered_one_hot(labels, num_classes, np.float32)
    ds = tf.data.Dataset.from_tensor_slices(
        (np.asarray(x, np.float32), np.asarray(targets, np.float32))
    ).batch(config.eval_batch_size)
    out = fitted.wrapper.evaluate(ds, verbose=0, return_dict=True)
    return {
        "accuracy": float(out["accuracy"]),
        "loss": float(out["raw_loss"]),
        "loss_with_l2": float(out["loss"]),
    }


def _centered_model(model, network, image_shape, config, both: bool = False):
    """``x -> model(x) - initial(x)`` with ``initial`` a frozen copy of ``model`` now.

    Returns the centred model, or ``(centred, initial)`` if ``both``.
    """
    initial = build_model(network, image_shape, config.width, config.seed, name="initial")
    initial.set_weights(model.get_weights())
    initial.trainable = False
    inputs = keras.Input(image_shape, name="images" if len(image_shape) == 3 else "inputs")
    outputs = keras.layers.Subtract(name="centered")([model(inputs), initial(inputs)])
    centred = keras.Model(inputs, outputs, name="finite_centered")
    return (centred, initial) if both else centred


def _raw_loss(loss: str):
    if loss == "mse":
        return half_mse

    def xent(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True)

    return xent


def _check_arrays(images, labels, x_test, labels_test) -> None:
    images = np.asarray(images)
    labels = np.asarray(labels)
    x_test = np.asarray(x_test)
    labels_test = np.asarray(labels_test)
    if images.ndim not in (2, 4) or not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            "images must be float (N, H, W, C) images or (N, d) vectors. "
            f"Received: images.shape={images.shape}, dtype={images.dtype}"
        )
    if labels.ndim != 2 or labels.shape[0] != images.shape[0] or labels.shape[1] < 2:
        raise ValueError(
            f"labels must be (N, num_classes) with N = {images.shape[0]} and >= 2 classes. "
            f"Received: labels.shape={labels.shape}"
        )
    if x_test.shape[1:] != images.shape[1:]:
        raise ValueError(
            f"Test images must have the training images' shape {images.shape[1:]}. "
            f"Received: x_test.shape={x_test.shape}"
        )
    if (
        labels_test.shape != (x_test.shape[0],)
        or not np.issubdtype(labels_test.dtype, np.integer)
        or labels_test.min() < 0
        or labels_test.max() >= labels.shape[1]
    ):
        raise ValueError(
            f"labels_test must be ({x_test.shape[0]},) class ids in [0, {labels.shape[1]}) "
            f"(the label width). Received: labels_test.shape={labels_test.shape}, "
            f"range=[{labels_test.min()}, {labels_test.max()}]"
        )
    return None
