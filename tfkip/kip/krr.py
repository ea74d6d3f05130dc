"""Kernel ridge regression (KRR) with the KIP reference's regularisers.

KIP and the KRR evaluation use a *trace-scaled* ridge (KIP.ipynb, ``make_loss_acc_fn``):

    K_reg = K_ss + reg * tr(K_ss) / n_s * I,    alpha = K_reg^{-1} y_s,    pred = K_ts alpha

solved by Cholesky factorisation (K_reg is symmetric positive definite). If the
factorisation fails (not positive definite to working precision, typically float32 with a
tiny ``reg``), it is retried once with a jitter of ``JITTER * tr(K_ss)/n_s`` added to the
diagonal, ``JITTER`` being 1e-7 in float64 and 1e-4 in float32; if that fails too the result
is NaN and callers raise `NotPositiveDefiniteError` at the next host check
(`check_finite`): never a silent NaN in a distilled set.
"""

from __future__ import annotations

import tensorflow as tf

JITTER = {tf.float64: 1e-7, tf.float32: 1e-4}


class NotPositiveDefiniteError(ValueError):
    """The regularised support kernel could not be Cholesky-factorised."""


def regularized(k_ss: tf.Tensor, reg: float, trace_scaled: bool = True) -> tf.Tensor:
    """``K_ss + lam I`` with ``lam = reg * tr(K_ss)/n`` (trace-scaled) or ``reg / n``."""
    n = tf.cast(tf.shape(k_ss)[0], k_ss.dtype)
    scale = tf.linalg.trace(k_ss) / n if trace_scaled else 1.0 / n
    return k_ss + tf.abs(tf.cast(reg, k_ss.dtype)) * scale * tf.eye(
        tf.shape(k_ss)[0], dtype=k_ss.dtype
    )


def cholesky_with_retry(matrix: tf.Tensor) -> tf.Tensor:
    """Cholesky factor of an SPD matrix, retrying once with a trace-relative jitter."""
    chol = tf.linalg.cholesky(matrix)
    n = tf.shape(matrix)[0]
    jitter = JITTER.get(matrix.dtype, 1e-4) * tf.linalg.trace(matrix) / tf.cast(n, matrix.dtype)

    def retry():
        return tf.linalg.cholesky(matrix + jitter * tf.eye(n, dtype=matrix.dtype))

    return tf.cond(tf.reduce_all(tf.math.is_finite(chol)), lambda: chol, retry)


def solve_spd(matrix: tf.Tensor, rhs: tf.Tensor) -> tf.Tensor:
    """``matrix^{-1} rhs`` for symmetric positive definite ``matrix`` (Cholesky)."""
    return tf.linalg.cholesky_solve(cholesky_with_retry(matrix), rhs)


def krr_weights(k_ss: tf.Tensor, y_s: tf.Tensor, reg: float) -> tf.Tensor:
    """``alpha = (K_ss + reg tr(K_ss)/n_s I)^{-1} y_s``; shapes (n_s, n_s), (n_s, C) -> (n_s, C)."""
    return solve_spd(regularized(k_ss, reg), y_s)


def krr_predict(k_ss: tf.Tensor, k_ts: tf.Tensor, y_s: tf.Tensor, reg: float) -> tf.Tensor:
    """KRR prediction ``K_ts (K_ss + reg tr(K_ss)/n_s I)^{-1} y_s``, shape (n_t, C)."""
    return tf.matmul(k_ts, krr_weights(k_ss, y_s, reg))


def mse_and_accuracy(pred: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``0.5 * mean((pred - y)^2)`` over all entries, and argmax accuracy."""
    loss = 0.5 * tf.reduce_mean(tf.square(pred - y))
    correct = tf.equal(tf.argmax(pred, axis=-1), tf.argmax(y, axis=-1))
    return loss, tf.reduce_mean(tf.cast(correct, pred.dtype))


def check_finite(value, what: str, step: int | None = None) -> None:
    """Raises `NotPositiveDefiniteError` if ``value`` (host-side) is not finite."""
    import numpy as np

    if not np.all(np.isfinite(np.asarray(value))):
        where = "" if step is None else f" at step {step}"
        raise NotPositiveDefiniteError(
            f"{what} is not finite{where}: the regularised support kernel K_ss + reg*tr/n*I "
            f"is not positive definite even after a jitter retry. Increase reg, use "
            f"dtype=float64, or check the support images for duplicates/NaNs."
        )
