"""The `Layer` interface shared by every kernel layer, and argument validation helpers."""

from __future__ import annotations

import abc
import math
from typing import Any

import tensorflow as tf

from tfkip.kernels.kernel import Kernel, Layout, Shape

PARAMETERIZATIONS = ("ntk", "standard")
PADDINGS = ("SAME", "VALID")


class Layer(abc.ABC):
    """One layer of an infinitely wide network, acting on `Kernel` values.

    A layer declares, statically, which covariance layout it needs at its input given the
    layout its output must provide (`input_layout`), so that `serial` can decide once per
    network what to track; how it changes the static input shape (`output_shape`, which
    also validates); and how it maps kernels (`apply`). Layers with
    ``needs_variances`` (the nonlinearities) receive the inputs' variances from the
    network in `Kernel.variances`.
    """

    needs_variances = False

    @abc.abstractmethod
    def output_shape(self, shape: Shape) -> Shape:
        """Static output shape for an input of ``shape``; raises ValueError if invalid."""

    def input_layout(self, output_layout: Layout) -> Layout:
        """Layout this layer needs at its input to produce ``output_layout``."""
        return output_layout

    def output_layout(self, input_layout: Layout) -> Layout:
        """Layout this layer produces from ``input_layout``."""
        return input_layout

    @abc.abstractmethod
    def apply(self, kernel: Kernel) -> Kernel:
        """Maps the kernel of this layer's inputs to the kernel of its outputs."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))

    def to_keras(self, width=None):
        """The finite Keras counterpart of this layer (see `tfkip.finite.to_keras_layer`)."""
        from tfkip.finite.build import to_keras_layer

        return to_keras_layer(self, width)


def check_std(name: str, value: float | None, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a non-negative number. Received: {name}=None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a non-negative number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0. Received: {name}={value!r}")
    return float(value)


def check_parameterization(parameterization: str) -> str:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}. "
            f"Received: parameterization={parameterization!r}"
        )
    return parameterization


def check_padding(padding: str) -> str:
    if not isinstance(padding, str) or padding.upper() not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}. Received: padding={padding!r}")
    return padding.upper()


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return value


def check_window(name: str, value: Any, ndim: int = 2) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * ndim
    try:
        value = tuple(value)
    except TypeError:
        raise ValueError(
            f"{name} must be a tuple of {ndim} positive integers. Received: {name}={value!r}"
        ) from None
    if len(value) != ndim or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value
    ):
        raise ValueError(
            f"{name} must be a tuple of {ndim} positive integers. Received: {name}={value!r}"
        )
    return value


def require_spatial(layer: Layer, shape: Shape) -> None:
    if len(shape.spatial) != 2:
        raise ValueError(
            f"{type(layer).__name__} needs NHWC image inputs (a spatial kernel), but the "
            f"input to this layer has spatial shape {shape.spatial} (flat vectors, or "
            f"a Flatten/GlobalAvgPool/Dense readout came before it). Received: {layer!r}"
        )


def scale_add(x, scale: float, shift: float):
    """``scale * x + shift`` with Python-float constants folded away when trivial."""
    if scale != 1.0:
        x = x * tf.constant(scale, x.dtype)
    if shift != 0.0:
        x = x + tf.constant(shift, x.dtype)
    return x
