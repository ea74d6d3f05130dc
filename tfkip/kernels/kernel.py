"""The immutable kernel value that flows through a network's layers.

A `Kernel` holds the NNGP covariance K and the NTK Theta of the current layer's
pre-activations, in one of three spatial layouts chosen once per network (see `Layout`),
either for every *pair* of inputs of two batches (``batch_ndim=2``, the "cross" kernel) or
for every input with *itself* (``batch_ndim=1``, the "self" kernel, whose position-diagonal
gives the variances that the nonlinearities need):

=========  ===========================  =====================  ===========================
layout     cross ``nngp``/``ntk``         self ``nngp``           meaning
=========  ===========================  =====================  ===========================
FLAT       ``(n1, n2)``                   ``(n,)``                no spatial axes
DIAG       ``(n1, n2, H, W)``             ``(n, H, W)``           K(x, x')(p, p) only
FULL       ``(n1, n2, H, W, H, W)``       ``(n, H, W, H, W)``     K(x, x')(p, q), all pairs
=========  ===========================  =====================  ===========================

A network computes the self kernels of ``x1`` and ``x2`` first (cost linear in n) and
hands each nonlinearity of the cross pass the variances it needs in ``variances``:
``(v1, v2)`` of shapes ``(n1,)``/``(n2,)`` (FLAT) or ``(n1, H, W)``/``(n2, H, W)``.
"""

from __future__ import annotations

import dataclasses
import enum

import tensorflow as tf


class Layout(enum.Enum):
    """How much of the position-by-position covariance is tracked."""

    FLAT = "flat"
    DIAG = "diag"
    FULL = "full"


@dataclasses.dataclass(frozen=True)
class Shape:
    """Static shape of one input after a layer: spatial dims (``()`` if flat), channels."""

    spatial: tuple[int, ...]
    channels: int

    @property
    def is_flat(self) -> bool:
        return not self.spatial


@dataclasses.dataclass(frozen=True)
class Kernel:
    """NNGP/NTK of a layer's outputs (see the module docstring for shapes).

    Attributes:
      nngp: the NNGP covariance.
      ntk: same shape as ``nngp``; the float ``0.0`` while it is identically zero (at the
        input); ``None`` when not requested (always None for self kernels).
      batch_ndim: 2 for a cross kernel, 1 for a self kernel.
      layout: the spatial layout of ``nngp`` and ``ntk``.
      shape: static shape of one input at this layer (spatial dims, channels).
      same: for cross kernels of ``x1`` with itself, a bool ``(n1, n2)`` mask of identical
        pairs (their arc-cosine angle is exactly 0); else None.
      variances: for cross kernels, ``(v1, v2)`` set by the network before each
        nonlinearity; else None.
    """

    nngp: tf.Tensor
    ntk: tf.Tensor | float | None
    batch_ndim: int
    layout: Layout
    shape: Shape
    same: tf.Tensor | None = None
    variances: tuple[tf.Tensor, tf.Tensor] | None = None

    def replace(self, **changes) -> Kernel:
        return dataclasses.replace(self, **changes)

    def map_linear(self, fn) -> Kernel:
        """Applies a linear map ``fn`` (acting on trailing axes) to nngp and ntk."""
        return self.replace(
            nngp=fn(self.nngp), ntk=fn(self.ntk) if is_tensor(self.ntk) else self.ntk
        )


def is_tensor(x) -> bool:
    """True for a real NTK tensor (not None, not the identically-zero 0.0 marker)."""
    return x is not None and not isinstance(x, float)
