"""The KIP loss: how well KRR on the support set predicts a target batch.

Nguyen, Chen, Lee (ICLR 2021), Algorithm 1; exactly ``make_loss_acc_fn`` of KIP.ipynb:

    K_ss = k(X_s, X_s),  K_ts = k(X_t, X_s)
    pred = K_ts (K_ss + reg tr(K_ss)/n_s I)^{-1} y_s
    loss = 0.5 * mean((pred - y_t)^2)       (over all n_t x C entries)
    acc  = mean(argmax pred == argmax y_t)

``kernel_fn`` is a network's ``kernel_fn`` from `tfkip.kernels` (or any function with its
signature); the loss is differentiable w.r.t. the support images and labels.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfkip.kip import krr

KERNELS = ("ntk", "nngp")
LOSSES = ("mse", "platt")


def check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}. Received: kernel={kernel!r}")
    return kernel


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}. Received: loss={loss!r}")
    return loss


def platt_and_accuracy(pred, y, log_temperature) -> tuple[tf.Tensor, tf.Tensor]:
    """Platt loss (RFAD, Loo et al. 2022) and argmax accuracy of KRR predictions.

    ``mean_i CE(softmax(exp(k) pred_i), argmax y_i)``: the cross-entropy of the predictions
    scaled by a learned temperature ``exp(k)`` (``log_temperature``, a scalar), against
    the target classes. Shapes: ``pred``, ``y`` ``(n, C)``.
    """
    logits = pred * tf.exp(tf.cast(log_temperature, pred.dtype))
    labels = tf.argmax(y, axis=-1)
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    correct = tf.equal(tf.argmax(pred, axis=-1), labels)
    return loss, tf.reduce_mean(tf.cast(correct, pred.dtype))


def as_input(x):
    """Keras variables (e.g. a `KIPModel`'s weights) as tensors; anything else unchanged."""
    return tf.convert_to_tensor(x) if isinstance(x, keras.Variable) else x


def support_kernel(kernel_fn, x_support, kernel: str = "ntk", batch_size=None) -> tf.Tensor:
    """``K_ss = k(X_s, X_s)`` with an exact diagonal, shape (n_s, n_s)."""
    x_support = as_input(x_support)
    return kernel_fn(x_support, None, get=check_kernel(kernel), batch_size=batch_size)


def kip_predict(
    kernel_fn,
    x_support,
    y_support,
    x_target,
    reg: float = 1e-6,
    kernel: str = "ntk",
    batch_size=None,
) -> tf.Tensor:
    """KRR prediction of the support set on ``x_target``, shape (n_t, C)."""
    x_support, y_support, x_target = (as_input(v) for v in (x_support, y_support, x_target))
    k_ss = support_kernel(kernel_fn, x_support, kernel, batch_size)
    k_ts = kernel_fn(x_target, x_support, get=kernel, batch_size=batch_size)
    return krr.krr_predict(k_ss, k_ts, tf.cast(y_support, k_ss.dtype), reg)


def kip_loss(
    kernel_fn,
    x_support,
    y_support,
    x_target,
    y_target,
    reg: float = 1e-6,
    kernel: str = "ntk",
    batch_size=None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """KIP loss and accuracy of one target batch (see module docstring).

    Args:
      kernel_fn: ``kernel_fn(x1, x2, get, batch_size)`` of a `tfkip.kernels` network.
      x_support: (n_s, ...) support images. y_support: (n_s, C) support labels.
      x_target: (n_t, ...) target images. y_target: (n_t, C) target labels.
      reg: trace-scaled ridge. kernel: 'ntk' or 'nngp'.
      batch_size: optional kernel tile size (bounded memory for large kernels).

    Returns:
      ``(loss, accuracy)`` scalar tensors in the inputs' dtype; differentiable.

    >>> import numpy as np
    >>> from tfkip import architectures
    >>> net = architectures.get("fc", 1)
    >>> rng = np.random.default_rng(0)
    >>> xs, xt = rng.standard_normal((4, 8)), rng.standard_normal((6, 8))
    >>> ys, yt = np.eye(2)[[0, 1, 0, 1]] - 0.5, np.eye(2)[[0, 1, 0, 1, 0, 1]] - 0.5
    >>> loss, acc = kip_loss(net.kernel_fn, xs, ys, xt, yt)
    >>> bool(loss > 0)
    True
    """
    pred = kip_predict(kernel_fn, x_support, y_support, x_target, reg, kernel, batch_size)
    return krr.mse_and_accuracy(pred, tf.cast(y_target, pred.dtype))
