"""benchmarks/_costs.py: the roofline model's flop and byte counts from layer shapes."""

from __future__ import annotations

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import _costs  # noqa: E402

from tfkip import architectures  # noqa: E402


@pytest.mark.parametrize("band_fraction", [None, 0.0])
def test_convnet_28x28_costs_follow_the_layer_shapes(band_fraction):
    """Default plan: BAND at 28x28 (15 x 15 offsets per position, then 7 x 7, 3 x 3, 1);
    ``band_fraction=0``: FULL, whose first Conv is a matmul over 3x3 patches."""
    net = architectures.get("convnet", 3)
    if band_fraction is not None:
        net.band_fraction = band_fraction
    forward = _costs.forward_costs(net, (28, 28, 1))
    first = forward[0]
    pools = [c for c in forward if c.name.startswith("AvgPool")]
    if band_fraction is None:
        assert [c.name for c in forward[:3]] == ["input cov", "Conv 1", "Relu 2"]
        assert len(forward) == len(net.layers) + 1
        assert first.layout == "band" and first.entries == 28 * 28 * 15 * 15
        assert first.flops == pytest.approx(2 * 1 * 28 * 28 * 15 * 15)
        assert [c.entries for c in pools] == [14 * 14 * 7 * 7, 7 * 7 * 3 * 3, 3 * 3]
    else:
        assert [c.name for c in forward[:2]] == ["input cov + Conv 1 (matmul)", "Relu 2"]
        assert len(forward) == len(net.layers)
        assert first.layout == "full" and first.entries == (28 * 28) ** 2
        assert first.flops == pytest.approx(2 * 9 * (28 * 28) ** 2, rel=0.01)
        # Each 2x2 pool divides the entries of a full-layout tensor by 16.
        assert [c.entries for c in pools] == [(14 * 14) ** 2, (7 * 7) ** 2, (3 * 3) ** 2]
    # The 28x28 layers dominate; float64 doubles the bytes, not the flops.
    total = sum(c.flops for c in forward)
    assert sum(c.flops for c in forward if c.entries >= 28 * 28 * 15 * 15) > 0.9 * total
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


def test_band_costs_less_than_full():
    banded, full = architectures.get("convnet", 3), architectures.get("convnet", 3)
    full.band_fraction = 0.0
    for shape in ((28, 28, 1), (32, 32, 3)):
        b = sum(c.bytes for c in _costs.forward_costs(banded, shape))
        f = sum(c.bytes for c in _costs.forward_costs(full, shape))
        assert b < 0.35 * f, shape
