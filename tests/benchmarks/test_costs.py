"""benchmarks/_costs.py: the roofline model's flop and byte counts from layer shapes."""

from __future__ import annotations

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import _costs  # noqa: E402

from tfkip import architectures  # noqa: E402


def test_convnet_28x28_costs_follow_the_layer_shapes():
    net = architectures.get("convnet", 3)
    forward = _costs.forward_costs(net, (28, 28, 1))
    assert len(forward) == len(net.layers)
    # The first Conv is the input covariance over 3x3 patches: (28^2)^2 entries, 2*9*1 flops.
    first = forward[0]
    assert first.layout == "full" and first.entries == (28 * 28) ** 2
    assert first.flops == pytest.approx(2 * 9 * (28 * 28) ** 2, rel=0.01)
    # Each 2x2 pool divides the entries of a full-layout tensor by 16.
    pools = [c for c in forward if c.name.startswith("AvgPool")]
    assert [c.entries for c in pools] == [(14 * 14) ** 2, (7 * 7) ** 2, (3 * 3) ** 2]
    # The 28x28 layers dominate; float64 doubles the bytes, not the flops.
    total = sum(c.flops for c in forward)
    assert sum(c.flops for c in forward[:5]) > 0.9 * total
    wide = _costs.forward_costs(net, (28, 28, 1), dtype="float64")
    assert sum(c.bytes for c in wide) == pytest.approx(2 * sum(c.bytes for c in forward))
    assert sum(c.flops for c in wide) == pytest.approx(total)
    # The NNGP alone moves one tensor where the NTK moves two, and the backward costs more.
    nngp = _costs.self_costs(net, (28, 28, 1))
    assert sum(c.bytes for c in nngp) < sum(c.bytes for c in forward)
    backward = _costs.backward_costs(net, (28, 28, 1))
    assert sum(c.flops for c in backward) > total
    bound = _costs.totals(forward, 186e9, 12e9, scale=2.0)
    assert bound["flops"] == pytest.approx(2 * total) and bound["bound_s"] > 0
