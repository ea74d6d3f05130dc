"""An independent plain-NumPy NNGP/NTK oracle, written from the recursions of
``tests/fixtures/nt/README.md`` (not from tfkip's code).

It always tracks the FULL position-by-position covariance, for every pair of the joint batch
``X = concat(x1, x2)``: images carry ``K[i, j, h, w, h', w']`` of shape ``(N, N, H, W, H, W)``,
flat inputs ``K[i, j]`` of shape ``(N, N)``. The variances a nonlinearity needs are read off
the joint kernel (``K[i, i, p, p]``), so the self-kernel diagonal is exact (angle 0).

Layers are the dicts of the fixtures' ``arch`` lists (neural-tangents' ``stax`` semantics):

- ``{"type": "Dense", "out_dim", "W_std", "b_std", "parameterization"}`` (acts on the channel
  axis of images: the identity on the covariance, fan-in = channels);
- ``{"type": "Conv", "out_chan", "filter_shape", "strides", "padding", "W_std", "b_std",
  "parameterization"}``: ``A(K)(P, Q) = 1/|F| sum_d K(sP + d - lo, sQ + d - lo)``, zero outside
  the image; padding 'SAME' as in TF (``out = ceil(L / s)``,
  ``pad_total = max((out - 1) s + f - L, 0)``, ``lo = pad_total // 2``) or 'VALID';
- ``{"type": "Relu"}``, ``{"type": "Erf", "a", "b", "c"}``;
- ``{"type": "AvgPool", "window_shape", "strides", "padding"}`` (strides None means (1, 1) as in
  neural-tangents; zero padding counted, divided by the full window);
- ``{"type": "GlobalAvgPool"}``, ``{"type": "Flatten"}``.

'ntk' parameterization: ``K <- W^2 A(K) + b^2``, ``Theta <- W^2 A(Theta) + K_new``.
'standard': ``K`` as above, ``Theta <- fan_in A(K_old) + W^2 A(Theta) + [b_std is not None]``.
"""

from __future__ import annotations

import math

import numpy as np


def _geometry(length: int, window: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(out, pad_lo, pad_hi) along one spatial axis."""
    padding = padding.upper()
    if padding == "SAME":
        out = -(-length // stride)
        total = max((out - 1) * stride + window - length, 0)
        return out, total // 2, total - total // 2
    if padding == "VALID":
        out = (length - window) // stride + 1
        if out < 1:
            raise ValueError(f"window {window} does not fit in length {length}")
        return out, 0, 0
    raise ValueError(f"unknown padding {padding!r}")


class _State:
    """K, Theta of the joint batch, and the static shape of one example."""

    def __init__(self, nngp, ntk, spatial, channels):
        self.nngp = nngp
        self.ntk = ntk
        self.spatial = spatial  # None for flat, else (H, W)
        self.channels = channels


def _input_state(x: np.ndarray) -> _State:
    if x.ndim == 2:
        d = x.shape[1]
        return _State(x @ x.T / d, np.zeros((len(x),) * 2), None, d)
    if x.ndim != 4:
        raise ValueError("inputs must be (N, d) or (N, H, W, C)")
    c = x.shape[-1]
    nngp = np.einsum("ihwc,jklc->ijhwkl", x, x) / c
    return _State(nngp, np.zeros_like(nngp), tuple(x.shape[1:3]), c)


# ---------------------------------------------------------------------- linear maps
def _conv_map(k: np.ndarray, filter_shape, strides, geometry) -> np.ndarray:
    """Shared-offset window average over the four trailing spatial axes, by explicit taps."""
    (oh, loh, hih), (ow, low, hiw) = geometry
    kp = np.pad(k, [(0, 0), (0, 0), (loh, hih), (low, hiw), (loh, hih), (low, hiw)])
    out = np.zeros(k.shape[:2] + (oh, ow, oh, ow))
    for dh in range(filter_shape[0]):
        ih = strides[0] * np.arange(oh) + dh
        for dw in range(filter_shape[1]):
            iw = strides[1] * np.arange(ow) + dw
            out += kp[
                :,
                :,
                ih[:, None, None, None],
                iw[None, :, None, None],
                ih[None, None, :, None],
                iw[None, None, None, :],
            ]
    return out / (filter_shape[0] * filter_shape[1])


def _pool_matrix(spatial, window, strides, padding) -> tuple[np.ndarray, tuple[int, int]]:
    """(out positions, in positions) averaging matrix; each row sums the window / |window|."""
    (h, w), geometry = spatial, []
    for length, f, s in zip(spatial, window, strides):
        geometry.append(_geometry(length, f, s, padding))
    (oh, loh, _), (ow, low, _) = geometry
    m = np.zeros((oh, ow, h, w))
    for ph in range(oh):
        for pw in range(ow):
            for a in range(window[0]):
                for b in range(window[1]):
                    r, c = ph * strides[0] + a - loh, pw * strides[1] + b - low
                    if 0 <= r < h and 0 <= c < w:  # padded taps are zeros
                        m[ph, pw, r, c] += 1.0 / (window[0] * window[1])
    return m.reshape(oh * ow, h * w), (oh, ow)


# ---------------------------------------------------------------------- layers
def _affine(st: _State, layer: dict, linear, fan_in: int) -> _State:
    w2 = float(layer.get("W_std", 1.0)) ** 2
    b_std = layer.get("b_std", None)
    b2 = 0.0 if b_std is None else float(b_std) ** 2
    a_k, a_t = linear(st.nngp), linear(st.ntk)
    nngp = w2 * a_k + b2
    if layer.get("parameterization", "ntk") == "ntk":
        ntk = w2 * a_t + nngp
    elif layer["parameterization"] == "standard":
        ntk = fan_in * a_k + w2 * a_t + (0.0 if b_std is None else 1.0)
    else:
        raise ValueError(layer["parameterization"])
    return _State(nngp, ntk, st.spatial, st.channels)


def _variances(st: _State):
    """(v_i, v_j) broadcastable against K: K[i, i, p, p]."""
    n = st.nngp.shape[0]
    if st.spatial is None:
        v = np.array([st.nngp[i, i] for i in range(n)])
        return v[:, None], v[None, :]
    hw = st.spatial[0] * st.spatial[1]
    k = st.nngp.reshape(n, n, hw, hw)
    v = np.stack([np.diag(k[i, i]) for i in range(n)])  # (n, HW)
    shape = (n, 1) + st.spatial + (1, 1)
    return v.reshape(shape), v.reshape((1, n, 1, 1) + st.spatial)


def _relu(st: _State) -> _State:
    v1, v2 = _variances(st)
    c = st.nngp
    s = np.sqrt(np.maximum(v1 * v2 - c * c, 0.0))
    theta = np.arctan2(s, c)
    nngp = (s + (math.pi - theta) * c) / (2 * math.pi)
    ntk = st.ntk * (math.pi - theta) / (2 * math.pi)
    return _State(nngp, ntk, st.spatial, st.channels)


def _erf(st: _State, a: float, b: float, c0: float) -> _State:
    v1, v2 = _variances(st)
    c = st.nngp
    prod = (1 + 2 * b * b * v1) * (1 + 2 * b * b * v2)
    nngp = a * a * (2 / math.pi) * np.arcsin(2 * b * b * c / np.sqrt(prod)) + c0 * c0
    factor = a * a * 4 * b * b / (math.pi * np.sqrt(prod - 4 * b**4 * c * c))
    return _State(nngp, st.ntk * factor, st.spatial, st.channels)


def _apply(st: _State, layer: dict) -> _State:
    kind = layer["type"]
    if kind == "Dense":
        out = _affine(st, layer, lambda k: k, st.channels)
        out.channels = int(layer["out_dim"])
        return out
    if kind == "Conv":
        if st.spatial is None:
            raise ValueError("Conv needs images")
        fs = tuple(layer["filter_shape"])
        strides = tuple(layer.get("strides") or (1, 1))
        padding = layer.get("padding", "VALID")
        geometry = [_geometry(*args, padding) for args in zip(st.spatial, fs, strides)]
        out = _affine(
            st,
            layer,
            lambda k: _conv_map(k, fs, strides, geometry),
            st.channels * fs[0] * fs[1],
        )
        out.spatial, out.channels = (geometry[0][0], geometry[1][0]), int(layer["out_chan"])
        return out
    if kind == "Relu":
        return _relu(st)
    if kind == "Erf":
        return _erf(st, layer.get("a", 1.0), layer.get("b", 1.0), layer.get("c", 0.0))
    if kind == "AvgPool":
        if st.spatial is None:
            raise ValueError("AvgPool needs images")
        window = tuple(layer["window_shape"])
        strides = tuple(layer.get("strides") or (1, 1))
        m, out_spatial = _pool_matrix(st.spatial, window, strides, layer.get("padding", "VALID"))
        n, hw = st.nngp.shape[0], st.spatial[0] * st.spatial[1]

        def pool(k):
            k = m @ k.reshape(n, n, hw, hw) @ m.T  # K_out(P, Q) = sum_pq m[P, p] K(p, q) m[Q, q]
            return k.reshape((n, n) + out_spatial + out_spatial)

        return _State(pool(st.nngp), pool(st.ntk), out_spatial, st.channels)
    if kind == "GlobalAvgPool":
        if st.spatial is None:
            raise ValueError("GlobalAvgPool needs images")
        return _State(
            st.nngp.mean(axis=(2, 3, 4, 5)), st.ntk.mean(axis=(2, 3, 4, 5)), None, st.channels
        )
    if kind == "Flatten":
        if st.spatial is None:
            return st
        n, hw = st.nngp.shape[0], st.spatial[0] * st.spatial[1]

        def trace_mean(k):
            return np.einsum("ijpp->ij", k.reshape(n, n, hw, hw)) / hw

        return _State(trace_mean(st.nngp), trace_mean(st.ntk), None, hw * st.channels)
    raise ValueError(f"unknown layer {kind!r}")


def kernels(layers: list[dict], x1: np.ndarray, x2: np.ndarray | None = None) -> dict:
    """NNGP/NTK of ``layers``: ``{'nngp', 'ntk'}`` (n1, n2) and ``{'nngp_11', 'ntk_11'}``.

    With ``x2`` None the cross kernels are x1 against itself.
    """
    x1 = np.asarray(x1, np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, np.float64)
    n1 = len(x1)
    st = _input_state(np.concatenate([x1, x2]))
    for layer in layers:
        st = _apply(st, layer)
    if st.spatial is not None:
        raise ValueError("the network output must be flat")
    return {
        "nngp": st.nngp[:n1, n1:],
        "ntk": st.ntk[:n1, n1:],
        "nngp_11": st.nngp[:n1, :n1],
        "ntk_11": st.ntk[:n1, :n1],
    }
