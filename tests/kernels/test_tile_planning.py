"""`kernel_fn` plans its own tiles from a memory budget (`tiling.plan_tiles`)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip.kernels import tiling


def _images(n, h=8, c=1, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal((n, h, h, c)))


def test_pair_entries_follow_the_layout():
    x = _images(1)
    assert tiling.pair_entries(architectures.get("fc", 1), x.shape[1:]) == 1
    assert tiling.pair_entries(architectures.get("conv", 2), x.shape[1:]) == 64  # DIAG: H W
    assert tiling.pair_entries(architectures.get("convnet", 2), x.shape[1:]) == 64**2  # FULL


def test_pair_bytes_count_the_live_copies_of_each_layout():
    x = _images(1)
    assert tiling.pair_bytes(architectures.get("fc", 1), x.shape[1:], 4) == 4 * tiling.LIVE_COPIES
    conv = architectures.get("conv", 2)
    assert tiling.pair_bytes(conv, x.shape[1:], 8) == 64 * 8 * tiling.LIVE_COPIES
    convnet = architectures.get("convnet", 2)
    want = 64**2 * 8 * tiling.FULL_LIVE_COPIES  # its 8x8 FULL covariance dominates
    assert tiling.pair_bytes(convnet, x.shape[1:], 8) == want
    # At 28x28 the ConvNet's 28x28 layers are BAND: 15 x 15 offsets of each position.
    paper = architectures.get("convnet", 3)
    band_entries = 28 * 28 * 15 * 15
    assert tiling.pair_bytes(paper, (28, 28, 1), 4) == 4 * band_entries * tiling.BAND_LIVE_COPIES
    forward = tiling.pair_bytes(paper, (28, 28, 1), 4, forward_only=True)
    assert forward == 4 * band_entries * tiling.FORWARD_BAND_LIVE_COPIES


def test_kernels_that_fit_are_not_tiled():
    net = architectures.get("convnet", 2)
    assert tiling.plan_tiles(net, _images(4), _images(3)) is None


def test_plan_keeps_one_tile_under_the_budget():
    net = architectures.get("convnet", 2)
    x1, x2 = _images(9), _images(7)
    pair_bytes = 64**2 * 8 * tiling.FULL_LIVE_COPIES
    budget = 10 * pair_bytes
    b1, b2 = tiling.plan_tiles(net, x1, x2, memory_budget=budget)
    assert (b1, b2) == (1, 7)  # whole columns of x2 first
    assert b1 * b2 * pair_bytes <= budget
    b1, b2 = tiling.plan_tiles(net, x1, None, memory_budget=budget)
    assert b1 == b2 == 3  # square tiles for x1 against itself
    assert tiling.plan_tiles(net, x1, x2, memory_budget=1) == (1, 1)


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setattr(tiling, "cpu_threads", lambda: 1)


def test_band_plans_share_each_column_across_all_rows(one_thread):
    """Under BAND a tile takes rows of x1 first (each x2 input's neighbourhood variances
    are then shared by several rows), and at most `band_tile_pairs` pairs."""
    paper = architectures.get("convnet", 3)
    assert paper.layout_plan((28, 28, 1))[1][0].value == "band"
    x1, x2 = tf.zeros((9, 28, 28, 1), tf.float32), tf.zeros((7, 28, 28, 1), tf.float32)
    pair_bytes = tiling.pair_bytes(paper, (28, 28, 1), 4)
    cap = tiling.band_tile_pairs(paper, (28, 28, 1), 4)
    assert cap == tiling.BAND_TILE_BYTES // (2 * 4 * 28 * 28 * 15 * 15) == 5
    budget = 3 * pair_bytes  # below the cap: the budget rules
    assert tiling.plan_tiles(paper, x1, x2, memory_budget=budget) == (3, 1)
    # Above it the cap rules, however large the budget (tiles stay cache-sized): 9 rows
    # in tiles of at most 5 are two of 5.
    for budget in (10 * pair_bytes, 2**40):
        assert tiling.plan_tiles(paper, x1, x2, memory_budget=budget) == (5, 1)
    assert tiling.plan_tiles(paper, x1, None, memory_budget=2**40) == (2, 2)
    assert tiling.plan_tiles(paper, x1[:2], x2[:2], memory_budget=2**40) is None  # 4 pairs


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_band_tiles_split_rows_evenly_across_threads(monkeypatch, threads):
    """XLA splits a tile's passes across the CPU threads along its rows: the cap is
    rounded down to a multiple of the threads (5 -> 4 on 2, 3 on 3; unchanged below one
    multiple), and balanced rows up to one, within the cap and the budget."""
    monkeypatch.setattr(tiling, "cpu_threads", lambda: threads)
    paper = architectures.get("convnet", 3)
    cap = tiling.band_tile_pairs(paper, (28, 28, 1), 4)
    assert cap == {2: 4, 3: 3, 8: 5}[threads]
    x1, x2 = tf.zeros((9, 28, 28, 1), tf.float32), tf.zeros((7, 28, 28, 1), tf.float32)
    b1, b2 = tiling.plan_tiles(paper, x1, x2, memory_budget=2**40)
    assert b2 == 1 and b1 <= cap
    # 9 rows: 3 tiles of 3 balanced, 4 = two whole rows per thread on 2 threads.
    assert b1 == {2: 4, 3: 3, 8: 5}[threads]
    pair_bytes = tiling.pair_bytes(paper, (28, 28, 1), 4)
    # A budget of 3 pairs: 3 rows, not rounded up past the budget.
    assert tiling.plan_tiles(paper, x1, x2, memory_budget=3 * pair_bytes)[0] == 3


def test_planned_tiles_give_the_untiled_kernel():
    net = architectures.get("convnet", 2)
    x1, x2 = _images(5, seed=1), _images(4, seed=2)
    budget = 3 * 64**2 * 8 * tiling.FULL_LIVE_COPIES
    # 3 pairs fit, but 4 columns need two tiles either way: two of 2, not 3 + 1 padded.
    assert tiling.plan_tiles(net, x1, x2, memory_budget=budget) == (1, 2)
    whole = net.kernel_fn(x1, x2, "ntk", batch_size=(5, 4))
    planned = net.kernel_fn(x1, x2, "ntk", memory_budget=budget)
    np.testing.assert_allclose(planned.numpy(), whole.numpy(), rtol=1e-12, atol=1e-14)
    self_whole = net.kernel_fn(x1, None, "ntk", batch_size=5)
    self_planned = net.kernel_fn(x1, None, "ntk", memory_budget=budget)
    np.testing.assert_allclose(self_planned.numpy(), self_whole.numpy(), rtol=1e-12, atol=1e-14)


def test_tiles_are_balanced_to_compute_no_padding():
    """10 rows of x1 in tiles of at most 8 are two tiles of 5 (not 8 + 2 padded to 8)."""
    net = architectures.get("convnet", 2)
    x1, x2 = _images(10), _images(10, seed=1)
    pair_bytes = 64**2 * 8 * tiling.FULL_LIVE_COPIES
    assert tiling.plan_tiles(net, x1, x2, memory_budget=80 * pair_bytes) == (5, 10)
    assert tiling.plan_tiles(net, x1, x2, memory_budget=7 * pair_bytes) == (1, 5)


def test_self_kernel_plan_counts_unordered_pairs():
    """K(x, x) of an image network computes n (n + 1) / 2 pairs: a budget for those (but
    not for n^2) leaves it untiled; x against another set of n still gets tiles."""
    net = architectures.get("convnet", 2)
    x = _images(6)
    pair_bytes = 64**2 * 8 * tiling.FULL_LIVE_COPIES
    budget = 21 * pair_bytes  # 6 * 7 / 2 = 21 pairs, < 36
    assert net.uses_unordered_pairs(x, None)
    assert tiling.plan_tiles(net, x, None, memory_budget=budget) is None
    assert tiling.plan_tiles(net, x, _images(6, seed=1), memory_budget=budget) is not None
    assert tiling.plan_tiles(net, x, None, memory_budget=budget - 1) is not None


@pytest.mark.parametrize("budget", [0, -5, 1.5, True])
def test_bad_memory_budget_is_named(budget):
    net = architectures.get("convnet", 2)
    with pytest.raises(ValueError, match=f"memory_budget=.*{budget!r}"):
        net.kernel_fn(_images(2), _images(2), "ntk", memory_budget=budget)


def test_forward_only_plans_larger_tiles_with_the_same_values():
    """A pass no gradient follows holds fewer copies per pair: more pairs per tile under
    the same budget, and the same kernel."""
    net = architectures.get("convnet", 2)
    x1, x2 = _images(6, seed=1), _images(4, seed=2)
    per_pair = 64**2 * 8
    assert tiling.pair_bytes(net, x1.shape[1:], 8, forward_only=True) == (
        per_pair * tiling.FORWARD_FULL_LIVE_COPIES
    )
    budget = 5 * per_pair * tiling.FULL_LIVE_COPIES
    assert tiling.plan_tiles(net, x1, x2, budget) == (1, 4)
    b1, b2 = tiling.plan_tiles(net, x1, x2, budget, forward_only=True)
    assert b2 == 4 and b1 > 1
    assert b1 * b2 * per_pair * tiling.FORWARD_FULL_LIVE_COPIES <= budget
    assert tiling.plan_pair_tiles(net, x1, 20, budget) == 5
    assert tiling.plan_pair_tiles(net, x1, 20, budget, forward_only=True) > 5
    whole = net.kernel_fn(x1, x2, "ntk", batch_size=(6, 4))
    forward = net.kernel_fn(x1, x2, "ntk", memory_budget=budget, forward_only=True)
    np.testing.assert_allclose(forward.numpy(), whole.numpy(), rtol=1e-12, atol=1e-14)
    k_ss, k_ts = net.kip_kernel_fn(x2, x1, "ntk", memory_budget=budget, forward_only=True)
    np.testing.assert_allclose(k_ts.numpy(), whole.numpy(), rtol=1e-12, atol=1e-14)
