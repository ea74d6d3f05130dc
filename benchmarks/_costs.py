"""Flops and bytes of a kernel network's recursions, per input pair, from its layer shapes.

The model behind ``benchmarks/roofline.py`` (explained in docs/performance.md, "Roofline").
Every layer is one pass over its covariances: it reads its input tensors once and writes
its output tensors once (``bytes``), and does a fixed count of arithmetic per output entry
(``flops``; a square root, a reciprocal square root or a select count as one). Fusion across
layers, padded copies and cache misses are not modelled: the bound is what a layer-by-layer
implementation that streams every tensor exactly once could reach, at best.

Entries per input pair of one tensor: ``(H W)^2`` in the FULL layout (pooled networks),
``H W (2 r_h + 1) (2 r_w + 1)`` in BAND (pooled networks read out by Flatten, where the
band is smaller: `Network.layout_plan`), ``H W`` in DIAG, 1 in FLAT; ``k`` tensors travel
together (``k = 1`` for the NNGP alone or while the NTK equals it, ``k = 2`` once the NTK
is its own tensor; `tfkip.kernels.Kernel`).
"""

from __future__ import annotations

import dataclasses
import math

from tfkip.kernels import AvgPool, Conv, Dense, Erf, Flatten, GlobalAvgPool, Relu, band
from tfkip.kernels.inputs import check_input_shape
from tfkip.kernels.kernel import Layout

ITEMSIZE = {"float32": 4, "float64": 8}

RELU_FLOPS = 38
"""Forward ReLU per entry (`tfkip.kernels.nonlinear.relu_map`): rho 2, clip 2, q 4,
arccos 19 (a 7-step Horner polynomial in fused multiply-adds, 1 - x, max, sqrt, abs), j0 3,
the NNGP 7 (``sqrt(v1 v2)`` from the broadcast factors, ``q / 2 pi + j0 rho``), the NTK 1."""

RELU_BACKWARD_FLOPS = 55
"""Reverse ReLU per entry: the forward's rho, q, j0 again (recomputed, 30) and the adjoint
(``c_bar``, ``Theta_bar``, the variances' factor ``g``, 1/q; 25)."""

ERF_FLOPS = 20
ERF_BACKWARD_FLOPS = 30


@dataclasses.dataclass
class Cost:
    """One pass of one layer, per input pair."""

    name: str
    layout: str
    entries: int  # of one output tensor
    flops: float
    bytes: float

    def seconds(self, flops_per_s: float, bytes_per_s: float) -> float:
        """The pass's roofline time: the larger of its compute and its memory time."""
        return max(self.flops / flops_per_s, self.bytes / bytes_per_s)


def _entries(spatial, layout: Layout, radius=None) -> int:
    positions = math.prod(spatial) if spatial else 1
    if layout == Layout.BAND:
        return band.entries(spatial, radius)
    if layout == Layout.FULL:
        return positions * positions
    if layout == Layout.DIAG:
        return positions
    return 1


def forward_costs(network, per_example_shape, dtype="float32", ntk=True) -> list[Cost]:
    """Per-pair costs of the cross kernel's forward pass, layer by layer.

    ``ntk=False`` for the NNGP alone (and for the self-kernel pass, which carries the NNGP
    only). The first Conv of a pooled network is the input covariance's matmul over its
    patches (`Network._input_kernel`): ``2 fh fw C`` flops per entry, one tensor written.
    """
    size = ITEMSIZE[dtype]
    shape = check_input_shape(per_example_shape)
    plan = network.layout_plan(per_example_shape)
    layers = [(layer, layout) for layer, (layout, _) in zip(network.layers, plan)]
    radii = [radius for _, radius in plan] + [None]
    costs = []
    k = 1
    ntk_state = "zero" if ntk else "none"
    if isinstance(layers[0][0], Flatten):
        features = math.prod(per_example_shape)
        costs.append(Cost("input <x, x'>", "flat", 1, 2 * features, size * 2 * features))
        shape, layers, radii = layers[0][0].output_shape(shape), layers[1:], radii[1:]
        layout = Layout.FLAT
    else:
        layout = layers[0][1]
        first = layers[0][0]
        if isinstance(first, Conv) and layout == Layout.FULL:
            out = first.output_shape(shape)
            e = _entries(out.spatial, layout)
            feats = first.filter_shape[0] * first.filter_shape[1] * shape.channels
            costs.append(Cost("input cov + Conv 1 (matmul)", "full", e, 2 * feats * e, size * e))
            shape, layers, radii = out, layers[1:], radii[1:]
            ntk_state = "nngp" if ntk else "none"
        else:
            e = _entries(shape.spatial, layout, radii[0])
            costs.append(Cost("input cov", layout.value, e, 2 * shape.channels * e, size * e))
    for index, (layer, layout) in enumerate(layers):
        e_in = _entries(shape.spatial, layout, radii[index])
        out_shape = layer.output_shape(shape)
        out_radius = None if layout != Layout.BAND else _band_out(layer, radii[index])
        name = f"{type(layer).__name__} {index + 1 + len(network.layers) - len(layers)}"
        if isinstance(layer, (Conv, Dense)):
            taps = math.prod(layer.filter_shape) if isinstance(layer, Conv) else 1
            out_layout = layout if out_shape.spatial else Layout.FLAT
            e_out = _entries(out_shape.spatial, out_layout, out_radius)
            k_out = 2 if ntk_state in ("tensor", "nngp") else 1
            if ntk_state == "zero" and layer.parameterization == "ntk":
                k_out = 1
            flops = k * e_out * (taps + 1) + 2 * k_out * e_out
            costs.append(Cost(name, layout.value, e_out, flops, size * (k * e_in + k_out * e_out)))
            if ntk_state == "zero":
                ntk_state = "nngp" if layer.parameterization == "ntk" else "tensor"
            elif ntk_state == "nngp":
                ntk_state = "tensor"
            k = k_out
        elif isinstance(layer, (Relu, Erf)):
            per_entry = RELU_FLOPS if isinstance(layer, Relu) else ERF_FLOPS
            k_out = 2 if ntk_state in ("tensor", "nngp") else 1
            traffic = size * (k + k_out) * e_in
            costs.append(Cost(name, layout.value, e_in, per_entry * e_in, traffic))
            if ntk_state == "nngp":
                ntk_state = "tensor"
            k = k_out
        elif isinstance(layer, AvgPool):
            e_out = _entries(out_shape.spatial, layout, out_radius)
            costs.append(Cost(name, layout.value, e_out, k * e_in, size * k * (e_in + e_out)))
        elif isinstance(layer, (Flatten, GlobalAvgPool)):
            costs.append(Cost(name, layout.value, 1, k * e_in, size * k * e_in))
        else:  # pragma: no cover - every layer type is listed above
            raise ValueError(f"No cost model for {layer!r}")
        shape = out_shape
    return costs


def _band_out(layer, radius):
    """The radius of a BAND layer's output (`tfkip.kernels.band`)."""
    if isinstance(layer, Conv):
        return tuple(r // s for r, s in zip(radius, layer.strides))
    if isinstance(layer, AvgPool):
        return tuple((r - w + 1) // s for r, w, s in zip(radius, layer.window_shape, layer.strides))
    return radius


def backward_costs(network, per_example_shape, dtype="float32") -> list[Cost]:
    """Per-pair costs of the reverse pass of the NTK/NNGP cross kernel (a KIP gradient).

    Each linear layer's adjoint is a pass of the same size as its forward (the window sums'
    adjoints are window sums, pooling's a broadcast); a nonlinearity reads its inputs and
    the output cotangents and writes the input cotangents and the variances' factor.
    """
    size = ITEMSIZE[dtype]
    costs = []
    for cost in reversed(forward_costs(network, per_example_shape, dtype)):
        if cost.name.startswith(("Relu", "Erf")):
            per_entry = RELU_BACKWARD_FLOPS if cost.name.startswith("Relu") else ERF_BACKWARD_FLOPS
            e = cost.entries
            name = cost.name + " (adjoint)"
            costs.append(Cost(name, cost.layout, e, per_entry * e, size * 7 * e))
        else:
            costs.append(dataclasses.replace(cost, name=cost.name + " (adjoint)", flops=cost.flops))
    return costs


def self_costs(network, per_example_shape, dtype="float32") -> list[Cost]:
    """Per-input costs of the self-kernel (variances) pass: the NNGP alone."""
    return forward_costs(network, per_example_shape, dtype, ntk=False)


def totals(costs, flops_per_s: float, bytes_per_s: float, scale: float = 1.0) -> dict:
    """Summed flops and bytes of ``costs`` times ``scale``, and their roofline seconds:
    ``bound_s`` the sum of every pass's own bound (`Cost.seconds`)."""
    return dict(
        flops=scale * sum(c.flops for c in costs),
        bytes=scale * sum(c.bytes for c in costs),
        bound_s=scale * sum(c.seconds(flops_per_s, bytes_per_s) for c in costs),
    )
