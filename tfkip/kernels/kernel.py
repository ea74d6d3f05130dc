"""The immutable kernel value that flows through a network's layers.

A `Kernel` holds the NNGP covariance K and the NTK Theta of the current layer's
pre-activations, in one of four spatial layouts chosen per network and input shape (see `Layout`),
either for every *pair* of inputs of two batches (``batch_ndim=2``, the "cross" kernel) or
for every input with *itself* (``batch_ndim=1``, the "self" kernel, whose position-diagonal
gives the variances that the nonlinearities need):

=========  ===========================  =====================  ===========================
layout     cross ``nngp``/``ntk``         self ``nngp``           meaning
=========  ===========================  =====================  ===========================
FLAT       ``(n1, n2)``                   ``(n,)``                no spatial axes
DIAG       ``(n1, n2, H, W)``             ``(n, H, W)``           K(x, x')(p, p) only
FULL       ``(n1, n2, H, W, H, W)``       ``(n, H, W, H, W)``     K(x, x')(p, q), all pairs
BAND       ``(n1, n2, Bh, Bw, H, W)``     ``(n, Bh, Bw, H, W)``   K(x, x')(p, p + d), |d| <= r
=========  ===========================  =====================  ===========================

BAND keeps the pairs of positions within ``r = (r_h, r_w)`` of each other
(``Bh = 2 r_h + 1``), all that a Flatten readout after pooling needs (`tfkip.kernels.band`).

A network computes the self kernels of ``x1`` and ``x2`` first (cost linear in n) and
hands each nonlinearity of the cross pass the variances it needs in ``variances``:
``(v1, v2)`` of shapes ``(n1,)``/``(n2,)`` (FLAT) or ``(n1, H, W)``/``(n2, H, W)``.

Both kernels are stored stacked, ``values = [nngp, ntk]`` of shape ``(2, *shape above)``,
so that every layer reads and writes them in one pass. A *zipped* cross kernel holds
given pairs ``(x1[p], x2[p])`` instead of all combinations: batch shape ``(P, 1)``, with
``v1``, ``v2`` both ``(P, ...)`` (used for ``K(x, x)``'s unordered pairs).
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
    BAND = "band"


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
    """NNGP/NTK of a layer's outputs, stacked in one tensor (shapes in the module docstring).

    The NNGP and the NTK travel together as ``values``, of shape ``(k, *nngp_shape)``:
    ``values[0]`` is the NNGP and, when ``ntk_state == "tensor"``, ``values[1]`` the NTK
    (``k = 2``); otherwise ``k = 1``: under ``"nngp"`` the NTK equals the NNGP (the first
    affine layer of the NTK parameterization), carried once. One tensor for both lets
    every linear map (window sums, pooling, means) read and write them in one pass, and
    gives each nonlinearity a single consumer, so XLA fuses a layer into one loop instead
    of materialising the intermediates shared by two separate outputs.

    BAND kernels hold both as one complex tensor instead, ``values = [K + i Theta]`` of
    shape ``(1, ...)`` (``ntk_state == "pair"``): a nonlinearity then writes K and Theta
    from one loop that computes their shared factors once per entry (XLA on CPU computes
    a stacked output's halves in separate branches, each with all of those factors), and
    the linear maps (real coefficients) act on both parts at once, as on the stack.

    Attributes:
      values: ``(k, ...)`` the stacked kernels, or ``(1, ...)`` complex under "pair".
      ntk_state: "tensor" (``values[1]`` is the NTK), "pair" (``values[0]`` is
        ``K + i Theta``), "nngp" (the NTK equals ``values[0]``), "zero" (the NTK is
        identically zero: at the input) or "none" (not requested; always so for self
        kernels).
      batch_ndim: 2 for a cross kernel, 1 for a self kernel.
      layout: the spatial layout of ``nngp`` and ``ntk``.
      shape: static shape of one input at this layer (spatial dims, channels).
      same: for cross kernels of ``x1`` with itself, a bool ``(n1, n2)`` mask of identical
        pairs (their arc-cosine angle is exactly 0); else None.
      variances: for cross kernels, ``(v1, v2)`` set by the network before each
        nonlinearity; else None.
      zipped: a cross kernel of *pairs*: batch shape ``(P, 1)`` for the pairs
        ``(x1[p], x2[p])``, whose variances ``v1``, ``v2`` both run along axis 0.
    """

    values: tf.Tensor
    ntk_state: str
    batch_ndim: int
    layout: Layout
    shape: Shape
    same: tf.Tensor | None = None
    variances: tuple[tf.Tensor, tf.Tensor] | None = None
    zipped: bool = False

    @property
    def nngp(self) -> tf.Tensor:
        return tf.math.real(self.values[0]) if self.ntk_state == "pair" else self.values[0]

    @property
    def ntk(self) -> tf.Tensor | float | None:
        """The NTK tensor; ``0.0`` while identically zero; None when not requested."""
        if self.ntk_state == "tensor":
            return self.values[1]
        if self.ntk_state == "pair":
            return tf.math.imag(self.values[0])
        if self.ntk_state == "nngp":
            return self.values[0]
        return 0.0 if self.ntk_state == "zero" else None

    def replace(self, **changes) -> Kernel:
        return dataclasses.replace(self, **changes)

    def paired(self) -> Kernel:
        """This kernel with a separate NTK tensor held as ``K + i Theta`` ("pair")."""
        if self.ntk_state != "tensor":
            return self
        pair = tf.complex(self.values[0], self.values[1])[None]
        return self.replace(values=pair, ntk_state="pair")

    def stacked(self) -> Kernel:
        """This kernel with a "pair" held as the real stack ``[K, Theta]`` ("tensor")."""
        if self.ntk_state != "pair":
            return self
        return self.replace(values=tf.stack([self.nngp, self.ntk]), ntk_state="tensor")

    def map_linear(self, fn) -> Kernel:
        """Applies a linear map ``fn`` (acting on trailing axes) to nngp and ntk at once."""
        return self.replace(values=fn(self.values))


def scale_real(x: tf.Tensor, scale) -> tf.Tensor:
    """``x`` times a real ``scale`` (a number, or a real tensor broadcasting against it).

    A complex ``x`` (a `Kernel` "pair") is scaled part by part: a product with a complex
    constant ``(s, 0)`` costs four multiplications and two additions per entry, since
    without fast-math ``b * 0`` cannot be dropped.
    """
    real_dtype = x.dtype.real_dtype
    if isinstance(scale, tf.Tensor):
        scale = tf.cast(scale, real_dtype)
    else:  # a Python number, converted at the kernel's precision (not through float32)
        scale = tf.constant(scale, real_dtype)
    if not x.dtype.is_complex:
        return x * scale
    return tf.complex(tf.math.real(x) * scale, tf.math.imag(x) * scale)
