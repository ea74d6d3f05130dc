"""`KIPModel`: a Keras model whose weights are the support set.

``fit`` runs KIP (each ``train_step`` takes one target batch, computes the KIP loss of
the support set through the kernel, and updates the support images, and with
``learn_labels=True`` the labels); ``evaluate`` reports the KRR test accuracy and MSE of
the current support; ``predict`` gives KRR predictions.

The per-step computation, `KIPModel.kip_gradients`, is shared with the distributed custom
training loop (`tfkip.train.loop`), so there is a single copy of the algorithm.
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfkip.kernels import Network, tiling
from tfkip.kernels.random_features import RandomFeatureNNGP
from tfkip.kip import krr
from tfkip.kip.loss import check_loss, platt_and_accuracy

KERNELS = ("ntk", "nngp", "rf_nngp")
# The random-feature key of evaluation, prediction and Label Solve: fixed twins, apart
# from every training step's (steps count from 0).
EVAL_STEP = -1


@keras.saving.register_keras_serializable(package="tfkip")
class KIPModel(keras.Model):
    """KIP as a Keras model.

    Args:
      network: the `tfkip.kernels` network whose kernel is used.
      support_images: (n_s, ...) initial support images (preprocessed space).
      support_labels: (n_s, C) initial support labels (e.g. centred one-hot).
      learn_labels: also learn the labels (else they stay fixed).
      kernel: 'ntk' or 'nngp' (exact), or 'rf_nngp': the NNGP estimated from random finite
        twins of the network (`tfkip.kernels.random_features`), ``rf_models`` twins of
        width ``rf_width`` drawn afresh at every KIP step from ``(rf_seed, step)``;
        evaluation, prediction and Label Solve use the fixed twins of step `EVAL_STEP`.
      reg: trace-scaled KRR ridge (KIP.ipynb default 1e-6).
      augmenter: optional callable (e.g. `tfkip.data.SupportAugmenter`) applied to the
        support images in each training step (``training=True``).
      kernel_batch_size: optional kernel tile size (bounded memory for pooled kernels).
      dtype: 'float64' (default; exact on CPU/GPU) or 'float32' (TPU).
      kernel_memory_budget: bytes one kernel tile may use when ``kernel_batch_size`` is
        None (`tiling.plan_tiles`; None: `tiling.DEFAULT_MEMORY_BUDGET`, 256 MiB). A
        budget that holds the whole ``K_ss`` and ``K_ts`` (one batch of input pairs,
        `Network.kip_kernel_fn`) leaves them untiled, which skips the recomputation of
        the tiles' forward pass: faster, at more memory (docs/kernels.md).
      rf_models, rf_width, rf_seed: the random-feature kernel's twins (``rf_nngp`` only).
      rf_dtype: dtype of the twins' forward passes (None: ``dtype``; 'bfloat16' for speed,
        see `tfkip.kernels.RandomFeatureNNGP`).
      loss: 'mse' (KIP: ``0.5 mean (pred - y)^2``) or 'platt' (cross-entropy of
        ``exp(k) pred`` with a learned log-temperature ``k``, a trainable weight starting
        at ``log_temperature``; RFAD).
      solve_dtype: dtype of the KRR solve (None: the model's). 'float64' solves a
        float32 model's kernels in float64 (not on TPU).

    >>> import keras, numpy as np
    >>> from tfkip import architectures
    >>> rng = np.random.default_rng(0)
    >>> model = KIPModel(architectures.get("fc", 1), rng.standard_normal((4, 8)),
    ...                  np.eye(2)[[0, 0, 1, 1]] - 0.5)
    >>> model.compile(optimizer=keras.optimizers.Adam(0.04))
    >>> xt, yt = rng.standard_normal((6, 8)), np.eye(2)[[0, 1] * 3] - 0.5
    >>> history = model.fit(xt, yt, batch_size=6, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']
    """

    def __init__(
        self,
        network: Network,
        support_images,
        support_labels,
        learn_labels: bool = False,
        kernel: str = "ntk",
        reg: float = 1e-6,
        augmenter=None,
        kernel_batch_size: int | None = None,
        dtype: str = "float64",
        kernel_memory_budget: int | None = None,
        rf_models: int = 8,
        rf_width: int = 128,
        rf_seed: int = 0,
        rf_dtype: str | None = None,
        loss: str = "mse",
        log_temperature: float = 0.0,
        solve_dtype: str | None = None,
        **kwargs,
    ):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'. Received: dtype={dtype!r}")
        super().__init__(dtype=dtype, **kwargs)
        if not isinstance(network, Network):
            raise ValueError(
                f"network must be a tfkip.kernels Network (from serial() or "
                f"tfkip.architectures.get). Received: network={network!r}"
            )
        images = np.asarray(support_images, dtype=dtype)
        labels = np.asarray(support_labels, dtype=dtype)
        if labels.ndim != 2 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                "support_labels must have shape (n_support, num_classes) matching the "
                f"support images. Received: support_images.shape={images.shape}, "
                f"support_labels.shape={labels.shape}"
            )
        for name, array in (("support_images", images), ("support_labels", labels)):
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contains NaN or infinite values.")
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
            raise ValueError(f"reg must be a number >= 0. Received: reg={reg!r}")
        out = network.output_shape(images.shape[1:])  # validates the image shape
        if not out.is_flat:
            raise ValueError(
                "The network's output is spatial; end it with Flatten() or GlobalAvgPool() "
                f"before the readout. Received: network={network!r}"
            )
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}. Received: kernel={kernel!r}")
        if solve_dtype not in (None, "float32", "float64"):
            raise ValueError(
                f"solve_dtype must be None, 'float32' or 'float64'. "
                f"Received: solve_dtype={solve_dtype!r}"
            )
        self.network = network
        self.kernel = kernel
        self.rf_models, self.rf_width, self.rf_seed = rf_models, rf_width, rf_seed
        self.rf_dtype = rf_dtype
        self.random_features = None
        if kernel == "rf_nngp":
            self.random_features = RandomFeatureNNGP(
                network, rf_models, rf_width, rf_seed, compute_dtype=rf_dtype
            )
        self.loss_name = check_loss(loss)
        self.solve_dtype = solve_dtype
        self.reg = float(reg)
        self.learn_labels = bool(learn_labels)
        self.augmenter = augmenter
        self.kernel_batch_size = kernel_batch_size
        self.kernel_memory_budget = tiling.check_memory_budget(kernel_memory_budget)
        self.support_images = self.add_weight(
            shape=images.shape,
            initializer=keras.initializers.Constant(images),
            dtype=dtype,
            trainable=True,
            name="support_images",
        )
        self.support_labels = self.add_weight(
            shape=labels.shape,
            initializer=keras.initializers.Constant(labels),
            dtype=dtype,
            trainable=self.learn_labels,
            name="support_labels",
        )
        self.log_temperature = None
        self.initial_log_temperature = float(log_temperature)
        if self.loss_name == "platt":
            self.log_temperature = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(float(log_temperature)),
                dtype=dtype,
                trainable=True,
                name="log_temperature",
            )
        self.loss_tracker = keras.metrics.Mean(name="loss", dtype=dtype)
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy", dtype=dtype)
        self.mse_tracker = keras.metrics.Mean(name="mse", dtype=dtype)

    # ------------------------------------------------------------ the algorithm
    @property
    def exact(self) -> bool:
        """Whether the kernel is an exact one ('ntk', 'nngp'), not random features."""
        return self.random_features is None

    def _kernel_options(self) -> dict:
        """The model's kernel, tiles and memory budget, as the kernel functions take them."""
        return dict(
            get=self.kernel,
            batch_size=self.kernel_batch_size,
            memory_budget=self.kernel_memory_budget,
        )

    def _kernel_fn(self, x1, x2=None, forward_only=False):
        if not self.exact:
            return self.random_features.kernel(x1, x2, step=EVAL_STEP)
        options = self._kernel_options()
        return self.network.kernel_fn(x1, x2, forward_only=forward_only, **options)

    def _kip_kernels(self, x_s, x_t, target_variances=None, step=EVAL_STEP, forward_only=False):
        """``(K_ss, K_ts)`` in one pass (`Network.kip_kernel_fn`), or from the random
        twins of ``step`` (``rf_nngp``; target features never differentiated);
        ``forward_only`` plans tiles for a pass no gradient follows (evaluation)."""
        if not self.exact:
            return self.random_features.kip_kernels(x_s, x_t, step)
        return self.network.kip_kernel_fn(
            x_s,
            x_t,
            target_variances=target_variances,
            forward_only=forward_only,
            **self._kernel_options(),
        )

    def _predict(self, k_ss, k_ts, y_s):
        """KRR prediction in ``solve_dtype``, returned in the model's dtype."""
        dtype = self.solve_dtype or self.dtype
        k_ss, k_ts, y_s = (tf.cast(v, dtype) for v in (k_ss, k_ts, y_s))
        return tf.cast(krr.krr_predict(k_ss, k_ts, y_s, self.reg), self.dtype)

    def target_variances(self, x_target) -> list[tf.Tensor]:
        """The network's `self_variances` of target images (in the model's dtype): what
        `kip_loss` takes as ``target_variances`` to skip the targets' self-kernel pass."""
        return self.network.self_variances(tf.cast(x_target, self.dtype))

    def kip_loss(self, x_target, y_target, training: bool = True, target_variances=None, step=None):
        """KIP ``(loss, accuracy)`` of the current support on one target batch.

        ``target_variances``: optionally `target_variances` of ``x_target``, computed
        beforehand (e.g. once for the whole target pool, then gathered with the batch;
        exact kernels only). ``step``: the KIP step (int or int tensor) whose random twins
        give the kernel (``rf_nngp``; None: the optimizer's ``iterations``).
        """
        x_s = tf.convert_to_tensor(self.support_images)
        y_s = tf.convert_to_tensor(self.support_labels)
        if not self.learn_labels:
            y_s = tf.stop_gradient(y_s)
        if training and self.augmenter is not None:
            x_s = self.augmenter(x_s, training=True)
        x_t = tf.cast(x_target, self.dtype)
        if self.exact:
            k_ss, k_ts = self._kip_kernels(x_s, x_t, target_variances)
        else:
            if step is None:
                step = self.optimizer.iterations
            k_ss, k_ts = self._kip_kernels(x_s, x_t, step=step)
        pred = self._predict(k_ss, k_ts, y_s)
        y_t = tf.cast(y_target, self.dtype)
        if self.loss_name == "platt":
            return platt_and_accuracy(pred, y_t, self.log_temperature)
        return krr.mse_and_accuracy(pred, y_t)

    def kip_gradients(
        self, x_target, y_target, loss_scale: float = 1.0, target_variances=None, step=None
    ):
        """``(loss, accuracy, gradients)`` of one target batch: the shared KIP step.

        ``loss_scale`` multiplies the loss before differentiation (``1 / replicas`` in the
        distributed loop, so that the summed replica gradients equal the gradient of the
        global-batch mean). Gradients follow ``self.trainable_variables``.
        ``target_variances`` and ``step`` as in `kip_loss`.
        """
        with tf.GradientTape() as tape:
            loss, accuracy = self.kip_loss(
                x_target, y_target, training=True, target_variances=target_variances, step=step
            )
            scaled = loss * tf.cast(loss_scale, loss.dtype)
        grads = tape.gradient(scaled, self.trainable_variables)
        return loss, accuracy, grads

    def krr_statistics(self, x, y, mask=None, support=None):
        """Additive KRR test statistics of a batch: (squared-error sum, correct, count).

        The squared error is summed over examples and classes; ``mask`` (n,) zeroes
        padding rows. Summed over batches/replicas, ``mse = 0.5 * sq / (count * C)``.
        ``support`` optionally passes ``(images, labels)`` tensors instead of reading the
        weights (needed inside XLA under multi-device strategies).
        """
        pred = self.predict_with(x, support, forward_only=True)
        y = tf.cast(y, pred.dtype)
        weight = tf.ones_like(pred[:, 0]) if mask is None else tf.cast(mask, pred.dtype)
        sq = tf.reduce_sum(tf.reduce_sum(tf.square(pred - y), axis=-1) * weight)
        hit = tf.cast(tf.equal(tf.argmax(pred, -1), tf.argmax(y, -1)), pred.dtype)
        return sq, tf.reduce_sum(hit * weight), tf.reduce_sum(weight)

    # ------------------------------------------------------------------ keras
    def predict_with(self, inputs, support=None, forward_only=False):
        """KRR prediction (n, C) for ``inputs`` of ``support`` (default: the weights);
        ``forward_only``: no gradient will be taken (kernel tiles planned larger)."""
        if support is None:
            support = (self.support_images, self.support_labels)
        x_s, y_s = (tf.convert_to_tensor(v) for v in support)
        x_t = tf.cast(inputs, self.dtype)
        k_ss, k_ts = self._kip_kernels(x_s, x_t, forward_only=forward_only)
        return self._predict(k_ss, k_ts, y_s)

    def call(self, inputs):
        """KRR prediction (n, C) of the current support set for ``inputs``."""
        return self.predict_with(inputs)

    def train_step(self, data):
        x, y = data[0], data[1]
        loss, accuracy, grads = self.kip_gradients(x, y)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(accuracy)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    def test_step(self, data):
        x, y = data[0], data[1]
        pred = self(x)
        y = tf.cast(y, pred.dtype)
        per_example = 0.5 * tf.reduce_mean(tf.square(pred - y), axis=-1)
        hit = tf.cast(tf.equal(tf.argmax(pred, -1), tf.argmax(y, -1)), pred.dtype)
        self.mse_tracker.update_state(per_example)
        self.accuracy_tracker.update_state(hit)
        return {"mse": self.mse_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    # Keras' array data adapter casts float NumPy/tensor inputs to `keras.config.floatx()`
    # (float32 by default), which would silently round a float64 model's targets and test
    # images; running the Keras loops with floatx = the model's dtype keeps them exact.
    # A tf.data.Dataset is not shuffled by Keras; its default shuffle=True only warns.
    def fit(self, *args, **kwargs):
        x = args[0] if args else kwargs.get("x")
        if isinstance(x, tf.data.Dataset) and "shuffle" not in kwargs and len(args) < 9:
            kwargs["shuffle"] = False
        with _floatx(self.dtype):
            return super().fit(*args, **kwargs)

    # With compile(steps_per_execution=N) and fewer than N test batches, Keras counts its
    # progress bar in executions of N ("50/2"); running at most that many batches per
    # execution gives the same result and an honest bar.
    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        steps = kwargs.get("steps")
        if steps is None and hasattr(x, "shape") and len(x.shape) > 0:
            steps = -(-int(x.shape[0]) // (batch_size or 32))
        per_execution = self.steps_per_execution
        shrink = steps is not None and 0 < steps < per_execution
        if shrink:
            self.steps_per_execution, self.test_function = steps, None
        try:
            with _floatx(self.dtype):
                return super().evaluate(x, y, batch_size, *args, **kwargs)
        finally:
            if shrink:
                self.steps_per_execution, self.test_function = per_execution, None

    def predict(self, *args, **kwargs):
        with _floatx(self.dtype):
            return super().predict(*args, **kwargs)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.mse_tracker]

    def distilled(self) -> tuple[np.ndarray, np.ndarray]:
        """The current support ``(images, labels)`` as numpy arrays.

        Raises:
          NotPositiveDefiniteError: if they are not finite (a failed factorisation of the
            support kernel poisoned an update), so NaNs never reach a saved set.
        """
        images = np.asarray(self.support_images.numpy())
        labels = np.asarray(self.support_labels.numpy())
        krr.check_finite(images, "The support images")
        krr.check_finite(labels, "The support labels")
        return images, labels

    def get_config(self) -> dict[str, Any]:
        return {
            "network": self.network.get_config(),
            "support_images": self.support_images.numpy().tolist(),
            "support_labels": self.support_labels.numpy().tolist(),
            "learn_labels": self.learn_labels,
            "kernel": self.kernel,
            "reg": self.reg,
            "kernel_batch_size": self.kernel_batch_size,
            "kernel_memory_budget": self.kernel_memory_budget,
            "dtype": self.dtype,
            "rf_models": self.rf_models,
            "rf_width": self.rf_width,
            "rf_seed": self.rf_seed,
            "rf_dtype": self.rf_dtype,
            "loss": self.loss_name,
            "log_temperature": self.initial_log_temperature,
            "solve_dtype": self.solve_dtype,
        }

    @classmethod
    def from_config(cls, config):
        from tfkip.kernels.spec import network_from_config

        config = dict(config)
        config["network"] = network_from_config(config["network"])
        return cls(**config)


@contextlib.contextmanager
def _floatx(dtype: str):
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
