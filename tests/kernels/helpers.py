"""Shared helpers of the kernel tests: fixtures, relative errors, small networks, losses."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfkip.kernels.spec import network_from_config

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "nt"
FIXTURE_NAMES = tuple(sorted(p.stem for p in FIXTURE_DIR.glob("*.npz")))
SQRT2 = 2.0**0.5


@functools.cache
def load_fixture(name: str) -> dict:
    """The arrays of ``<name>.npz`` plus the parsed ``arch`` layer list and ``meta``."""
    with np.load(FIXTURE_DIR / f"{name}.npz") as z:
        out = {k: z[k] for k in ("x1", "x2", "nngp", "ntk", "nngp_11", "ntk_11")}
        out["arch"] = json.loads(str(z["arch"]))
        out["meta"] = json.loads(str(z["meta"]))
    return out


def fixture_network(name: str):
    return network_from_config(load_fixture(name)["arch"])


def has_relu(layers: list[dict]) -> bool:
    return any(layer["type"] == "Relu" for layer in layers)


def to_numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def rel_err(got, ref) -> float:
    """max |got - ref| / max |ref| (relative to the array's scale)."""
    got, ref = to_numpy(got), np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = np.abs(ref).max()
    return float(np.abs(got - ref).max() / (scale if scale > 0 else 1.0))


def assert_rel(got, ref, rtol: float, what: str = "") -> None:
    err = rel_err(got, ref)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}"


def off_diagonal(a) -> np.ndarray:
    a = to_numpy(a)
    return a[~np.eye(a.shape[0], dtype=bool)]


def assert_self_kernel(got, ref, rtol_off: float, rtol_diag: float, what: str = "") -> None:
    """Off-diagonal relative to the array's max; diagonal entrywise relative."""
    got, ref = to_numpy(got), np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = np.abs(ref).max()
    off = np.abs(off_diagonal(got) - off_diagonal(ref)).max(initial=0.0) / scale
    assert off <= rtol_off, f"{what} off-diagonal: relative error {off:.3e} > {rtol_off:.1e}"
    diag = np.max(np.abs(np.diag(got) - np.diag(ref)) / np.abs(np.diag(ref)))
    assert diag <= rtol_diag, f"{what} diagonal: relative error {diag:.3e} > {rtol_diag:.1e}"


def randn(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def dense(out_dim=8, W_std=SQRT2, b_std=0.1, parameterization="ntk") -> dict:
    return dict(
        type="Dense", out_dim=out_dim, W_std=W_std, b_std=b_std, parameterization=parameterization
    )


def conv(
    filter_shape=(3, 3),
    strides=(1, 1),
    padding="SAME",
    W_std=SQRT2,
    b_std=0.1,
    parameterization="ntk",
    out_chan=8,
) -> dict:
    return dict(
        type="Conv",
        out_chan=out_chan,
        filter_shape=list(filter_shape),
        strides=list(strides),
        padding=padding,
        W_std=W_std,
        b_std=b_std,
        parameterization=parameterization,
    )


def pool(window=(2, 2), strides=(2, 2), padding="VALID") -> dict:
    return dict(type="AvgPool", window_shape=list(window), strides=list(strides), padding=padding)


RELU = {"type": "Relu"}
FLATTEN = {"type": "Flatten"}
GAP = {"type": "GlobalAvgPool"}


def erf(a=1.0, b=1.0, c=0.0) -> dict:
    return {"type": "Erf", "a": a, "b": b, "c": c}


def build(layers: list[dict]):
    return network_from_config(layers)


def scalar_loss(kernels) -> tf.Tensor:
    """A smooth scalar of both kernels whose gradient mixes all entries."""
    nngp, ntk = kernels
    return tf.reduce_sum(tf.sin(nngp)) + tf.reduce_sum(tf.sin(0.5 * ntk))
