"""Shared weights and scaling of `NTKDense` and `NTKConv` (one parameterization rule).

With ``fan_in`` the number of inputs summed into one output (Dense: input features;
Conv: ``C_in * fh * fw``), W the kernel and b the bias:

* ``'ntk'``: ``W, b ~ N(0, 1)``; ``y = W_std / sqrt(fan_in) * (x W) + b_std * b``
* ``'standard'``: ``W ~ N(0, W_std^2 / fan_in)``, ``b ~ N(0, b_std^2)``; ``y = x W + b``

Both give the same function distribution at initialisation, hence the same NNGP (Lee et
al. 2018); they differ in the gradient scale and hence in the NTK (Jacot et al. 2018;
Sohl-Dickstein et al. 2020), exactly as neural-tangents ``stax.Dense`` / ``stax.Conv``.
``b_std=None`` means no bias parameter at all.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from tfkip.checks import check_parameterization, check_seed, check_std

_BIAS_SEED_OFFSET = 0x5BD1E995


class AffineMixin:
    """Parameterization arguments, initialisers and output scales of an affine layer.

    Subclasses call `_init_affine` in ``__init__``, `_make_weights` in ``build`` and
    `_affine_output` in ``call``.
    """

    def _init_affine(self, W_std, b_std, parameterization, seed) -> None:  # noqa: N803
        self.W_std = check_std("W_std", W_std, allow_none=False)
        self.b_std = check_std("b_std", b_std, allow_none=True)
        self.parameterization = check_parameterization(parameterization)
        self.seed = check_seed(seed)
        self.use_bias = self.b_std is not None
        self.fan_in: int | None = None

    def init_stddevs(self) -> tuple[float, float | None]:
        """``(kernel_stddev, bias_stddev)`` of the N(0, s^2) initialisers (after `build`)."""
        if self.fan_in is None:
            raise ValueError(f"Layer {self.name!r} is not built yet; call it on an input first.")
        if self.parameterization == "ntk":
            return 1.0, (1.0 if self.use_bias else None)
        return self.W_std / math.sqrt(self.fan_in), self.b_std

    def _make_weights(self, kernel_shape: tuple[int, ...], fan_in: int, units: int) -> None:
        self.fan_in = int(fan_in)
        kernel_std, bias_std = self.init_stddevs()
        bias_seed = None if self.seed is None else (self.seed ^ _BIAS_SEED_OFFSET) & 0x7FFFFFFF
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_shape,
            initializer=keras.initializers.RandomNormal(stddev=kernel_std, seed=self.seed),
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(units,),
                initializer=keras.initializers.RandomNormal(stddev=bias_std, seed=bias_seed),
            )
        if self.parameterization == "ntk":
            self._w_scale = self.W_std / math.sqrt(self.fan_in)
            self._b_scale = self.b_std
        else:
            self._w_scale, self._b_scale = 1.0, 1.0

    def effective_weights(self) -> list[tuple[Any, float]]:
        """``[(variable, scale)]``: the layer's effective weights are ``scale * variable``.

        'ntk': ``(kernel, W_std / sqrt(fan_in))`` and ``(bias, b_std)``; 'standard': scale
        1. The L2 penalty of `tfkip.finite.L2Regularized` and the plain-Keras export of
        `tfkip.finite.plain_keras_model` both use these.
        """
        if self.fan_in is None:
            raise ValueError(f"Layer {self.name!r} is not built yet; call it on an input first.")
        pairs = [(self.kernel, float(self._w_scale))]
        if self.bias is not None:
            pairs.append((self.bias, float(self._b_scale)))
        return pairs

    def _affine_output(self, linear):
        if self._w_scale != 1.0:
            linear = linear * self._w_scale
        if self.bias is not None:
            bias = self.bias if self._b_scale == 1.0 else self.bias * self._b_scale
            linear = linear + bias
        return linear

    def _affine_config(self) -> dict[str, Any]:
        return {
            "W_std": self.W_std,
            "b_std": self.b_std,
            "parameterization": self.parameterization,
            "seed": self.seed,
        }
