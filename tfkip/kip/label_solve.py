"""Label Solve: the closed-form best support labels for a fixed support set.

KIP.ipynb ``label_solve`` (Nguyen, Chen, Lee 2021, Sec. 3), with an *absolute*
regulariser ``lam = reg / n_s`` (not trace-scaled, unlike KIP):

    M = K_st K_st^T + lam I,     z = M^{-1} K_st y_t,     y_s* = (K_ss + lam I) z

i.e. the least-squares labels ``argmin_y || K_ts (K_ss + lam I)^{-1} y - y_t ||^2``
(a regularised pseudo-inverse; meaningful when n_s <= n_t). ``K_st K_st^T`` and
``K_st y_t`` are sums over target examples, so they are accumulated over chunks of the
target set (`label_solve_statistics`), which may be far larger than memory for K_ts, and,
in the distributed loop, over replicas.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfkip.kip import krr
from tfkip.kip.loss import check_kernel, support_kernel


def label_solve_statistics(
    kernel_fn, x_support, x_chunk, y_chunk, kernel: str = "ntk", batch_size=None
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(K_sc K_sc^T, K_sc y_c)`` for one chunk c of the target set: (n_s, n_s), (n_s, C)."""
    k_cs = kernel_fn(x_chunk, x_support, get=check_kernel(kernel), batch_size=batch_size)
    y_chunk = tf.cast(y_chunk, k_cs.dtype)
    return tf.matmul(k_cs, k_cs, transpose_a=True), tf.matmul(k_cs, y_chunk, transpose_a=True)


def solve_labels(k_ss: tf.Tensor, gram: tf.Tensor, rhs: tf.Tensor, reg: float = 1e-6) -> tf.Tensor:
    """``y_s* = (K_ss + lam I) (gram + lam I)^{-1} rhs`` with ``lam = reg / n_s``."""
    z = krr.solve_spd(krr.regularized(gram, reg, trace_scaled=False), rhs)
    return tf.matmul(krr.regularized(k_ss, reg, trace_scaled=False), z)


def label_solve(
    kernel_fn,
    x_support,
    x_target,
    y_target,
    reg: float = 1e-6,
    kernel: str = "ntk",
    chunk_size: int | None = 1000,
    batch_size=None,
) -> tf.Tensor:
    """Solved support labels (n_s, C) for the target set (see module docstring).

    Args:
      kernel_fn: a `tfkip.kernels` network's ``kernel_fn``.
      x_support: (n_s, ...). x_target: (n_t, ...). y_target: (n_t, C).
      reg: absolute regulariser numerator (``lam = reg / n_s``).
      kernel: 'ntk' or 'nngp'.
      chunk_size: target examples per accumulation chunk (None: all at once).
      batch_size: optional kernel tile size within a chunk.
    """
    x_target = np.asarray(x_target) if not isinstance(x_target, tf.Tensor) else x_target
    n_t = int(x_target.shape[0])
    chunk = n_t if not chunk_size else min(int(chunk_size), n_t)
    x_support = tf.convert_to_tensor(x_support)
    statistics = tf.function(
        lambda xc, yc: label_solve_statistics(kernel_fn, x_support, xc, yc, kernel, batch_size),
        jit_compile=True,
        reduce_retracing=True,
        autograph=False,
    )
    gram = rhs = None
    for start in range(0, n_t, chunk):
        g, r = statistics(
            tf.convert_to_tensor(x_target[start : start + chunk]),
            tf.convert_to_tensor(y_target[start : start + chunk]),
        )
        gram = g if gram is None else gram + g
        rhs = r if rhs is None else rhs + r
    k_ss = support_kernel(kernel_fn, x_support, kernel, batch_size)
    return solve_labels(k_ss, gram, rhs, reg)
