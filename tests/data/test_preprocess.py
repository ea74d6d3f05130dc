"""Tests for tfkip.data.preprocess: labels, standardisation, reference ZCA, persistence."""

import json
import os

import numpy as np
import pytest

from tfkip.data import Preprocessor, centered_one_hot, layer_norm_rows


def _raw(n, shape=(4, 4, 2), seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.array([20, 150, 90][: shape[-1]], dtype=np.int64)
    x = rng.integers(0, 100, size=(n, *shape)) + offsets
    return x.astype(np.uint8)


def _reference_pieces(pre, x_raw):
    """Independent recomputation of the spec §1.4 quantities."""
    x = x_raw.astype(np.float64) / 255.0
    x = (x - x.mean(axis=(0, 1, 2))) / x.std(axis=(0, 1, 2))
    rows = x.reshape(x.shape[0], -1)
    rows = rows - rows.mean(axis=1, keepdims=True)
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    n, d = rows.shape
    cov = rows.T @ rows / n
    reg = pre.zca_reg * np.trace(cov) / d
    return rows, cov, reg


def test_centered_one_hot_ten_and_hundred_classes():
    y = centered_one_hot(np.array([3, 0]), 10)
    assert y.shape == (2, 10) and y.dtype == np.float64
    np.testing.assert_allclose(y[0, 3], 0.9)
    np.testing.assert_allclose(np.delete(y[0], 3), -0.1)
    np.testing.assert_allclose(y.sum(axis=1), 0.0, atol=1e-12)
    y = centered_one_hot(np.array([99]), 100, dtype=np.float32)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[0, 99], 0.99, rtol=1e-6)
    np.testing.assert_allclose(y[0, :99], -0.01, rtol=1e-6)


def test_centered_one_hot_errors():
    with pytest.raises(ValueError, match="num_classes=1"):
        centered_one_hot(np.array([0]), 1)
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3, 7\]"):
        centered_one_hot(np.array([0, 3, 7]), 3)


def test_standardisation_zero_mean_unit_std_per_channel():
    x = _raw(30, (5, 5, 3))
    pre = Preprocessor.fit(x)
    assert pre.pixel_scale == 255.0 and not pre.zca
    out = pre(x)
    assert out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-12)
    # Channels really differ before standardisation, so this is not a no-op.
    assert np.ptp(x.mean(axis=(0, 1, 2))) > 50
    np.testing.assert_allclose(pre(x[:3], dtype=np.float32), out[:3].astype(np.float32))


def test_float_pixels_are_not_rescaled():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(20, 3, 3, 1))
    pre = Preprocessor.fit(x)
    assert pre.pixel_scale == 1.0
    np.testing.assert_allclose(pre.mean, [x.mean()], rtol=1e-12)
    np.testing.assert_allclose(pre.std, [x.std()], rtol=1e-12)


def test_layer_norm_rows_zero_mean_unit_norm():
    rows = layer_norm_rows(np.random.default_rng(2).normal(size=(6, 10)) + 5.0)
    np.testing.assert_allclose(rows.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-12)


def test_zca_whitens_regularised_covariance_exactly_when_n_exceeds_d():
    x = _raw(200, (4, 4, 2))  # n = 200 > d = 32
    pre = Preprocessor.fit(x, zca=True, zca_reg=0.1)
    rows, cov, reg = _reference_pieces(pre, x)
    w = pre.zca_matrix
    assert w.shape == (32, 32)
    np.testing.assert_allclose(w, w.T, atol=1e-12)
    np.testing.assert_allclose(w @ (cov + reg * np.eye(32)) @ w, np.eye(32), atol=1e-9)
    # The images map to layer_norm(standardised) @ W.
    np.testing.assert_allclose(pre(x).reshape(200, -1), rows @ w, atol=1e-12)
    # Hence the whitened train covariance is I - reg * W^2, not I.
    out = pre(x).reshape(200, -1)
    np.testing.assert_allclose(out.T @ out / 200, np.eye(32) - reg * w @ w, atol=1e-9)


def test_zca_rank_rule_when_n_below_d():
    x = _raw(10, (4, 4, 2))  # n = 10 < d = 32
    pre = Preprocessor.fit(x, zca=True)
    rows, cov, reg = _reference_pieces(pre, x)
    w = pre.zca_matrix
    _, _, vt = np.linalg.svd(rows)
    row_space, null_space = vt[:10].T, vt[10:].T
    # Directions the train images span are whitened ...
    np.testing.assert_allclose(
        row_space.T @ w @ (cov + reg * np.eye(32)) @ w @ row_space, np.eye(10), atol=1e-9
    )
    # ... and the others pass through unchanged (s^-1/2 set to 1 from index n on),
    # where plain whitening would scale them by reg^-1/2.
    np.testing.assert_allclose(w @ null_space, null_space, atol=1e-9)
    assert reg**-0.5 > 2


def test_wrong_image_shape_and_bad_arguments():
    pre = Preprocessor.fit(_raw(5, (4, 4, 2)))
    with pytest.raises(ValueError, match=r"\(4, 4, 2\).*shape=\(3, 4, 4, 3\)"):
        pre(np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"shape=\(4, 4, 2\)"):
        pre(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="zca_reg=0"):
        Preprocessor.fit(_raw(5), zca=True, zca_reg=0)
    constant = np.ones((4, 2, 2, 1), np.uint8)
    with pytest.raises(ValueError, match=r"std=\[0\.0\]"):
        Preprocessor.fit(constant)


def test_save_load_round_trip_is_exact_and_atomic(tmp_path):
    x = _raw(40, (3, 3, 3))
    pre = Preprocessor.fit(x, zca=True, zca_reg=0.2)
    path = os.path.join(str(tmp_path), "pre.npz")
    pre.save(path)
    pre.save(path)  # overwriting works
    assert os.listdir(str(tmp_path)) == ["pre.npz"]  # no temporary files left behind
    loaded = Preprocessor.load(path)
    np.testing.assert_array_equal(loaded(x), pre(x))
    assert loaded.get_config() == pre.get_config()
    config = json.loads(json.dumps(pre.get_config()))
    assert config == {
        "pixel_scale": 255.0,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "zca": True,
        "zca_reg": 0.2,
        "image_shape": [3, 3, 3],
    }
    plain = Preprocessor.fit(x)
    plain.save(path)
    assert not Preprocessor.load(path).zca


def test_load_errors_name_the_path(tmp_path):
    missing = os.path.join(str(tmp_path), "nope.npz")
    with pytest.raises(ValueError, match=r"nope\.npz"):
        Preprocessor.load(missing)
    corrupt = os.path.join(str(tmp_path), "corrupt.npz")
    with open(corrupt, "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match=r"corrupt\.npz.*not a readable npz"):
        Preprocessor.load(corrupt)
    partial = os.path.join(str(tmp_path), "partial.npz")
    np.savez(partial, mean=np.zeros(1))
    with pytest.raises(
        ValueError, match=r"partial\.npz.*\['std', 'pixel_scale', 'zca_reg', 'image_shape'\]"
    ):
        Preprocessor.load(partial)


def test_inverse_for_display_undoes_standardisation():
    x = _raw(8, (2, 2, 3))
    pre = Preprocessor.fit(x)
    np.testing.assert_allclose(pre.inverse_for_display(pre(x)), x / 255.0, atol=1e-12)
    clipped = pre.inverse_for_display(np.full((1, 2, 2, 3), 1e3))
    assert clipped.min() == 1.0
    with pytest.raises(ValueError, match=r"shape=\(2, 2\)"):
        pre.inverse_for_display(np.zeros((2, 2)))


def test_chunked_statistics_match_single_pass(monkeypatch):
    from tfkip.data import preprocess

    x = _raw(50, (3, 3, 2))
    whole = Preprocessor.fit(x, zca=True)
    monkeypatch.setattr(preprocess, "_CHUNK", 7)  # 50 images -> 8 chunks, last one partial
    chunked = Preprocessor.fit(x, zca=True)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(chunked.std, whole.std, rtol=1e-12)
    np.testing.assert_allclose(chunked.zca_matrix, whole.zca_matrix, atol=1e-9)
    np.testing.assert_allclose(chunked(x), whole(x), atol=1e-9)
