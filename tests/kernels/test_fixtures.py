"""Every neural-tangents fixture of ``tests/fixtures/nt/`` is reproduced (see its README):

- float64: ``kernel_fn(x1, x2)`` within 1e-10 of the array's scale; ``kernel_fn(x1, None)``
  within 1e-10 off the diagonal and 1e-7 (entrywise) on it, where NT's own diagonal carries a
  ~sqrt(eps) angle residue;
- float32 inputs: float32 results within 1e-4 (1e-3 on ReLU self-kernel diagonals);
- compiled with ``tf.function(jit_compile=True)``: equal to eager within 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .helpers import (
    FIXTURE_NAMES,
    assert_rel,
    assert_self_kernel,
    fixture_network,
    has_relu,
    load_fixture,
    rel_err,
)

GETS = ("nngp", "ntk")


def test_all_fixtures_are_present():
    assert len(FIXTURE_NAMES) == 38, FIXTURE_NAMES
    for name in FIXTURE_NAMES:
        meta = load_fixture(name)["meta"]
        assert meta["name"] == name and meta["dtype"] == "float64"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_float64_cross_kernel(name):
    z, net = load_fixture(name), fixture_network(name)
    out = net.kernel_fn(z["x1"], z["x2"], get=GETS)
    assert out._fields == GETS
    for g in GETS:
        value = getattr(out, g)
        assert isinstance(value, tf.Tensor) and value.dtype == tf.float64
        assert value.shape == (len(z["x1"]), len(z["x2"]))
        assert_rel(value, z[g], 1e-10, f"{name} {g}")


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_float64_self_kernel(name):
    z, net = load_fixture(name), fixture_network(name)
    out = net.kernel_fn(z["x1"], None, get=GETS)
    for g in GETS:
        value = getattr(out, g).numpy()
        assert_self_kernel(value, z[f"{g}_11"], 1e-10, 1e-7, f"{name} {g}_11")
        assert rel_err(value, value.T) <= 1e-14, f"{name} {g}_11 is not symmetric"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_float32(name):
    z, net = load_fixture(name), fixture_network(name)
    x1, x2 = z["x1"].astype(np.float32), z["x2"].astype(np.float32)
    cross = net.kernel_fn(x1, x2, get=GETS)
    own = net.kernel_fn(x1, None, get=GETS)
    diag_rtol = 1e-3 if has_relu(z["arch"]) else 1e-4
    for g in GETS:
        assert getattr(cross, g).dtype == tf.float32 and getattr(own, g).dtype == tf.float32
        assert_rel(getattr(cross, g), z[g], 1e-4, f"{name} float32 {g}")
        assert_self_kernel(getattr(own, g), z[f"{g}_11"], 1e-4, diag_rtol, f"{name} f32 {g}_11")


@pytest.mark.parametrize("name", ["fc_d2__img8x8x1", "conv_flat_d2_std__img8x8x3"])
def test_single_get_returns_a_tensor(name):
    z, net = load_fixture(name), fixture_network(name)
    for g in GETS:
        value = net.kernel_fn(z["x1"], z["x2"], get=g)
        assert isinstance(value, tf.Tensor)
        assert_rel(value, z[g], 1e-10, f"{name} get={g!r}")
        one = net.kernel_fn(z["x1"], z["x2"], get=(g,))
        assert one._fields == (g,)
        assert_rel(getattr(one, g), z[g], 1e-10, f"{name} get=({g!r},)")
    swapped = net.kernel_fn(z["x1"], z["x2"], get=("ntk", "nngp"))
    assert swapped._fields == ("ntk", "nngp")
    assert_rel(swapped.ntk, z["ntk"], 1e-10, name)


@pytest.mark.parametrize("name", ["fc_d3__flat784", "conv_gap_d2__img8x8x3"])
def test_accepts_tensors_and_is_symmetric_in_its_arguments(name):
    z, net = load_fixture(name), fixture_network(name)
    out = net.kernel_fn(tf.constant(z["x1"]), tf.Variable(z["x2"]))
    back = net.kernel_fn(z["x2"], z["x1"])
    for g in GETS:
        assert_rel(getattr(out, g), z[g], 1e-10, name)
        assert_rel(tf.transpose(getattr(back, g)), z[g], 1e-10, f"{name} swapped")


JIT_FIXTURES = ["fc_d1_std__img8x8x1", "conv_flat_d2_std__img8x8x3", "convnet_pool_d3__img8x8x3"]


@pytest.mark.parametrize("name", JIT_FIXTURES)
def test_jit_compiled_equals_eager(name):
    z, net = load_fixture(name), fixture_network(name)
    fn = tf.function(lambda a, b: net.kernel_fn(a, b), jit_compile=True)
    fn_self = tf.function(lambda a: net.kernel_fn(a, None), jit_compile=True)
    x1, x2 = tf.constant(z["x1"]), tf.constant(z["x2"])
    compiled, compiled_self = fn(x1, x2), fn_self(x1)
    eager, eager_self = net.kernel_fn(x1, x2), net.kernel_fn(x1, None)
    for g in GETS:
        assert rel_err(getattr(compiled, g), getattr(eager, g).numpy()) <= 1e-12, (name, g)
        assert rel_err(getattr(compiled_self, g), getattr(eager_self, g).numpy()) <= 1e-12
        assert_rel(getattr(compiled, g), z[g], 1e-10, f"{name} jit {g}")
        assert_self_kernel(getattr(compiled_self, g), z[f"{g}_11"], 1e-10, 1e-7, name)
