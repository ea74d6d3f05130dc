"""Empirical NTK of a finite Keras network and the maximum learning rate it implies.

For a network ``f(x; theta)`` with ``C`` outputs the empirical NTK is the Jacobian inner
product ``Theta_ab(x, x') = sum_p df_a(x)/dtheta_p df_b(x')/dtheta_p`` over all trainable
parameters (Jacot et al. 2018, arXiv 1806.07572). Under 'ntk' parameterization it tends
to ``delta_ab`` times the analytic NTK of the same spec as the width grows.

The transfer recipe of the KIP reference (``kip/nn_training.ipynb``, spec §4) takes its
learning rate from this kernel: the network is reduced to ``sum_a f_a(x) / sqrt(C)``, its
NTK is computed on 50 inputs, and ``lr0 = 2 * y_train_size / lambda_max`` with
``y_train_size = 50 * C`` (neural-tangents ``predict.max_learning_rate`` with momentum 0):
gradient descent on ``0.5 * mean((f - y)^2)`` over ``n * C`` entries is stable for the
linearised network exactly below that rate.
"""

from __future__ import annotations

import math
import weakref

import keras
import numpy as np
import tensorflow as tf

OUTPUTS = ("full", "trace", "reduced")
# Keep all Jacobian tiles in memory (instead of recomputing them per tile pair) below this.
_CACHE_FLOATS = 2.5e8
_JACOBIANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _jacobian_fn(model: keras.Model, reduced: bool):
    """A `tf.function` ``x (b, ...) -> (b, C or 1, P)``, cached per model (no retracing)."""
    per_model = _JACOBIANS.setdefault(model, {})
    if reduced not in per_model:
        per_model[reduced] = _make_jacobian_fn(model, reduced)
    return per_model[reduced]


def _make_jacobian_fn(model: keras.Model, reduced: bool):
    variables = list(model.trainable_variables)

    @tf.function
    def jacobian(x):
        with tf.GradientTape() as tape:
            out = model(x, training=False)
            if reduced:
                out = tf.reduce_sum(out, axis=-1, keepdims=True) / math.sqrt(out.shape[-1])
        jacs = tape.jacobian(out, variables, experimental_use_pfor=True)
        n, c = tf.shape(out)[0], out.shape[-1]
        return tf.concat([tf.reshape(j, [n, c, -1]) for j in jacs], axis=-1)

    return jacobian


def empirical_ntk(
    model: keras.Model,
    x1,
    x2=None,
    *,
    output: str = "trace",
    batch_size: int = 10,
) -> tf.Tensor:
    """The empirical NTK of ``model`` at its current weights, via `tf.GradientTape`.

    Args:
      model: a Keras model ``(N, ...) -> (N, C)``.
      x1: ``(n1, ...)`` inputs. x2: ``(n2, ...)`` inputs, or None for ``x1``.
      output: ``'full'``: ``(n1, n2, C, C)``, ``Theta_ab(x_i, x'_j)``;
        ``'trace'``: ``(n1, n2)``, ``mean_a Theta_aa`` (the per-logit NTK, to compare
        with the analytic NTK); ``'reduced'``: ``(n1, n2)``, the NTK of the scalar
        ``sum_a f_a / sqrt(C)``, i.e. ``sum_ab Theta_ab / C`` (the max-LR estimate).
      batch_size: inputs per Jacobian tile; a tile holds ``batch_size * C * P`` floats
        for P parameters (``C = 1`` for 'reduced').

    Returns:
      A float tensor of the model's dtype.

    >>> from tfkip import architectures
    >>> from tfkip.finite import build_model
    >>> model = build_model(architectures.get("fc", 1), (4,), width=32, seed=0)
    >>> empirical_ntk(model, np.ones((3, 4), "float32")).shape
    TensorShape([3, 3])
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}. Received: output={output!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
        )
    dtype = model.inputs[0].dtype if getattr(model, "inputs", None) else "float32"
    x1 = tf.convert_to_tensor(np.asarray(x1), dtype=dtype)
    same = x2 is None
    x2 = x1 if same else tf.convert_to_tensor(np.asarray(x2), dtype=dtype)
    jacobian = _jacobian_fn(model, reduced=output == "reduced")

    def tiles(x):
        return [x[i : i + batch_size] for i in range(0, int(x.shape[0]), batch_size)]

    tiles1, tiles2 = tiles(x1), tiles(x2)
    num_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    outs = 1 if output == "reduced" else int(model.outputs[0].shape[-1])
    cache_ok = (x1.shape[0] + (0 if same else x2.shape[0])) * outs * num_params < _CACHE_FLOATS
    cache: dict[tuple[int, int], tf.Tensor] = {}

    def jac(side: int, index: int) -> tf.Tensor:
        if side == 2 and same:
            side = 1
        key = (side, index)
        if key in cache:
            return cache[key]
        value = jacobian((tiles1 if side == 1 else tiles2)[index])
        if cache_ok:
            cache[key] = value
        return value

    def block(j1, j2):
        if output == "full":
            return tf.einsum("iap,jbp->ijab", j1, j2)
        if output == "trace":
            return tf.einsum("iap,jap->ij", j1, j2) / float(j1.shape[1])
        return tf.einsum("ip,jp->ij", j1[:, 0], j2[:, 0])

    rows = []
    blocks: dict[tuple[int, int], tf.Tensor] = {}
    for i in range(len(tiles1)):
        j1 = jac(1, i)
        row = []
        for j in range(len(tiles2)):
            if same and j < i:
                t = blocks[(j, i)]
                row.append(tf.transpose(t, [1, 0, 3, 2] if output == "full" else [1, 0]))
                continue
            blocks[(i, j)] = block(j1, j1 if same and i == j else jac(2, j))
            row.append(blocks[(i, j)])
        rows.append(tf.concat(row, axis=1))
    return tf.concat(rows, axis=0)


def max_learning_rate(
    model: keras.Model,
    x,
    y_train_size: int | None = None,
    *,
    momentum: float = 0.0,
    batch_size: int = 10,
    eps: float = 1e-12,
) -> float:
    """``2 (1 + momentum) y_train_size / lambda_max`` of the reduced empirical NTK on ``x``.

    As neural-tangents ``predict.max_learning_rate`` called by the KIP reference with
    the default ``momentum=0`` (spec §4): the NTK is that of ``sum_a f_a / sqrt(C)``
    (``empirical_ntk(..., output='reduced')``) on the ``n`` inputs ``x``.

    Args:
      model: a Keras model ``(N, ...) -> (N, C)`` at its initial weights.
      x: ``(n, ...)`` inputs (the reference uses 50 held-out training images).
      y_train_size: the number of regression targets the loss averages over; default
        ``n * C``.
      momentum: the momentum factor of the formula (the reference leaves it at 0).
      batch_size: Jacobian tile size (see `empirical_ntk`).
      eps: added to ``lambda_max``.

    Returns:
      The learning rate as a Python float.
    """
    ntk = empirical_ntk(model, x, output="reduced", batch_size=batch_size).numpy()
    n = ntk.shape[0]
    if y_train_size is None:
        y_train_size = n * int(model.outputs[0].shape[-1])
    lam_max = float(np.linalg.eigvalsh(ntk.astype(np.float64))[-1])
    return 2.0 * (1.0 + momentum) * float(y_train_size) / (lam_max + eps)
