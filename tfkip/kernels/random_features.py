"""Random-feature NNGP: the kernel of a `serial` network estimated from random finite twins.

For a network ``hidden -> Dense(readout, W_std=s_w, b_std=s_b)`` the infinite-width NNGP is
``K(x, x') = s_w^2 k(x, x') + s_b^2``, where ``k`` is the covariance of the readout's input
(per feature). A finite twin of width ``w`` (every hidden Dense/Conv with ``w`` outputs,
weights ``N(0, W_std^2 / fan_in)``, biases ``N(0, b_std^2)``, exactly the distribution of
both the 'ntk' and the 'standard' parameterization at initialisation) has readout input
``z(x)`` of ``d`` features with ``E[<z(x), z(x')> / d] -> k(x, x')`` as ``w`` grows
(bias O(1/w)). With ``M`` independent twins and ``Phi(x) = [z_1(x), ..., z_M(x)] /
sqrt(M d)`` (shape ``(n, M d)``):

    K_rf(x, x') = s_w^2 <Phi(x), Phi(x')> + s_b^2

whose sampling error shrinks like ``1 / sqrt(M w)`` (Loo et al. 2022, "RFAD"). The
layers act as the exact ones assume (`tfkip.kernels.linear`, `pooling`): Conv with zero
'SAME' padding and ``1 / sqrt(fh fw C)`` scaling; AvgPool divides by the window size even
where it overlaps the padding; Flatten keeps all ``H W C`` features (the next Dense's fan-in
normalises them); GlobalAvgPool is a mean over positions. Without a final Dense the
features are the network's output and ``K_rf = <Phi, Phi'>``.

``compute_dtype`` (default: the inputs' dtype) is the dtype of the twins' weights and
activations; ``'bfloat16'`` runs their convolutions and matmuls at bfloat16 speed (oneDNN
on CPUs with AVX512-BF16, the MXU on TPUs) and casts the features back to the inputs'
dtype before the Gram matrix. Its rounding (2^-8 relative per stored activation) moves
the kernel entries by about 1% of their scale, below the estimate's sampling error
O(1 / sqrt(M w)) up to ``M w`` of a few thousand (tests/kernels/test_random_features.py).

Weights are drawn with `tf.random.stateless_normal` (Philox) from a key derived from
``(seed, step)`` and the layer index, so the same ``(seed, step)`` gives the same twins in
every process, replica and resumed run, inside an XLA-compiled `tf.function` with static
shapes; the models are written functionally (weights are tensors, not Keras variables).
"""

from __future__ import annotations

import math

import tensorflow as tf

from tfkip.checks import check_positive_int
from tfkip.kernels import spatial
from tfkip.kernels.linear import Conv, Dense
from tfkip.kernels.network import Network
from tfkip.kernels.nonlinear import Erf, Relu
from tfkip.kernels.pooling import AvgPool, Flatten, GlobalAvgPool

SUPPORTED = (Dense, Conv, Relu, Erf, AvgPool, GlobalAvgPool, Flatten)
COMPUTE_DTYPES = (None, "float32", "float64", "bfloat16")
_ALG = "philox"  # explicit: the same numbers on every device (auto_select may differ)


class RandomFeatureNNGP:
    """The NNGP of ``network`` estimated from ``n_models`` random finite twins.

    Args:
      network: a `tfkip.kernels.Network` of Dense, Conv, Relu, Erf, AvgPool,
        GlobalAvgPool and Flatten layers (its last Dense, if any, is the readout).
      n_models: independent twins per draw (M).
      width: outputs of every hidden Dense and Conv of a twin (w).
      seed: integer seed; the twins of step ``t`` depend only on ``(seed, t)``.
      compute_dtype: None (the inputs' dtype), 'float32', 'float64' or 'bfloat16': the
        dtype of the twins' forward passes (module docstring).

    >>> import numpy as np
    >>> from tfkip import architectures
    >>> rf = RandomFeatureNNGP(architectures.get("fc", 1), n_models=2, width=64)
    >>> x = np.random.default_rng(0).standard_normal((3, 8))
    >>> rf.features(x, step=0).shape
    TensorShape([3, 128])
    >>> rf.kernel(x, None, step=0).shape
    TensorShape([3, 3])
    """

    def __init__(
        self,
        network: Network,
        n_models: int,
        width: int,
        seed: int = 0,
        compute_dtype: str | None = None,
    ):
        if not isinstance(network, Network):
            raise ValueError(
                f"network must be a tfkip.kernels Network (from serial()). "
                f"Received: network={network!r}"
            )
        for layer in network.layers:
            if not isinstance(layer, SUPPORTED):
                names = ", ".join(c.__name__ for c in SUPPORTED)
                raise ValueError(
                    f"Random features support the layers {names}. Received: layer={layer!r}"
                )
        self.network = network
        self.n_models = check_positive_int("n_models", n_models)
        self.width = check_positive_int("width", width)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer. Received: seed={seed!r}")
        self.seed = seed
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype must be one of {COMPUTE_DTYPES}. "
                f"Received: compute_dtype={compute_dtype!r}"
            )
        self.compute_dtype = compute_dtype
        last = network.layers[-1]
        if isinstance(last, Dense):
            self.hidden = network.layers[:-1]
            self.readout = (last.W_std, 0.0 if last.b_std is None else last.b_std)
        else:
            self.hidden = network.layers
            self.readout = (1.0, 0.0)

    def __repr__(self) -> str:
        return (
            f"RandomFeatureNNGP({self.network!r}, n_models={self.n_models}, "
            f"width={self.width}, seed={self.seed}, compute_dtype={self.compute_dtype!r})"
        )

    def _key(self, step) -> tf.Tensor:
        """The ``[2]`` int64 Philox key of ``(seed, step)``."""
        step = tf.cast(tf.convert_to_tensor(step), tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), step])

    def _draw(self, key, index: int, shape, dtype) -> tf.Tensor:
        """Standard normals of ``shape`` for draw ``index`` of the key (a layer's weights
        or biases, all twins at once); see `standard_normal`."""
        sub = tf.random.experimental.stateless_fold_in(key, index, alg=_ALG)
        if dtype == tf.bfloat16:  # drawn in float32 (Box-Muller needs the precision)
            return tf.cast(standard_normal(shape, sub, tf.float32), dtype)
        return standard_normal(shape, sub, dtype)

    def _models(self, x: tf.Tensor, key) -> tf.Tensor:
        """Readout inputs ``(M, n, d)`` of the ``M`` twins of ``key``.

        The activations are held as one input shared by all twins (before the first
        affine layer), as a ``(M, n, d)`` stack once flat (Dense layers of all twins in
        one batched matmul), and as a list of ``M`` image tensors in between
        (convolutions and pooling per twin: a static Python loop, M ordinary
        convolutions in the program).
        """
        h, shared = x, True
        for i, layer in enumerate(self.hidden):
            spatial_input = (h[0] if isinstance(h, list) else h).shape.rank == 4
            if isinstance(layer, (Dense, Conv)):
                like = h[0] if isinstance(h, list) else h
                w, b = self._weights(layer, i, like, key)
                if isinstance(layer, Conv):
                    hs = [h] * self.n_models if shared else h
                    h = [
                        _conv(layer, a, w[m], None if b is None else b[m]) for m, a in enumerate(hs)
                    ]
                elif spatial_input:  # a Dense on image channels: per twin
                    hs = [h] * self.n_models if shared else h
                    h = [
                        _dense(layer, a[None], w[m : m + 1], None if b is None else b[m : m + 1])[0]
                        for m, a in enumerate(hs)
                    ]
                else:
                    h = _dense(layer, h, w, b, shared)
                shared = False
            elif isinstance(layer, (Relu, Erf)):
                fn = (
                    tf.nn.relu
                    if isinstance(layer, Relu)
                    else (lambda a, e=layer: e.a * tf.math.erf(e.b * a) + e.c)
                )
                h = [fn(a) for a in h] if isinstance(h, list) else fn(h)
            elif isinstance(layer, AvgPool):
                h = [_avg_pool(layer, a) for a in h] if isinstance(h, list) else _avg_pool(layer, h)
            elif isinstance(layer, GlobalAvgPool):
                h = (
                    [tf.reduce_mean(a, axis=(1, 2)) for a in h]
                    if isinstance(h, list)
                    else tf.reduce_mean(h, axis=(1, 2))
                )
                h = tf.stack(h) if isinstance(h, list) else h
            else:  # Flatten
                if isinstance(h, list):
                    h = tf.stack([tf.reshape(a, [-1, math.prod(a.shape[1:])]) for a in h])
                elif shared:
                    h = tf.reshape(h, [-1, math.prod(h.shape[1:])])
                else:
                    h = tf.reshape(h, [self.n_models, -1, math.prod(h.shape[2:])])
        if isinstance(h, list) or h.shape.rank != (2 if shared else 3):
            raise ValueError(
                f"The readout's input must be flat; end the network with Flatten() or "
                f"GlobalAvgPool() before the readout. Received: network={self.network!r}"
            )
        if shared:  # no affine layer: every twin is the same map
            h = tf.broadcast_to(h[None], [self.n_models, *h.shape])
        return h

    def _weights(self, layer, index: int, h, key):
        """``(W, b)`` of all twins for ``layer`` (the ``index``-th), standard normals:
        ``W`` ``(M, fan_in, w)`` (Dense) or ``(M, fh, fw, C, w)`` (Conv), ``b`` ``(M, w)``
        or None."""
        shape = (
            [h.shape[-1], self.width]
            if isinstance(layer, Dense)
            else [*layer.filter_shape, h.shape[-1], self.width]
        )
        w = self._draw(key, 2 * index, [self.n_models, *shape], h.dtype)
        b = None
        if layer.b_std is not None:
            b = self._draw(key, 2 * index + 1, [self.n_models, self.width], h.dtype)
        return w, b

    def features(self, x, step=0) -> tf.Tensor:
        """``Phi(x)``, ``(n, M d)``: the twins of ``(seed, step)``'s readout inputs,
        concatenated and divided by ``sqrt(M d)`` (module docstring).

        Args:
          x: ``(n, ...)`` float32/float64 inputs (their dtype is the computation's).
          step: int or int tensor selecting the twins.
        """
        x = _as_float_tensor(x)
        self.network.output_shape(x.shape[1:])  # validates the shape
        compute = x if self.compute_dtype is None else tf.cast(x, self.compute_dtype)
        stack = tf.cast(self._models(compute, self._key(step)), x.dtype)  # (M, n, d)
        d = stack.shape[-1]
        phi = tf.reshape(tf.transpose(stack, [1, 0, 2]), [-1, self.n_models * d])
        return phi * tf.constant(1.0 / math.sqrt(self.n_models * d), phi.dtype)

    def kernel_from_features(self, phi1, phi2) -> tf.Tensor:
        """``W_std^2 <Phi1, Phi2> + b_std^2`` of the readout, ``(n1, n2)``."""
        w_std, b_std = self.readout
        k = tf.matmul(phi1, phi2, transpose_b=True)
        return k * tf.constant(w_std**2, k.dtype) + tf.constant(b_std**2, k.dtype)

    def kernel(self, x1, x2=None, step=0) -> tf.Tensor:
        """The estimate ``K_rf(x1, x2)``, ``(n1, n2)`` (``x2`` None: ``x1`` with itself,
        exactly symmetric)."""
        phi1 = self.features(x1, step)
        phi2 = phi1 if x2 is None else self.features(x2, step)
        return self.kernel_from_features(phi1, phi2)

    def kip_kernels(self, x_support, x_target, step=0) -> tuple[tf.Tensor, tf.Tensor]:
        """``(K_ss, K_ts)`` of one KIP step, both from the twins of ``(seed, step)``.

        The target features are computed under `tf.stop_gradient` (their forward pass
        only; nothing is differentiated through the target images), so the cost is
        ``M`` forward passes over ``|S| + |T|`` inputs and one backward over ``|S|``.
        """
        phi_s = self.features(x_support, step)
        phi_t = tf.stop_gradient(self.features(tf.stop_gradient(x_target), step))
        return self.kernel_from_features(phi_s, phi_s), self.kernel_from_features(phi_t, phi_s)


def standard_normal(shape, seed, dtype) -> tf.Tensor:
    """Standard normals from Philox bits by Box-Muller: ``sqrt(-2 log u1) cos(2 pi u2)``.

    `tf.random.stateless_normal` draws different numbers eagerly and under XLA (its
    normal transform differs); the integer bits do not, so this is the same draw, to a
    rounding of ``log`` and ``cos``, in eager, `tf.function` and XLA programs alike.
    """
    bits = tf.random.stateless_uniform(
        [2, *shape], seed=seed, minval=None, maxval=None, dtype=tf.uint64, alg=_ALG
    )
    keep = 53 if dtype == tf.float64 else 24  # random bits -> uniform in (0, 1)
    top = tf.bitwise.right_shift(bits, tf.constant(64 - keep, tf.uint64))
    u = (tf.cast(top, dtype) + 0.5) * 2.0**-keep
    return tf.sqrt(-2.0 * tf.math.log(u[0])) * tf.cos((2.0 * math.pi) * u[1])


def _dense(layer: Dense, h, w, b, shared: bool = False) -> tf.Tensor:
    """Dense of every twin: ``W_std / sqrt(fan_in) * h_m w_m + b_std * b_m`` for a stack
    ``h`` ``(M, n, fan_in)`` (or one ``(n, fan_in)`` input for all, ``shared``),
    standard-normal ``w`` ``(M, fan_in, w)`` and ``b`` ``(M, w)``: a batched matmul."""
    fan_in = h.shape[-1]
    out = tf.einsum("nf,mfw->mnw", h, w) if shared else tf.matmul(h, w)
    out = out * tf.constant(layer.W_std / math.sqrt(fan_in), h.dtype)
    if b is not None:
        out = out + b[:, None, :] * tf.constant(layer.b_std, h.dtype)
    return out


def _conv(layer: Conv, h, w, b) -> tf.Tensor:
    """``W_std / sqrt(fh fw C) * conv(h, w) + b_std * b`` (standard-normal ``w``, ``b``)."""
    fan_in = h.shape[-1] * layer.filter_shape[0] * layer.filter_shape[1]
    out = tf.nn.conv2d(h, w, strides=list(layer.strides), padding=layer.padding)
    out = out * tf.constant(layer.W_std / math.sqrt(fan_in), out.dtype)
    if b is not None:
        out = out + b * tf.constant(layer.b_std, out.dtype)
    return out


def _avg_pool(layer: AvgPool, h: tf.Tensor) -> tf.Tensor:
    """Window mean, zero padding included in the divisor ('SAME' as the exact kernel)."""
    pads = [
        spatial.window_geometry(length, window, stride, layer.padding)[1:]
        for length, window, stride in zip(h.shape[1:3], layer.window_shape, layer.strides)
    ]
    if any(p != (0, 0) for p in pads):
        h = tf.pad(h, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
    return tf.nn.avg_pool2d(h, list(layer.window_shape), list(layer.strides), "VALID")


def _as_float_tensor(x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if x.dtype not in (tf.float32, tf.float64):
        raise ValueError(f"x must be float32 or float64. Received: x.dtype={x.dtype.name}")
    if x.shape.rank is None or x.shape.rank < 2 or not x.shape[1:].is_fully_defined():
        raise ValueError(
            f"x must be a batch of examples with a known per-example shape. "
            f"Received: x.shape={x.shape}"
        )
    return x
