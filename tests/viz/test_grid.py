"""PNG grid of a support set."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from sets_testlib import make_arrays, make_metadata

from tfkip.viz import display_fn_for, image_grid, minmax_per_image
from tfkip.viz.grid import BACKGROUND


def _decode(path):
    return tf.io.decode_png(tf.io.read_file(path)).numpy()


@pytest.mark.parametrize("channels", [1, 3])
def test_grid_size_and_png(tmp_path, channels):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(7, 5, 6, channels)).astype(np.float32)
    classes = np.array([0, 0, 0, 2, 2, 0, 3])  # Class 1 is empty; 4 images of class 0.
    labels = np.eye(4)[classes] - 0.25
    path = str(tmp_path / "sub" / "grid.png")
    grid = image_grid(images, labels, path, max_per_class=3, padding=1, scale=1, labelled=False)
    assert grid.dtype == np.uint8
    assert grid.shape == (4 * (5 + 1) + 1, 3 * (6 + 1) + 1, channels)
    png = _decode(path)
    assert png.shape == grid.shape
    np.testing.assert_array_equal(png, grid)
    assert os.listdir(tmp_path / "sub") == ["grid.png"]
    # Row 1 (empty class) is all background; the other rows hold their images.
    assert (grid[1 + 6 : 1 + 6 + 5] == BACKGROUND).all()
    expected = np.round(minmax_per_image(images[3:4])[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(grid[1 + 2 * 6 : 1 + 2 * 6 + 5, 1 : 1 + 6], expected)


def test_integer_labels_default_columns_and_no_padding():
    images = np.zeros((4, 2, 2, 3))
    grid = image_grid(images, np.array([1, 1, 1, 0]), padding=0, scale=1, labelled=False)
    assert grid.shape == (2 * 2, 3 * 2, 3)


def test_display_fn_for_metadata_unnormalizes():
    images, labels = make_arrays()
    images = np.abs(np.nan_to_num(images, posinf=0.0))
    m = make_metadata(images, labels)
    fn = display_fn_for(m)
    std, mean = np.array([0.2, 0.25, 0.3]), np.array([0.4, 0.5, 0.6])
    np.testing.assert_allclose(fn(images), images * std + mean)
    zca_fn = display_fn_for(make_metadata(images, labels, zca=True))
    assert zca_fn is minmax_per_image
    grid = image_grid(images, labels, display_fn=lambda x: np.full(x.shape, 0.5), labelled=False)
    assert set(np.unique(grid)) == {BACKGROUND, 128}


def test_bad_inputs():
    images = np.zeros((3, 2, 2, 2))
    with pytest.raises(ValueError, match="images.shape"):
        image_grid(images, np.eye(3))
    with pytest.raises(ValueError, match="labels.shape"):
        image_grid(np.zeros((3, 2, 2, 3)), np.eye(2))
    with pytest.raises(ValueError, match="max_per_class=0"):
        image_grid(np.zeros((3, 2, 2, 3)), np.eye(3), max_per_class=0)
    with pytest.raises(ValueError, match="display_fn"):
        image_grid(np.zeros((3, 2, 2, 3)), np.eye(3), display_fn=lambda x: x[:1])
