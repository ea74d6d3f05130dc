"""The `Layer` interface shared by every kernel layer."""

from __future__ import annotations

import abc
from typing import Any

import tensorflow as tf

from tfkip.kernels.kernel import Kernel, Layout, Shape


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

    def input_band(self, output_radius):
        """Offsets ``(r_h, r_w)`` this layer needs at its input (`tfkip.kernels.band`) so
        that its output holds those within ``output_radius``; None for all of them."""
        return output_radius

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
