"""The immutable kernel value that flows through a network's layers.

A `Kernel` holds, for a batch of inputs ``x1`` (n1 of them) and ``x2`` (n2), the
NNGP covariance K and the NTK Theta of the current layer's pre-activations, in one of
three spatial layouts chosen once per network (see `Layout`):

=========  ==========================  ==========================================
layout     ``nngp`` / ``ntk`` shape      meaning
=========  ==========================  ==========================================
FLAT       ``(n1, n2)``                  no spatial axes (dense features)
DIAG       ``(n1, n2, H, W)``            K(x, x')(p, p): same position only
FULL       ``(n1, n2, H, W, H, W)``      K(x, x')(p, q): every pair of positions
=========  ==========================  ==========================================

``cov1`` (``cov2``) is the NNGP of ``x1`` (``x2``) with itself, per input, in the same
layout with one batch axis: ``(n1,)``, ``(n1, H, W)`` or ``(n1, H, W, H, W)``. The
nonlinearities need its diagonal (the variances). When ``x2`` is ``x1`` (``kernel_fn(x1)``),
``cov2`` is ``None`` and ``same`` is a boolean ``(n1, n2)`` mask of the pairs that are the
same input, on which arc-cosine kernels use their exact value (angle 0).
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
    """NNGP/NTK of a layer's outputs for a pair of input batches (see module docstring).

    Attributes:
      nngp: ``(n1, n2, *S)`` NNGP covariance; S depends on `layout`.
      ntk: same shape as ``nngp``; the float ``0.0`` while it is identically zero (at
        the input); ``None`` when the NTK is not requested.
      cov1: ``(n1, *S)`` NNGP of each ``x1`` with itself.
      cov2: ``(n2, *S)`` NNGP of each ``x2`` with itself, or ``None`` if ``x2`` is ``x1``.
      same: ``(n1, n2)`` bool mask of identical input pairs, or ``None``.
      layout: the spatial layout of ``nngp``, ``ntk``, ``cov1``, ``cov2``.
      shape: static shape of one input at this layer (spatial dims, channels).
    """

    nngp: tf.Tensor
    ntk: tf.Tensor | float | None
    cov1: tf.Tensor
    cov2: tf.Tensor | None
    same: tf.Tensor | None
    layout: Layout
    shape: Shape

    def replace(self, **changes) -> Kernel:
        return dataclasses.replace(self, **changes)

    @property
    def cov2_or_cov1(self) -> tf.Tensor:
        return self.cov1 if self.cov2 is None else self.cov2

    def map_covariances(self, fn, include_ntk: bool = True) -> Kernel:
        """Applies a linear map ``fn`` to every covariance (nngp, ntk, cov1, cov2)."""
        return self.replace(
            nngp=fn(self.nngp),
            ntk=fn(self.ntk) if (include_ntk and _is_tensor(self.ntk)) else self.ntk,
            cov1=fn(self.cov1),
            cov2=None if self.cov2 is None else fn(self.cov2),
        )


def _is_tensor(x) -> bool:
    return x is not None and not isinstance(x, float)
