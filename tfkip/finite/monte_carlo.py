"""Monte-Carlo NNGP: the output covariance of many randomly initialised finite networks.

For a network with ``k`` outputs and S independent initialisations ``f_s``, the estimate
is ``K_hat(x, x') = 1/S sum_s f_s(x) . f_s(x') / k``. As the width and S grow it tends
to the analytic NNGP of the same spec (Lee et al. 2018, arXiv 1711.00165; Novak et al.
2019, arXiv 1810.05148; neural-tangents ``monte_carlo_kernel_fn``).

If the outputs were exactly Gaussian with covariance K (the infinite-width limit) and
the k outputs independent, each entry would have standard error
``sqrt((K(x, x) K(x', x') + K(x, x')^2) / (S k))`` (`gaussian_standard_error`); at finite
width the outputs of one network are correlated through its hidden layers, which adds
O(1/width) to the variance, and the mean has an O(1/width) bias for depth >= 2.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfkip.finite._affine import AffineMixin


@dataclasses.dataclass(frozen=True)
class MonteCarloKernel:
    """A Monte-Carlo kernel estimate.

    Attributes:
      mean: ``(n1, n2)`` float64, the estimate ``K_hat``.
      standard_error: ``(n1, n2)`` float64, the empirical standard error of ``mean``
        (standard deviation over the S per-network estimates / sqrt(S)).
      n_samples: S.
      out_dim: k, the outputs per network.
    """

    mean: np.ndarray
    standard_error: np.ndarray
    n_samples: int
    out_dim: int


def gaussian_standard_error(kernel: np.ndarray, n_samples: int, out_dim: int) -> np.ndarray:
    """``sqrt((K_ii K_jj + K_ij^2) / (S k))`` for a square ``(n, n)`` kernel (see module doc)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    diag = np.diag(kernel)
    return np.sqrt((np.outer(diag, diag) + kernel**2) / (n_samples * out_dim))


def resample_weights(model: keras.Model, seed) -> None:
    """Redraws every `NTKDense` / `NTKConv` weight of ``model`` from its initialiser.

    ``seed`` is a stateless seed: a shape-(2,) int tensor/array; the draw is a pure
    function of it. Works inside `tf.function`.
    """
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    index = 0
    for layer in _affine_layers(model):
        kernel_std, bias_std = layer.init_stddevs()
        for variable, std in ((layer.kernel, kernel_std), (layer.bias, bias_std)):
            if variable is None:
                continue
            sub = tf.stack([seed[0], seed[1] * 7919 + index])
            draw = tf.random.stateless_normal(variable.shape, sub, dtype=variable.dtype)
            variable.assign(draw * tf.cast(std, variable.dtype))
            index += 1


def _affine_layers(model) -> list[AffineMixin]:
    found = []
    for layer in model.layers:
        if isinstance(layer, AffineMixin):
            found.append(layer)
        elif hasattr(layer, "layers"):  # a nested model
            found.extend(_affine_layers(layer))
    return found


def monte_carlo_nngp(
    model: keras.Model, x1, x2=None, *, n_samples: int = 100, seed: int = 0
) -> MonteCarloKernel:
    """Estimates the NNGP of ``model``'s architecture from ``n_samples`` initialisations.

    The model's weights are overwritten (each sample redraws them with
    `resample_weights`).

    Args:
      model: a model built by `tfkip.finite.build_model`.
      x1: ``(n1, ...)`` inputs; x2: ``(n2, ...)`` or None for ``x1``.
      n_samples: number of independent networks S (>= 2).
      seed: int seed; the result is a pure function of it.

    >>> from tfkip import architectures
    >>> from tfkip.finite import build_model
    >>> model = build_model(architectures.get("fc", 1), (4,), width=64)
    >>> monte_carlo_nngp(model, np.eye(4, dtype="float32"), n_samples=8).mean.shape
    (4, 4)
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2. Received: n_samples={n_samples!r}")
    dtype = model.inputs[0].dtype
    x1 = tf.convert_to_tensor(np.asarray(x1), dtype=dtype)
    x2 = x1 if x2 is None else tf.convert_to_tensor(np.asarray(x2), dtype=dtype)
    out_dim = int(model.outputs[0].shape[-1])

    @tf.function
    def sample(s):
        resample_weights(model, tf.stack([tf.constant(seed, tf.int32), s]))
        f1 = model(x1, training=False)
        f2 = model(x2, training=False)
        return tf.matmul(f1, f2, transpose_b=True) / out_dim

    total = 0.0
    total_sq = 0.0
    for s in range(n_samples):
        k = sample(tf.constant(s, tf.int32)).numpy().astype(np.float64)
        total = total + k
        total_sq = total_sq + k * k
    mean = total / n_samples
    var = np.maximum(total_sq / n_samples - mean**2, 0.0) * n_samples / (n_samples - 1)
    return MonteCarloKernel(mean, np.sqrt(var / n_samples), n_samples, out_dim)
